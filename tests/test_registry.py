"""The backend registry: built-ins declared in their folders, plug-ins by entry point,
collisions refused, versions and dependency releases where the plan cache and stamp see them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storybuild.backends import contract
from storybuild.errors import UsageError


def test_builtin_versions_are_read_without_importing_any_backend() -> None:
    probe = ("import sys; from storybuild.backends.contract import builtin_versions; v = builtin_versions(); "
             "print(sorted(m for m in sys.modules if m.endswith('.backend')), v)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.startswith("[] (('command', '1'), ('espeak', '2'), ('embedded', '5'), ('comfyui', '1'))")


def test_a_plug_in_that_takes_a_builtin_name_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(contract, "plugins", lambda: {"espeak": "evil.speech:Backend", "mine": "x.y:Z"})
    with pytest.raises(UsageError, match="the plug-in backend 'espeak' .* takes the name of a built-in backend"):
        contract.backend_spec("espeak")
    assert contract.refused() == {"espeak": "evil.speech:Backend"}
    assert contract.installed()["espeak"] == "storybuild.backends.espeak.backend:EspeakBackend"


def test_an_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(UsageError) as caught:
        contract.backend_spec("festival")
    assert "espeak" in (caught.value.hint or "") and "comfyui" in (caught.value.hint or "")


def test_a_dependency_upgrade_changes_what_a_cached_plan_rests_on(monkeypatch) -> None:
    before = contract.marks(["espeak", "embedded"])
    monkeypatch.setattr(contract, "_release", lambda dist: "9.9.9" if dist == "espeakng-loader" else "1")
    assert contract.marks(["espeak", "embedded"]) != before
    assert ("espeak", "2", (("espeakng-loader", "9.9.9"),)) in contract.marks(["espeak"])
    assert contract.marks(["command"]) == (("command", "1", ()),)  # a steps-only plan asks no plug-in


def test_the_stamp_watches_what_a_backend_depends_on() -> None:
    files = contract.source_files(["espeak", "embedded"])
    assert any("espeakng_loader" in f and f.endswith("METADATA") for f in files), files
