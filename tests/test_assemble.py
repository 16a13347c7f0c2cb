"""scene/<scene> and film: frame-exact joins, transitions, loudness, stems, determinism."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embedded_media import (FPS, H, RATE, W, build_scenes, context, film_inputs, film_params, make_shot, read,
                            tone)
from storybuild.backends.embedded import ffmpeg, loudness
from storybuild.backends.embedded.assemble import run_film, run_scene
from storybuild.errors import BackendError

# scene id → [(shot id, frames, colour)]
SCENES = {
    "dock": [("dock-1", 24, (200, 40, 40)), ("dock-2", 12, (40, 200, 40))],
    "boat": [("boat-1", 36, (40, 40, 200))],
    "shore": [("shore-1", 24, (220, 220, 220))],
}


def _frame(path: Path, index: int) -> np.ndarray:
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
                           "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return np.frombuffer(proc.stdout, np.uint8).reshape(H, W, 3)


LINES = {"boat-1": [{"index": 0, "character": "mara", "text": "Ahoy there!", "start": 0.2, "end": 0.8, "pan": 0.5}]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Shots, mixes and scene.mp4 files for three scenes (one line of dialogue in "boat")."""
    tmp = tmp_path_factory.mktemp("assemble")
    return tmp, build_scenes(tmp, SCENES, LINES)


def _film_params(transitions: dict[str, dict]) -> dict:
    return film_params(SCENES, transitions)


def _film_inputs(inputs: dict[str, Path]) -> dict[str, Path]:
    return film_inputs(inputs)


def test_scene_joins_shots_with_its_mix(built):
    _tmp, inputs = built
    info = ffmpeg.probe(inputs["scene:dock"])
    assert (info.video, info.audio, info.width, info.height) == ("h264", "aac", W, H)
    assert info.duration == pytest.approx(1.5, abs=0.03)
    assert ffmpeg.count_frames(inputs["scene:dock"]) == 36


def test_scene_conforms_shots_of_another_size(built, tmp_path: Path):
    _tmp, inputs = built
    odd = make_shot(tmp_path, "odd", 12)
    big = tmp_path / "big.mp4"
    ffmpeg.run_ffmpeg(["-i", str(odd["video"]), "-vf", "scale=128:72", "-c:v", "libx264", "-threads", "1", str(big)])
    out = run_scene(context(tmp_path, "scene/odd", "scene", {"fps": FPS, "width": W, "height": H, "shots": ["x", "y"]},
                            {"shot:x:video": big, "shot:y:video": inputs["video:dock-2"],
                             "mix": tone(tmp_path / "m.wav", 1.0, 100.0, channels=2)}))
    info = ffmpeg.probe(out["scene.mp4"])
    assert (info.width, info.height) == (W, H) and ffmpeg.count_frames(out["scene.mp4"]) == 24


def test_film_with_transitions_has_the_right_length_streams_and_loudness(built):
    tmp, inputs = built
    params = _film_params({"dock": {"type": "crossfade", "duration": 0.5},
                           "boat": {"type": "fade", "duration": 0.5}})
    out = run_film(context(tmp, "film", "film", params, _film_inputs(inputs)))
    # 36 + 36 + 24 frames, minus two 12-frame overlaps.
    assert ffmpeg.count_frames(out["film.mp4"]) == 72
    info = ffmpeg.probe(out["film.mp4"])
    assert (info.video, info.audio, info.width, info.height, info.fps) == ("h264", "aac", W, H, FPS)
    assert info.duration == pytest.approx(3.0, abs=0.05)

    master = read(out["master.wav"])
    assert master.shape == (3 * RATE, 2)
    assert loudness.integrated_loudness(master, RATE) == pytest.approx(-16.0, abs=1.0)
    stems = sum(read(out[f"{s}.wav"]) for s in ("dialogue", "music", "sfx", "ambience"))
    assert np.max(np.abs(stems - master)) < 1e-4

    # boat spans frames 24..59, shore 48..71: halfway through the fade the picture is black.
    assert _frame(out["film.mp4"], 54).mean() < 12
    assert _frame(out["film.mp4"], 66).mean() > 150  # the white shore scene

    cut = json.loads(out["film.json"].read_text())
    assert [(s["id"], s["start"], s["end"]) for s in cut["scenes"]] == [
        ("dock", 0.0, 1.5), ("boat", 1.0, 2.5), ("shore", 2.0, 3.0)]
    assert cut["scenes"][0]["transition"] == {"type": "crossfade", "duration": 0.5}
    assert [s["id"] for s in cut["shots"]] == ["dock-1", "dock-2", "boat-1", "shore-1"]
    assert cut["lines"] == [{"shot": "boat-1", "character": "mara", "text": "Ahoy there!",
                             "start": 1.2, "end": 1.8, "pan": 0.5}]
    assert cut["duration"] == 3.0 and cut["frames"] == 72


def test_film_is_byte_identical_across_runs(built):
    tmp, inputs = built
    params = _film_params({"dock": {"type": "wipe", "duration": 0.25}})
    one = run_film(context(tmp / "one", "film", "film", params, _film_inputs(inputs)))
    two = run_film(context(tmp / "two", "film", "film", params, _film_inputs(inputs)))
    assert set(one) == {"film.mp4", "film.json", "master.wav", "dialogue.wav", "music.wav", "sfx.wav", "ambience.wav"}
    for name in one:
        assert Path(one[name]).read_bytes() == Path(two[name]).read_bytes(), name


def test_film_of_cuts_copies_pictures_frame_exactly(built):
    tmp, inputs = built
    out = run_film(context(tmp / "cuts", "film", "film", _film_params({}), _film_inputs(inputs)))
    assert ffmpeg.count_frames(out["film.mp4"]) == 96
    assert len(read(out["master.wav"])) == 4 * RATE


def test_transition_longer_than_a_scene_is_a_clear_error(built):
    tmp, inputs = built
    params = _film_params({"boat": {"type": "crossfade", "duration": 1.2}})
    with pytest.raises(BackendError, match="the crossfade from scene 'boat' into 'shore' lasts 1.21? s"):
        run_film(context(tmp / "bad", "film", "film", params, _film_inputs(inputs)))
