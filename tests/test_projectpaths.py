"""Manifest paths stay inside the project: no absolute paths, `..` escapes or symlinks out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storybuild.projectpaths import Confiner, PathProblem, confine


def test_relative_paths_are_normalised(tmp_path: Path) -> None:
    assert confine(str(tmp_path), "assets/./models/../models/boat.glb") == "assets/models/boat.glb"
    assert confine(str(tmp_path), "boat.glb", base="scenes") == "scenes/boat.glb"
    assert confine(str(tmp_path), "../boat.glb", base="scenes") == "boat.glb"
    assert confine(str(tmp_path), "missing/is/fine.glb") == "missing/is/fine.glb"


@pytest.mark.parametrize("path, problem", [
    ("", "empty path"),
    ("/etc/passwd", "absolute path '/etc/passwd' is not allowed"),
    ("C:/films/boat.glb", "absolute path 'C:/films/boat.glb' is not allowed"),
    ("~/boat.glb", "absolute path '~/boat.glb' is not allowed"),
    ("assets\\boat.glb", "path 'assets\\boat.glb' uses '\\'"),
    ("../boat.glb", "path '../boat.glb' escapes the project folder"),
    ("a/../../boat.glb", "path 'a/../../boat.glb' escapes the project folder"),
])
def test_refused_paths(tmp_path: Path, path: str, problem: str) -> None:
    with pytest.raises(PathProblem) as caught:
        confine(str(tmp_path), path)
    assert str(caught.value) == problem


def test_symlinks(tmp_path: Path) -> None:
    project, outside = tmp_path / "film", tmp_path / "elsewhere"
    (project / "real").mkdir(parents=True)
    outside.mkdir()
    os.symlink(project / "real", project / "inside")
    os.symlink(outside, project / "out")
    os.symlink(outside / "x.glb", project / "x.glb")
    confiner = Confiner(str(project))
    assert confiner("inside/boat.glb") == "inside/boat.glb"
    for path in ("out/boat.glb", "x.glb"):
        with pytest.raises(PathProblem, match="leads outside the project through a symlink"):
            confiner(path)


def test_the_confiner_remembers_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    confiner = Confiner(str(tmp_path))
    assert confiner("a/b.txt") == "a/b.txt"
    monkeypatch.setattr(os.path, "islink", lambda path: pytest.fail("resolved again"))
    assert confiner("a/b.txt") == "a/b.txt"
    with pytest.raises(PathProblem):
        confiner("../x")
    with pytest.raises(PathProblem):
        confiner("../x")
