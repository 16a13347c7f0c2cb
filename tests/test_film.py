"""The embedded film through the CLI: a real MP4, exact rebuilds, determinism, the demo.

These build real films (espeak voices, CPU renders, mixes, ffmpeg), so they use a tiny
resolution, except the demo test, which builds the repo-root film the README promises.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from storybuild.backends.shared.ffmpeg import ffmpeg_exe, probe

ROOT = Path(__file__).resolve().parents[1]

SMALL_FILM = """\
version: 1
project: {title: Small Film, fps: 8, resolution: [160, 90], seed: 7}
characters:
  ada: {name: Ada, color: "#d04040", voice: {name: en-us+f3, rate: 170}}
  bo: {name: Bo, color: "#4060d0", voice: {name: en-us+m3, rate: 170, pitch: 35}}
assets:
  sea: {path: assets/sea.ogg, kind: ambience}
  theme: {path: assets/theme.ogg, kind: music}
  gull: {path: assets/gull.ogg, kind: sfx}
scenes:
  - id: dock
    time: golden-hour
    ambience: {asset: sea, volume: 0.4}
    music: {asset: theme, volume: 0.5, duck: 0.3}
    reverb: outdoor
    transition: {type: crossfade, duration: 0.5}
    shots:
      - id: dock-wide
        duration: 1.5
        cast: [{ref: ada, position: [-0.6, 0, 0]}, {ref: bo, position: [0.6, 0, 0]}]
        camera: {position: [0, 1.6, 5], look_at: [0, 1.2, 0], move: {type: dolly, distance: 2}}
        sfx: [{asset: gull, at: 0.3}]
      - id: dock-ada
        cast: [{ref: ada, position: [0, 0, 0]}]
        camera: {lens: 50, position: [0, 1.5, 2.5], look_at: ada}
        dialogue:
          - {character: ada, text: "Mama made a pie.", offset: 0.2}
  - id: road
    time: night
    shots:
      - id: road-bo
        cast: [{ref: bo, position: [0, 0, 0]}]
        camera: {lens: 40, position: [0, 1.5, 3], look_at: bo, move: {type: orbit, angle: 20}}
        dialogue:
          - {character: bo, text: "Then we should eat it.", emotion: happy, offset: 0.2}
exports:
  - {id: web, preset: source, subtitles: [srt, vtt]}
"""


def make_small_film(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "storybuild.yaml").write_text(SMALL_FILM)
    (path / "assets").mkdir()
    for name in ("sea", "theme", "gull"):
        shutil.copy(ROOT / "assets" / "audio" / f"{name}.ogg", path / "assets" / f"{name}.ogg")
    return path


def build(project: Path, *args: str) -> list[str]:
    """Run `storybuild build --json`; return the ids of the actions that ran."""
    proc = subprocess.run([sys.executable, "-m", "storybuild", "build", "--json", *args], cwd=project,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return sorted(e["action"] for e in events if e["event"] == "finished")


def frames_of(video: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    project = make_small_film(tmp_path_factory.mktemp("film") / "small")
    build(project)
    return project


def test_the_film_is_a_real_mp4_with_picture_and_sound(small):
    info = probe(small / "build" / "film.mp4")
    cut = json.loads((small / "build" / "film.json").read_text())
    assert (info.video, info.audio, info.width, info.height) == ("h264", "aac", 160, 90)
    assert abs(info.duration - cut["duration"]) < 0.2
    assert [s["id"] for s in cut["scenes"]] == ["dock", "road"]
    assert (small / "build" / "exports" / "web" / "web.srt").read_text().count("-->") == 2


def test_a_second_build_runs_nothing(small):
    assert build(small) == []


def test_every_line_is_audible_and_stems_sum_to_the_master(small):
    cut = json.loads((small / "build" / "film.json").read_text())
    dialogue, rate = soundfile.read(small / "build" / "stems" / "dialogue.wav")
    for line in cut["lines"]:
        window = dialogue[int(line["start"] * rate):int(line["end"] * rate)]
        assert np.sqrt(np.mean(window ** 2)) > 0.01, line["text"]
    stems = sum(soundfile.read(small / "build" / "stems" / f"{s}.wav")[0] for s in ("dialogue", "music", "sfx", "ambience"))
    master, _ = soundfile.read(small / "build" / "stems" / "master.wav")
    assert np.max(np.abs(stems - master)) < 1e-3


def test_mouths_move_while_a_line_is_spoken(small):
    cues = json.loads(next((small / "build" / "dialogue" / "dock-ada").glob("*.visemes.json")).read_text())["mouthCues"]
    shapes = {cue["value"] for cue in cues}
    assert "A" in shapes and len(shapes) >= 3  # closed lips for m/p/b, and several open shapes
    frames = frames_of(small / "build" / "shots" / "dock-ada.mp4", 160, 90).astype(int)
    shot = json.loads((small / "build" / "film.json").read_text())
    speaking = [i for i in range(len(frames)) if 0.3 <= i / 8 <= 1.2]
    # the face region changes from frame to frame while the line plays (a static camera)
    face = frames[speaking][:, 10:60, 55:105]
    assert np.abs(np.diff(face, axis=0)).mean(axis=(1, 2, 3)).max() > 1.0, shot["lines"]


def test_the_camera_move_is_visible(small):
    frames = frames_of(small / "build" / "shots" / "dock-wide.mp4", 160, 90).astype(int)
    assert np.abs(frames[0] - frames[-1]).mean() > 5.0  # the dolly changed the picture


def test_editing_one_line_reruns_exactly_what_depends_on_it(small, tmp_path):
    project = tmp_path / "edit"
    shutil.copytree(small, project)
    manifest = project / "storybuild.yaml"
    manifest.write_text(manifest.read_text().replace("Then we should eat it.", "Then we should eat it now."))
    assert build(project) == ["export/web", "film", "layout/road-bo", "mix/road", "scene/road", "shot/road-bo",
                              "sound", "speech/road-bo/0", "visemes/road-bo/0"]


def test_a_change_to_pictures_alone_leaves_the_sound_cached(small, tmp_path):
    project = tmp_path / "look"
    shutil.copytree(small, project)
    manifest = project / "storybuild.yaml"
    manifest.write_text(manifest.read_text().replace("time: night", "time: dusk"))
    # The shot's layout is remade and found unchanged, so the mix and the film's sound stay.
    assert build(project) == ["export/web", "film", "layout/road-bo", "scene/road", "shot/road-bo"]


def test_two_clean_builds_are_byte_identical(small, tmp_path):
    other = make_small_film(tmp_path / "again")
    build(other)
    for name in ("film.mp4", "stems/master.wav", "stems/dialogue.wav", "stems/music.wav", "exports/web/web.mp4"):
        assert (other / "build" / name).read_bytes() == (small / "build" / name).read_bytes(), name
    assert (other / "storybuild.lock").read_bytes() == (small / "storybuild.lock").read_bytes()


def test_meshes_from_the_cache_render_the_same_film(small, tmp_path):
    # Frame workers read parsed meshes from .storybuild/cache instead of building them.
    assert list((small / ".storybuild" / "cache" / "meshes").glob("*.npz"))
    other = make_small_film(tmp_path / "cached")
    shutil.copytree(small / ".storybuild" / "cache", other / ".storybuild" / "cache")
    build(other)
    assert (other / "build" / "film.mp4").read_bytes() == (small / "build" / "film.mp4").read_bytes()


def test_the_demo_film_builds(tmp_path):
    """The README's promise: the repo-root manifest builds a real film of 30 s or more."""
    project = tmp_path / "demo"
    project.mkdir()
    shutil.copy(ROOT / "storybuild.yaml", project / "storybuild.yaml")
    shutil.copytree(ROOT / "assets", project / "assets")
    ran = build(project, "film")
    info = probe(project / "build" / "film.mp4")
    cut = json.loads((project / "build" / "film.json").read_text())
    assert info.video == "h264" and info.audio == "aac"
    assert cut["duration"] >= 30 and len(cut["scenes"]) >= 3
    assert len(cut["lines"]) == sum(1 for a in ran if a.startswith("speech/"))
    assert build(project, "film") == []


def test_a_vanished_asset_is_reported_at_its_declaration(small, tmp_path):
    project = tmp_path / "gone"
    shutil.copytree(small, project)
    (project / "assets" / "gull.ogg").unlink()  # the manifest is unchanged: the cached plan is used
    proc = subprocess.run([sys.executable, "-m", "storybuild", "build"], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 2
    line = next(n for n, text in enumerate(SMALL_FILM.splitlines(), 1) if text.startswith("  gull:"))
    assert f"storybuild.yaml:{line}:" in proc.stderr
    assert "assets.gull: file 'assets/gull.ogg' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_objects_gone_from_the_cache_are_made_again(tmp_path):
    # rm -rf .storybuild/cas, then clean, then build (#17 item 5): the state DB still
    # remembers the results, but a result whose objects are gone is no result, and the
    # actions run again (this was a FileNotFoundError traceback until --force).
    project = tmp_path / "minimal"
    shutil.copytree(ROOT / "examples" / "minimal", project)
    build(project)
    shutil.rmtree(project / ".storybuild" / "cas")
    subprocess.run([sys.executable, "-m", "storybuild", "clean"], cwd=project, check=True, capture_output=True)
    assert "film" in build(project)
    assert build(project) == []


def test_a_custom_mouth_set_folder_builds_and_is_watched(tmp_path):
    # A folder asset (a mouths set) validated and then could never build: a folder had no
    # digest (#17 item 13). Its digest is its files'; adding one rebuilds, a no-op stays one.
    project = tmp_path / "minimal"
    shutil.copytree(ROOT / "examples" / "minimal", project)
    shutil.copytree(ROOT / "examples" / "everything" / "assets" / "mouths" / "ada", project / "mouths" / "mo")
    manifest = project / "storybuild.yaml"
    manifest.write_text(manifest.read_text().replace(
        "characters:\n  mo: {voice: {name: en-us}}",
        "assets:\n  mo_mouths: {path: mouths/mo, kind: mouths}\n"
        "characters:\n  mo: {voice: {name: en-us}, mouths: mo_mouths}"))
    assert "film" in build(project)
    assert build(project) == []
    shutil.copy(project / "mouths" / "mo" / "A.png", project / "mouths" / "mo" / "extra.png")
    assert "shot/hello-mo" in build(project)
    assert build(project) == []
