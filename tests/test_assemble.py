"""scene/<scene> and film: frame-exact joins, transitions, loudness, stems, determinism."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embedded_media import (FPS, H, RATE, W, assemble_film, build_scenes, context, film_params, make_shot, read,
                            tone)
from storybuild.backends.embedded import filmvideo, loudness, mp4box
from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.assemble import run_scene
from storybuild.backends.embedded.cut import plan_cut, read_shot
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
    # Re-encoded, it still has keyframes where its shots start, so the film can cut it there.
    assert mp4box.video_track(out["scene.mp4"]).keyframes == (0, 12)


def test_film_with_transitions_has_the_right_length_streams_and_loudness(built):
    tmp, inputs = built
    params = _film_params({"dock": {"type": "crossfade", "duration": 0.5},
                           "boat": {"type": "fade", "duration": 0.5}})
    out = assemble_film(tmp, params, inputs)[0]
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
    one = assemble_film(tmp / "one", params, inputs)[0]
    two = assemble_film(tmp / "two", params, inputs)[0]
    assert set(one) == {"film.mp4", "film.json", "master.wav", "master.m4a", "dialogue.wav", "music.wav", "sfx.wav",
                        "ambience.wav"}
    for name in one:
        assert Path(one[name]).read_bytes() == Path(two[name]).read_bytes(), name


def test_film_of_cuts_copies_pictures_frame_exactly(built):
    tmp, inputs = built
    out = assemble_film(tmp / "cuts", _film_params({}), inputs)[0]
    assert ffmpeg.count_frames(out["film.mp4"]) == 96
    assert len(read(out["master.wav"])) == 4 * RATE


def test_transition_longer_than_a_scene_is_a_clear_error(built):
    tmp, inputs = built
    params = _film_params({"boat": {"type": "crossfade", "duration": 1.2}})
    with pytest.raises(BackendError, match="the crossfade from scene 'boat' into 'shore' lasts 1.21? s"):
        assemble_film(tmp / "bad", params, inputs)[0]


# The film cuts scenes at keyframes, so these tests run at 8 fps (a keyframe every 8
# frames) with textured pictures (a sliding ramp under noise): scenes hold several GOPs,
# and a frame out of place or a window blended wrongly shows in the comparisons.
FPS8 = 8
SCENES8 = {
    "a": [("a-1", 20, (200, 40, 40)), ("a-2", 13, (40, 200, 40))],  # keyframes 0 8 16 | 20 28
    "b": [("b-1", 30, (40, 40, 200))],  # 0 8 16 24
    "c": [("c-1", 11, (220, 220, 220)), ("c-2", 14, (220, 120, 0))],  # 0 8 | 11 19
}


@pytest.fixture(scope="module")
def built8(tmp_path_factory):
    """Shots, mixes and scene.mp4 files for SCENES8 at 8 fps, textured."""
    tmp = tmp_path_factory.mktemp("assemble8")
    return tmp, build_scenes(tmp, SCENES8, {}, fps=FPS8, grain=12)


def _decode(path: Path) -> np.ndarray:
    """Every frame of a video as rgb24, (frames, H, W, 3)."""
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    assert proc.stderr == b""  # no decoding errors (a cut that left a frame without its references)
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, H, W, 3)


def _film8(tmp: Path, name: str, inputs: dict[str, Path], transitions: dict, logs: list[str] | None = None):
    return assemble_film(tmp / name, film_params(SCENES8, transitions, fps=FPS8), inputs, logs)


def test_shots_and_scenes_have_keyframes_exactly_where_their_frame_counts_put_them(built8, tmp_path: Path):
    _tmp, inputs = built8
    # A hard change of picture mid-GOP (frame 5) would make x264 start a new GOP there
    # unless scene-cut detection is off.
    frames = [np.full((H, W, 3), 255 if i >= 5 else 0, np.uint8).tobytes() for i in range(20)]
    ffmpeg.encode_frames(frames, tmp_path / "cut.mp4", FPS8, W, H)
    assert mp4box.video_track(tmp_path / "cut.mp4").keyframes == (0, 8, 16)
    assert filmvideo.shot_keyframes([20, 13], FPS8) == (0, 8, 16, 20, 28)
    for scene, shots in SCENES8.items():
        track = mp4box.video_track(inputs[f"scene:{scene}"])
        assert track.keyframes == filmvideo.shot_keyframes([f for _s, f, _c in shots], FPS8)
        assert track.samples == sum(f for _s, f, _c in shots)


def test_plan_copies_scene_bodies_and_windows_the_transitions(built8):
    _tmp, inputs = built8
    params = film_params(SCENES8, {"a": {"type": "crossfade", "duration": 0.5}, "b": {"type": "fade", "duration": 0.5}},
                         fps=FPS8)
    shots = {s: read_shot(inputs[f"shot:{s}"], s) for scene in SCENES8.values() for s, _f, _c in scene}
    cut = plan_cut(params["scenes"], shots, FPS8)
    keys = [filmvideo.shot_keyframes([shot.frames for shot in span.shots], FPS8) for span in cut.scenes]
    P = filmvideo.Piece
    # a: 0..33, b: 29..59 (4 frames of crossfade), c: 55..80 (4 frames of fade).
    assert filmvideo.plan_segments(cut, keys) == [
        filmvideo.Segment(0, 28, (P(0, 0, 28),), blend=False),
        filmvideo.Segment(28, 37, (P(0, 28, 33), P(1, 0, 8)), blend=True),  # a's keyframe 28 .. b's 8
        filmvideo.Segment(37, 53, (P(1, 8, 24),), blend=False),
        filmvideo.Segment(53, 63, (P(1, 24, 30), P(2, 0, 8)), blend=True),
        filmvideo.Segment(63, 80, (P(2, 8, 25),), blend=False)]
    # A scene with no keyframe between its two transitions: one window over all three scenes.
    params = film_params(SCENES8, {"a": {"type": "crossfade", "duration": 17 / 8},
                                   "b": {"type": "fade", "duration": 7 / 8}}, fps=FPS8)
    cut = plan_cut(params["scenes"], shots, FPS8)
    assert filmvideo.plan_segments(cut, keys) == [
        filmvideo.Segment(0, 16, (P(0, 0, 16),), blend=False),
        filmvideo.Segment(16, 47, (P(0, 16, 33), P(1, 0, 30), P(2, 0, 8)), blend=True),
        filmvideo.Segment(47, 64, (P(2, 8, 25),), blend=False)]


@pytest.mark.parametrize("transitions, frames, encoded", [
    ({"a": {"type": "crossfade", "duration": 0.5}, "b": {"type": "fade", "duration": 0.5}}, 80, 19),
    ({"a": {"type": "wipe", "duration": 0.25}, "c": {"type": "fade", "duration": 0.5}}, 86, 11 + 6),
    ({"a": {"type": "crossfade", "duration": 17 / 8}, "b": {"type": "fade", "duration": 7 / 8}}, 64, 31),
    ({}, 88, 0),
], ids=["crossfade+fade", "wipe+fade-out", "merged-windows", "cuts"])
def test_film_copies_bodies_bit_exactly_and_matches_the_full_re_encode(built8, transitions, frames, encoded,
                                                                       monkeypatch):
    tmp, inputs = built8
    name = "-".join(f"{k}{v['type']}{v['duration']}" for k, v in transitions.items()) or "cuts"
    logs: list[str] = []
    out, ctx = _film8(tmp, name, inputs, transitions, logs)
    assert ctx.extra["pictures"] == {"frames": frames, "encoded": encoded}
    film = _decode(out["film.mp4"])
    assert len(film) == frames == ffmpeg.count_frames(out["film.mp4"])
    assert not any("whole film" in line for line in logs)

    # The same film made the old way, every frame decoded, blended and encoded again.
    monkeypatch.setattr(filmvideo, "_why_not_copied", lambda job, keys: "forced by the test")
    ref_out, ref_ctx = _film8(tmp, name + "-ref", inputs, transitions)
    assert ref_ctx.extra["pictures"] == {"frames": frames, "encoded": frames}
    ref = _decode(ref_out["film.mp4"])
    assert len(ref) == frames

    cut = plan_cut(film_params(SCENES8, transitions, fps=FPS8)["scenes"],
                   {s: read_shot(inputs[f"shot:{s}"], s) for scene in SCENES8.values() for s, _f, _c in scene}, FPS8)
    keys = [filmvideo.shot_keyframes([shot.frames for shot in span.shots], FPS8) for span in cut.scenes]
    scenes = [_decode(inputs[f"scene:{span.id}"]) for span in cut.scenes]
    copied = 0
    for seg in filmvideo.plan_segments(cut, keys):
        got = film[seg.start:seg.end].astype(np.int16)
        if seg.blend:  # new pictures: the same as the full re-encode's within encoding noise
            diff = np.abs(got - ref[seg.start:seg.end])
            assert diff.mean() < 2.5 and diff.mean(axis=(1, 2, 3)).max() < 4, seg
        else:  # copied pictures: exactly the scene's
            piece = seg.pieces[0]
            assert np.array_equal(film[seg.start:seg.end], scenes[piece.scene][piece.first:piece.last]), seg
            copied += seg.end - seg.start
    assert copied == frames - encoded
    # Frames next to each other differ far more than the tolerance: a frame out of place would show.
    assert np.abs(np.diff(film.astype(np.int16), axis=0)).mean() > 10


def test_film_windows_are_byte_identical_across_runs(built8):
    tmp, inputs = built8
    transitions = {"a": {"type": "crossfade", "duration": 0.5}, "c": {"type": "fade", "duration": 0.5}}
    one, _ = _film8(tmp, "det-1", inputs, transitions)
    two, _ = _film8(tmp, "det-2", inputs, transitions)
    assert one["film.mp4"].read_bytes() == two["film.mp4"].read_bytes()
    assert not (one["film.mp4"].parent / ".film-pieces").exists()  # the scratch pieces are gone


def _reencoded(source: Path, out: Path, *extra: str) -> Path:
    ffmpeg.run_ffmpeg(["-i", str(source), "-map", "0", "-c:a", "copy", *ffmpeg.X264, *extra, *ffmpeg.BITEXACT,
                       str(out)])
    return out


@pytest.mark.parametrize("extra, reason", [
    (("-g", "8", "-force_key_frames", "0.3"), "has no keyframes where its shots put them"),  # 0 3 11 19 27
    (("-g", "8", "-preset", "ultrafast"), "not all H.264 with one configuration"),
], ids=["keyframes-elsewhere", "other-codec-settings"])
def test_film_falls_back_to_re_encoding_when_scenes_cannot_be_cut(built8, tmp_path: Path, extra, reason):
    tmp, inputs = built8
    odd = dict(inputs, **{"scene:b": _reencoded(inputs["scene:b"], tmp_path / "b.mp4", *extra)})
    logs: list[str] = []
    transitions = {"a": {"type": "crossfade", "duration": 0.5}}
    out, ctx = _film8(tmp_path, "odd", odd, transitions, logs)
    assert any("re-encoding the whole film" in line and reason in line for line in logs), logs
    assert ctx.extra["pictures"] == {"frames": 84, "encoded": 84}
    film = _decode(out["film.mp4"])
    assert len(film) == 84
    # Still the right pictures: scene c (a cut after b) at the end, within encoding noise.
    assert np.abs(film[-25:].astype(np.int16) - _decode(inputs["scene:c"])).mean() < 2.5
