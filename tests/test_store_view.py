"""store.view: objects placed under build/ and at step paths, by stat, removed only while ours."""

from __future__ import annotations

import pytest

from storybuild.errors import StorybuildError
from storybuild.hashing import digest_bytes
from storybuild.store.cas import CAS
from storybuild.store.view import View, confined, placements


def setup(tmp_path):
    cas = CAS(tmp_path / ".storybuild" / "cas")
    digest = cas.put_bytes(b"frames", digest_bytes(b"frames"))
    return View(tmp_path, cas), digest


def test_placements_of_film_and_step_actions():
    assert placements(False, ["film.mp4", "film.json"], {"film.mp4": "film.mp4"}) == [("film.mp4", "build/film.mp4")]
    assert placements(True, ["out/a.txt"], {}) == [("out/a.txt", "out/a.txt")]


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../x", "a\\b"])
def test_paths_outside_the_project_are_refused(bad):
    with pytest.raises(StorybuildError, match="outside the project"):
        confined(bad)


def test_place_intact_and_restore(tmp_path):
    view, digest = setup(tmp_path)
    placed = [("film.mp4", "build/film.mp4")]
    records = view.place("film", placed, {"film.mp4": digest}, {})
    assert (tmp_path / "build" / "film.mp4").read_bytes() == b"frames"
    assert view.intact(placed, {"film.mp4": digest}, records)
    assert view.place("film", placed, {"film.mp4": digest}, records) == {}  # nothing to do
    (tmp_path / "build" / "film.mp4").unlink()
    assert not view.intact(placed, {"film.mp4": digest}, records)
    again = view.place("film", placed, {"film.mp4": digest}, records)
    assert set(again) == {"build/film.mp4"} and (tmp_path / "build" / "film.mp4").exists()


def test_prune_removes_only_unchanged_files_of_vanished_actions(tmp_path):
    view, digest = setup(tmp_path)
    records = view.place("shot/a", [("shot.mp4", "build/shots/a.mp4"), ("t.png", "build/shots/a.png")],
                         {"shot.mp4": digest, "t.png": digest}, {})
    (tmp_path / "build" / "shots" / "a.png").unlink()
    (tmp_path / "build" / "shots" / "a.png").write_text("the user's own file")
    dropped = view.prune(records, live=set())
    assert sorted(dropped) == ["build/shots/a.mp4", "build/shots/a.png"]
    assert not (tmp_path / "build" / "shots" / "a.mp4").exists()
    assert (tmp_path / "build" / "shots" / "a.png").read_text() == "the user's own file"


def test_emptied_folders_are_removed_only_inside_build(tmp_path):
    from storybuild.store.cas import CAS
    from storybuild.store.view import View

    (tmp_path / "buildings" / "plans").mkdir(parents=True)  # the writer's, beside build/
    (tmp_path / "build" / "shots").mkdir(parents=True)
    view = View(tmp_path, CAS(tmp_path / ".storybuild" / "cas"))
    view._remove_empty_dirs(str(tmp_path / "buildings" / "plans"))
    view._remove_empty_dirs(str(tmp_path / "build" / "shots"))
    assert (tmp_path / "buildings" / "plans").is_dir() and not (tmp_path / "build" / "shots").exists()
