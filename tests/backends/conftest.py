"""Fixtures of the backend contract suite: every installed backend, each with a known-good sample.

The suite is parametrized over `storybuild.backends.contract.installed()`, so the Piper
plug-in is in it when installed and a future plug-in joins without an edit here. A built-in
(and Piper) has a sample made by name; an unknown plug-in with the `tts` capability gets a
speech action made through its own `plan_speech`, as the planner makes one; any other
unknown plug-in has no sample, and the tests that run an action skip for it (its
declaration is still checked).

KNOWN_DEFECTS lists the contract checks a backend fails today: the test is marked xfail
(strict), so it turns red the day the defect is fixed and the entry should go.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from storybuild.backends import contract
from storybuild.backends.contract import ActionContext, SpeechRequest
from storybuild.errors import SourceLoc
from storybuild.model import Backends, Manifest, Project

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # the ComfyUI double lives beside the other tests
    sys.path.insert(0, str(TESTS))

LINE = "Mama made pie."
OTHER_LINE = "Papa made tea."
# Long enough that synthesis runs for seconds: cancelled CANCEL_AFTER_S after it starts, while
# the synthesizer (espeak's worker, Piper's sentence loop) still runs.
LONG_LINE = " ".join(["The harbour lights are on, and the boats come home one by one."] * 60)
LONGER_LINE = " ".join([LONG_LINE] * 8)  # espeak speaks 60 sentences in 0.2 s: 480 take ~1.5 s
LINE_LOC = SourceLoc("storybuild.yaml", 12, 17)
CANCEL_AFTER_S = 0.3
CANCEL_WITHIN_S = 4.0  # a cancelled action must be gone this long after the cancel
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once

# (check, backend) → the defect, for checks that backend fails today (xfail, strict).
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


@dataclass
class Sample:
    """A small known-good action of one backend, and what the contract checks need around it."""

    kind: str
    params: dict[str, Any]
    variant: dict[str, Any]  # the params with one that matters changed (another text, another argv)
    bad_params: dict[str, Any]  # the params with one of the wrong type: a permanent BackendError
    inputs: dict[str, Path] = field(default_factory=dict)
    raw_config: Mapping[str, Any] = field(default_factory=dict)  # the backends.<name> section as written
    # Cancelled before it starts, it may return without outputs instead of raising Cancelled (the
    # runner allows it); False for the backends known to check, which must raise.
    cancel_may_return_empty: bool = False
    # None: the backend claims the same bytes every run; else why it does not.
    not_deterministic: str | None = None
    # A long action (kind, params) to cancel from another thread; None: no_long says why there is none.
    long: tuple[str, dict[str, Any]] | None = None
    no_long: str = "no long-running action for this backend"
    # Project-relative paths the action writes outside out_dir (a command step's declared outputs).
    writes_in_project: tuple[str, ...] = ()
    # Break the backend's environment (monkeypatch, scratch folder) → the raw config to run with
    # (None: keep the sample's); None: no_environment says why it cannot fail.
    break_environment: Callable[[pytest.MonkeyPatch, Path], Mapping[str, Any] | None] | None = None
    no_environment: str = "the backend has no environment that can fail transiently"
    # tts backends: the request the sample was planned from, and a request for an unknown voice.
    request: SpeechRequest | None = None
    unknown_voice: SpeechRequest | None = None
    no_unknown_voice: str = "no notion of an unknown voice at plan time"


def manifest_for(root: Path, settings: Mapping[str, Mapping[str, Any]] | None = None) -> Manifest:
    """A minimal Manifest (what plan_speech may read: the project seed, backends, workflows)."""
    return Manifest(root=str(root), file="storybuild.yaml", files=("storybuild.yaml",), version=1,
                    project=Project("contract", seed=7), presets={}, characters={}, assets={}, scenes=(),
                    workflows={}, exports=(), steps=(), backends=Backends(settings=dict(settings or {})))


def speech_request(engine: str, manifest: Manifest, name: str = "en-us", text: str = LINE,
                   workflow: str | None = None) -> SpeechRequest:
    """A line as the planner hands it to `plan_speech` (planning/film.py: voice_params)."""
    voice = {"engine": engine, "name": name, "rate": 165, "pitch": 50, "volume": 1.0}
    return SpeechRequest(text, voice, "neutral", 16000, "contract-shot", 0, LINE_LOC, manifest, workflow)


def plan(backend: Any, request: SpeechRequest) -> dict[str, Any]:
    """A speech action's params, as the planner makes them (plan_speech, then the emotion)."""
    params = dict(backend.plan_speech(request))
    params["emotion"] = request.emotion
    return params


def mistyped(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params with `text` (or else every value) of a wrong type."""
    if "text" in params:
        return {**params, "text": 42}
    return {key: ("not a number" if isinstance(value, (int, float)) else 42) for key, value in params.items()}


def speech_sample(backend: Any, name: str, manifest: Manifest, voice: str = "en-us", **extra: Any) -> Sample:
    request = speech_request(name, manifest, voice)
    params = plan(backend, request)
    return Sample(kind="speech", params=params, variant=plan(backend, dataclasses.replace(request, text=OTHER_LINE)),
                  bad_params=mistyped(params), request=request, **extra)


# ---------------------------------------------------------------- the built-ins (and Piper), by name


def command_sample(backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    (project / "notes.txt").write_text("scene one: the harbour\n", encoding="utf-8")
    argv = ["cp", "notes.txt", "made/notes-copy.txt"]
    params = {"argv": argv, "outputs": ["made/notes-copy.txt"]}
    return Sample(kind="step", params=params, inputs={"notes": project / "notes.txt"},
                  variant={**params, "argv": ["cp", "other.txt", "made/notes-copy.txt"]},
                  bad_params={**params, "argv": 42},
                  long=("step", {"argv": ["sleep", "30"], "outputs": []}),
                  writes_in_project=("made", "made/notes-copy.txt"),
                  no_environment="every command failure is permanent by design (a non-zero exit, a missing "
                                 "program: command/backend.py docstring); it raises no TransientError")


def espeak_sample(backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    manifest = manifest_for(project)

    def stall_the_worker(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        from storybuild.backends.espeak import backend as speech

        script = folder / "stalling_worker.py"  # as tests/test_speech.py stalling_worker, stalling every run
        script.write_text("import time\ntime.sleep(3600)\n", encoding="utf-8")
        monkeypatch.setattr(speech, "WORKER", script)
        monkeypatch.setattr(speech, "STALL_S", 1.0)
        return None

    long_request = speech_request("espeak", manifest, text=LONGER_LINE)
    return speech_sample(backend, "espeak", manifest, long=("speech", plan(backend, long_request)),
                         break_environment=stall_the_worker,
                         unknown_voice=speech_request("espeak", manifest, "xx-no-such-voice"))


def embedded_sample(backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    timings = project / "timings.json"  # "Mama", as espeak times it (the speech_timing format)
    phonemes = [(0.0, 0.08, "m"), (0.08, 0.2, "'a"), (0.2, 0.28, "m"), (0.28, 0.4, "@")]
    timings.write_text(json.dumps({
        "duration": 0.5, "sample_rate": 16000, "words": [{"start": 0.0, "end": 0.4, "text": "Mama"}],
        "phonemes": [{"start": s, "end": e, "phoneme": p} for s, e, p in phonemes]}, indent=2), encoding="utf-8")
    params = {"extended": True}
    return Sample(kind="visemes", params=params, inputs={"timings": timings}, variant={"extended": False},
                  bad_params={"extended": "yes"}, no_long="a visemes action is instantaneous",
                  no_environment="the embedded backend is CPU-only, in-process: it has no TransientError")


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """The ComfyUI test double, slow enough per sampling step that a long keyframe can be cancelled."""
    import soundfile
    import numpy as np

    from comfyui_server import FakeComfyUI

    from storybuild.backends.comfyui import registry
    from storybuild.backends.comfyui.backend import close_farms

    models: dict[str, list[str]] = {}
    for template in registry.templates().values():
        for folder, names in template.models.items():
            models.setdefault(folder, []).extend(n for n in names if n not in models.get(folder, []))
    fake = FakeComfyUI(tmp_path_factory.mktemp("comfy-contract"), models=models, custom_nodes=True,
                       step_seconds=0.01).start()
    t = np.arange(int(0.6 * 24000)) / 24000  # the voice reference the tts workflows load
    soundfile.write(str(fake.root / "input" / "mara.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                    24000)
    yield fake
    close_farms()
    fake.stop()


def comfyui_sample(backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    from storybuild.backends.comfyui.expansion import resolve_workflow

    server = request.getfixturevalue("comfy_server")
    raw = {"servers": [{"url": server.url}], "timeout": 60}
    manifest = manifest_for(project, {"comfyui": raw})
    picture = {"prompt": "a lighthouse at dusk", "negative": "", "seed": 3, "width": 64, "height": 48,
               "steps": 2000}  # 20 s on the double: cancelled long before
    long = ("keyframe", resolve_workflow(manifest, "text_to_image", None, picture))

    def unreachable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Mapping[str, Any]:
        return {"servers": [{"url": UNREACHABLE}], "timeout": 30}

    sample = speech_sample(backend, "comfyui", manifest, voice="mara.wav", raw_config=raw, long=long,
                           break_environment=unreachable,
                           not_deterministic="generated media are pinned, not reproducible",
                           no_unknown_voice="a ComfyUI voice is a file on the server, known only when it runs")
    sample.bad_params = {**sample.params, "workflow": "not a workflow"}
    return sample


def piper_sample(backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    manifest = manifest_for(project)

    def out_of_memory(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        from storybuild_piper import synth

        def no_memory(*args: Any, **kwargs: Any) -> Any:
            raise MemoryError

        monkeypatch.setattr(synth, "_models", {})  # not loaded yet in this process
        monkeypatch.setattr(synth, "Model", no_memory)
        return None

    long_request = speech_request("piper", manifest, text=LONG_LINE)
    return speech_sample(backend, "piper", manifest, long=("speech", plan(backend, long_request)),
                         break_environment=out_of_memory,
                         unknown_voice=speech_request("piper", manifest, "xx-no-such-voice"))


def plugin_speech_sample(name: str, backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample:
    """An unknown plug-in with tts: a line planned through its own plan_speech."""
    return speech_sample(backend, name, manifest_for(project), cancel_may_return_empty=True,
                         not_deterministic=f"the {name} plug-in is unknown to this suite: no claim of repeatable "
                                           "bytes to hold it to",
                         no_long=f"no long action known for the {name} plug-in",
                         no_environment=f"no known way to break the {name} plug-in's environment")


SAMPLES: dict[str, Callable[[Any, Path, pytest.FixtureRequest], Sample]] = {
    "command": command_sample,
    "espeak": espeak_sample,
    "embedded": embedded_sample,
    "comfyui": comfyui_sample,
    "piper": piper_sample,
}


def sample_for(name: str, backend: Any, project: Path, request: pytest.FixtureRequest) -> Sample | None:
    """The sample of backend `name` with its inputs under `project`; None for a backend without one."""
    if name in SAMPLES:
        return SAMPLES[name](backend, project, request)
    if "tts" in backend.capabilities and callable(getattr(backend, "plan_speech", None)):
        return plugin_speech_sample(name, backend, project, request)
    return None


# ---------------------------------------------------------------- fixtures


@pytest.fixture(params=sorted(contract.installed()))
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend(backend_name: str) -> Any:
    return contract.get_backend(backend_name)


@pytest.fixture
def known_defect(request: pytest.FixtureRequest, backend_name: str) -> Callable[[str], None]:
    """known_defect(check): mark this test xfail (strict) when KNOWN_DEFECTS lists it for this backend."""
    def mark(check: str) -> None:
        reason = KNOWN_DEFECTS.get((check, backend_name))
        if reason is not None:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    return mark


@dataclass
class Workspace:
    """A tmp project for one action: the project, the scratch out_dir inside it, a cache folder."""

    root: Path  # everything the snapshot watches
    project: Path
    cache: Path
    seq: int = 0

    def out_dir(self) -> Path:
        self.seq += 1
        out = self.project / ".storybuild" / "scratch" / str(self.seq) / "out"
        out.mkdir(parents=True)
        return out


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A project folder; HOME, the caches, TMPDIR and the working directory are moved inside the
    watched tree, so that a backend writing anywhere it should not shows in the snapshot."""
    project, cache = tmp_path / "project", tmp_path / "cache"
    for folder in (project, cache, tmp_path / "home", tmp_path / "tmp"):
        folder.mkdir()
    (project / "storybuild.yaml").write_text("version: 1\nproject: {title: contract}\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(project)
    return Workspace(tmp_path, project, cache)


@pytest.fixture
def sample(backend_name: str, backend: Any, workspace: Workspace, request: pytest.FixtureRequest) -> Sample:
    found = sample_for(backend_name, backend, workspace.project, request)
    if found is None:
        pytest.skip(f"no sample action for {backend_name}: an unknown plug-in without the tts capability")
    return found


def config_of(backend: Any, raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The section as ctx.config holds it (the backend's parse_config, if it has one)."""
    parse = getattr(backend, "parse_config", None)
    return parse(raw) if parse is not None else raw


def context(backend: Any, sample: Sample, workspace: Workspace, *, kind: str | None = None,
            params: Mapping[str, Any] | None = None, raw_config: Mapping[str, Any] | None = None) -> ActionContext:
    kind = kind or sample.kind
    params = copy.deepcopy(dict(sample.params if params is None else params))
    # What the runner tells an in-place backend: the outputs at their paths are its own
    # (placed by an earlier run), so running a sample twice replaces them.
    owned = frozenset(o for o in params.get("outputs") or () if isinstance(o, str)) \
        if not getattr(backend, "needs_scratch", True) else frozenset()
    return ActionContext(action_id=f"{kind}/contract", kind=kind, params=params,
                         inputs=dict(sample.inputs), out_dir=workspace.out_dir(), project_root=workspace.project,
                         config=config_of(backend, sample.raw_config if raw_config is None else raw_config),
                         cache_dir=workspace.cache, owned=owned)


def snapshot(root: Path, ignore: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every file, folder and link under `root` (but `ignore`d folders and Python caches) with its content."""
    skip = {os.path.abspath(p) for p in ignore}
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and os.path.join(folder, d) not in skip)
        for name in dirs:
            seen[os.path.relpath(os.path.join(folder, name), root)] = ("dir",)
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            if os.path.islink(path):
                seen[os.path.relpath(path, root)] = ("link", os.readlink(path))
            else:
                with open(path, "rb") as f:
                    seen[os.path.relpath(path, root)] = ("file", hashlib.sha256(f.read()).hexdigest())
    return seen


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
