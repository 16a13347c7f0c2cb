"""shot/<shot> end to end through an ActionContext, on tiny frames."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from storybuild.backends.contract import ActionContext
from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.conform import conformed_frames
from storybuild.backends.embedded.painters import Render3DPainter
from storybuild.backends.embedded.shot import build_spec, run_layout, run_shot
from storybuild.errors import BackendError, Cancelled

W, H, FPS = 160, 90, 6
# Line-relative cues: wide open, then closed, then rest.
CUES = [{"start": 0.0, "end": 0.6, "value": "D"}, {"start": 0.6, "end": 1.4, "value": "A"},
        {"start": 1.4, "end": 1.5, "value": "X"}]


def member(character, color, x, facing=0.0):
    return {"character": character, "name": character.title(), "color": color, "model": None, "mouths": "default",
            "position": [x, 0.0, 0.0], "rotation": [0.0, facing, 0.0], "facing": facing, "scale": 1.0,
            "head_height": 1.45}


def params(**over):
    base = {
        "fps": FPS, "width": W, "height": H, "quality": "preview", "duration": None, "padding": 0.5,
        "source": "render3d", "look": "shaded", "background": "#202830", "time": "day", "lighting": None,
        "title": "", "caption_lines": False, "ken_burns": None, "seed": 7,
        "camera": {"lens": 35, "position": [-0.3, 1.5, 2.6], "look_at": [-0.3, 1.4, 0.0],
                   "move": {"type": "static", "distance": 0, "angle": 0, "lens_to": None, "easing": "linear"},
                   "keyframes": []},
        "cast": [member("mara", "#e8b820", -0.6), member("theo", "#3a6ee0", 0.7)],
        "props": [],
        "lines": [{"index": 0, "character": "mara", "text": "One night, one ship.", "offset": 0.3,
                   "timings": "timings:0", "visemes": "visemes:0"}],
    }
    base.update(over)
    return base


@pytest.fixture
def line_inputs(tmp_path):
    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps({"duration": 1.5, "sample_rate": 48000, "words": [], "phonemes": []}))
    visemes = tmp_path / "visemes.json"
    visemes.write_text(json.dumps({"metadata": {"soundFile": "line.wav", "duration": 1.5}, "mouthCues": CUES}))
    return {"timings:0": timings, "visemes:0": visemes}


def run(tmp_path, p, inputs, jobs=1, name="out", cancel=False):
    out = tmp_path / name
    out.mkdir()
    progress = []
    ctx = ActionContext("shot/test", "shot", p, inputs, out, tmp_path, jobs=jobs,
                        progress=lambda f, m="": progress.append(f))
    if cancel:
        ctx.cancel_event.set()
    outputs = run_shot(ctx)
    # The layout sees what the planner gives it: no visemes (the mouths are the shot's business).
    (tmp_path / f"{name}-layout").mkdir()
    outputs.update(run_layout(ActionContext("layout/test", "layout", p,
                                            {k: v for k, v in inputs.items() if not k.startswith("visemes:")},
                                            tmp_path / f"{name}-layout", tmp_path)))
    return outputs, json.loads(outputs["shot.json"].read_text()), progress


def decoded(path, frames):
    return list(conformed_frames(path, FPS, W, H, frames))


def test_render3d_shot_has_exact_frames_and_its_json(tmp_path, line_inputs):
    outputs, info, progress = run(tmp_path, params(), line_inputs)
    frames = round((0.3 + 1.5 + 0.5) * FPS)
    assert info["frames"] == frames == ffmpeg.count_frames(outputs["shot.mp4"])
    probe = ffmpeg.probe(outputs["shot.mp4"])
    assert (probe.width, probe.height, probe.video) == (W, H, "h264")
    assert info["duration"] == pytest.approx(frames / FPS) and info["fps"] == FPS
    assert (info["width"], info["height"], info["source"]) == (W, H, "render3d")
    [line] = info["lines"]
    assert line["start"] == pytest.approx(0.3) and line["end"] == pytest.approx(1.8)
    assert (line["index"], line["character"], line["text"]) == (0, "mara", "One night, one ship.")
    assert -1.0 <= line["pan"] < -0.05  # Mara stands left of the camera's centre
    with Image.open(outputs["thumb.png"]) as thumb:
        assert thumb.size == (W, H)
    assert progress[0] == 0.0 and progress[-1] == 1.0


def test_mouth_moves_while_the_line_is_spoken(tmp_path, line_inputs):
    p = params()
    outputs, info, _ = run(tmp_path, p, line_inputs)
    frames = decoded(outputs["shot.mp4"], info["frames"])
    painter = Render3DPainter(build_spec(p, line_inputs))
    mara = painter.stage.actors[0]
    ndc, _ = painter.stage.camera(0.0, 1.0).project(mara.mouth[None])
    x, y = int((ndc[0, 0] + 1) / 2 * W), int((1 - ndc[0, 1]) / 2 * H)
    crop = lambda i: frames[i][y - 4:y + 5, x - 6:x + 7].astype(int)  # noqa: E731
    # 6 fps: frames 2-5 fall in "D" (0.3-0.9 s), 6-10 in "A", 12+ after the line (rest).
    assert np.abs(crop(3) - crop(8)).mean() > 12
    assert np.abs(crop(3) - crop(12)).mean() > 12
    assert np.abs(crop(7) - crop(9)).mean() < np.abs(crop(3) - crop(8)).mean() / 3


def test_frames_are_the_same_for_any_number_of_jobs(tmp_path, line_inputs):
    p = params(duration=4.0, camera={**params()["camera"], "move": {"type": "orbit", "angle": 30}})
    serial, info, _ = run(tmp_path, p, line_inputs, jobs=1, name="one")
    parallel, _, _ = run(tmp_path, p, line_inputs, jobs=2, name="two")
    assert info["frames"] == 24
    assert serial["shot.mp4"].read_bytes() == parallel["shot.mp4"].read_bytes()
    assert serial["shot.json"].read_bytes() == parallel["shot.json"].read_bytes()


def test_captions_show_the_current_line(tmp_path, line_inputs):
    outputs, info, _ = run(tmp_path, params(caption_lines=True, source="card"), line_inputs)
    frames = decoded(outputs["shot.mp4"], info["frames"])
    bottom = lambda i: frames[i][-20:].astype(int)  # noqa: E731
    assert np.abs(bottom(6) - bottom(12)).mean() > 10


@pytest.mark.parametrize("source", ["card", "title"])
def test_drawn_sources(tmp_path, line_inputs, source):
    outputs, info, _ = run(tmp_path, params(source=source, title="Chapter Two — Ōtsuki", duration=2.0), line_inputs)
    assert info["frames"] == 12 == ffmpeg.count_frames(outputs["shot.mp4"])
    assert info["source"] == source
    if source == "card":
        assert info["lines"][0]["pan"] < 0


def test_still_with_ken_burns(tmp_path, line_inputs):
    still = tmp_path / "still.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(still)
    p = params(source="still", duration=1.5, ken_burns={"zoom_from": 1.0, "zoom_to": 1.3,
                                                        "center_from": [0.3, 0.5], "center_to": [0.7, 0.5]})
    outputs, info, _ = run(tmp_path, p, {**line_inputs, "image": still})
    assert info["frames"] == 9 and info["source"] == "ken_burns"
    frames = decoded(outputs["shot.mp4"], 9)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 10


def test_file_clip_is_conformed_to_the_shot(tmp_path, line_inputs):
    clip = tmp_path / "clip.mp4"
    colours = [(200, 40, 40)] * 5 + [(40, 40, 200)] * 5
    ffmpeg.encode_frames((np.full((48, 64, 3), c, np.uint8).tobytes() for c in colours), clip, 10, 64, 48)
    outputs, info, _ = run(tmp_path, params(source="file", duration=2.0), {**line_inputs, "clip": clip})
    assert info["frames"] == 12 == ffmpeg.count_frames(outputs["shot.mp4"])
    frames = decoded(outputs["shot.mp4"], 12)
    assert frames[0][45, 80, 0] > 150  # red start
    assert frames[-1][45, 80, 2] > 150  # the clip ends at 1 s: its last (blue) frame is held


def test_generative_source_without_inputs_renders_the_animatic(tmp_path, line_inputs):
    _, info, _ = run(tmp_path, params(source="keyframe", duration=1.0), line_inputs)
    assert info["source"] == "render3d" and info["frames"] == 6


def test_missing_pictures_and_unknown_sources_are_clear(tmp_path, line_inputs):
    with pytest.raises(BackendError, match="still shot needs an image"):
        run(tmp_path, params(source="still"), line_inputs, name="a")
    with pytest.raises(BackendError, match="unknown picture source"):
        run(tmp_path, params(source="hologram"), line_inputs, name="b")
    with pytest.raises(BackendError, match="no input"):
        run(tmp_path, params(), {}, name="c")


def test_cancelled_before_rendering(tmp_path, line_inputs):
    with pytest.raises(Cancelled):
        run(tmp_path, params(), line_inputs, cancel=True)


def test_cancel_stops_the_workers(tmp_path, line_inputs):
    p = params(duration=8.0)
    out = tmp_path / "cancel"
    out.mkdir()
    event = threading.Event()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if fraction > 0.1:
            event.set()

    ctx = ActionContext("shot/test", "shot", p, line_inputs, out, tmp_path, jobs=2, progress=progress,
                        cancel_event=event)
    with pytest.raises(Cancelled):
        run_shot(ctx)
    assert max(seen) < 0.9


def _shot_with_worker_trouble(tmp_path, line_inputs, name, trouble):
    """Run a 48-frame shot on 2 jobs; `trouble(pid)` is done to a frame worker once frames flow."""
    from storybuild.backends.embedded import framepool

    out = tmp_path / name
    out.mkdir()
    logs, troubled = [], []

    def progress(fraction, message=""):
        pids = framepool.pids()
        if fraction > 0.15 and not troubled and pids:
            troubled.append(pids[0])
            trouble(pids[0])

    ctx = ActionContext("shot/test", "shot", params(duration=8.0), line_inputs, out, tmp_path, jobs=2,
                        progress=progress, log=logs.append)
    outputs = run_shot(ctx)
    assert troubled, "no worker was troubled: the shot was painted before any frame pool ran"
    return outputs, logs


def test_a_killed_frame_worker_costs_seconds_not_the_shot(tmp_path, line_inputs):
    import os
    import signal
    import time

    started = time.monotonic()
    outputs, logs = _shot_with_worker_trouble(tmp_path, line_inputs, "killed", lambda pid: os.kill(pid, signal.SIGKILL))
    assert time.monotonic() - started < 60
    assert any("a frame worker died; asking fresh workers" in line for line in logs), logs
    serial, _, _ = run(tmp_path, params(duration=8.0), line_inputs, jobs=1, name="serial")
    assert outputs["shot.mp4"].read_bytes() == serial["shot.mp4"].read_bytes()


def test_a_stuck_frame_worker_is_stopped_within_seconds(tmp_path, line_inputs, monkeypatch):
    import os
    import signal
    import time

    from storybuild.backends.embedded import framepool

    monkeypatch.setattr(framepool, "STALL_S", 1.0)
    started = time.monotonic()
    outputs, logs = _shot_with_worker_trouble(tmp_path, line_inputs, "stuck", lambda pid: os.kill(pid, signal.SIGSTOP))
    assert time.monotonic() - started < 60
    assert any("used no CPU for 1 s; asking fresh workers" in line for line in logs), logs
    serial, _, _ = run(tmp_path, params(duration=8.0), line_inputs, jobs=1, name="serial")
    assert outputs["shot.mp4"].read_bytes() == serial["shot.mp4"].read_bytes()
