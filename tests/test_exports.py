"""export/<id>: presets, reframing, captions, side files (subtitles, timelines, poster, sheet)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedded_media import FPS, assemble_film, build_scenes, context, film_params
from storybuild.backends.embedded import reframe, sheets, timeline
from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.exports import run_export
from storybuild.errors import BackendError

SCENES = {
    "dock": [("dock-1", 12, (200, 40, 40)), ("dock-2", 12, (40, 200, 40))],
    "boat": [("boat-1", 24, (40, 40, 200))],
}
LINES = {
    "dock-2": [{"index": 0, "character": "mara", "text": "Is that the ferry?", "start": 0.05, "end": 0.45,
                "pan": -0.8}],
    "boat-1": [{"index": 0, "character": "tom", "text": "No, the ferry stopped running years ago.", "start": 0.3,
                "end": 0.9, "pan": 0.6}],
}


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """A 42-frame film: two scenes with a 6-frame crossfade, a line in each."""
    tmp = tmp_path_factory.mktemp("exports")
    files = build_scenes(tmp, SCENES, LINES)
    out, _ = assemble_film(tmp, film_params(SCENES, {"dock": {"type": "crossfade", "duration": 0.25}}), files)
    inputs = {"film": out["film.mp4"], "cut": out["film.json"]}
    inputs.update({k: v for k, v in files.items() if k.startswith("thumb:")})
    inputs.update({f"stems:{s}": out[f"{s}.wav"] for s in ("dialogue", "music", "sfx", "ambience", "master")})
    return tmp, inputs


def test_vertical_export_with_everything(film):
    tmp, inputs = film
    params = {"preset": "vertical", "reframe": "speaker", "subtitles": ["srt", "vtt"], "burn_captions": True,
              "stems": True, "timeline": ["otio", "edl", "fcp7xml", "fcpxml"], "poster": True,
              "contact_sheet": True, "title": "The Harbour", "shots_dir": "preview/shots"}
    logs: list[str] = []
    out = run_export(context(tmp, "export/social", "export", params, inputs, logs))
    stems = {f"stems/{s}.wav" for s in ("dialogue", "music", "sfx", "ambience", "master")}
    assert set(out) == {"social.mp4", "social.srt", "social.vtt", "social.otio", "social.edl", "social.xml",
                        "social.fcpxml", "poster.png", "contact_sheet.png"} | stems
    assert out["stems/master.wav"].read_bytes() == inputs["stems:master"].read_bytes()
    info = ffmpeg.probe(out["social.mp4"])
    assert (info.video, info.width, info.height, info.audio) == ("h264", 1080, 1920, "aac")
    assert ffmpeg.count_frames(out["social.mp4"]) == 42

    assert Image.open(out["poster.png"]).size == (1080, 1920)
    layout = sheets.sheet_layout(3, 64 / 36, titled=True)
    assert Image.open(out["contact_sheet.png"]).size == (layout.width, layout.height) == (1024, 306)
    assert "Is that the ferry?" in out["social.srt"].read_text(encoding="utf-8")

    import opentimelineio as otio

    edit = otio.adapters.read_from_file(str(out["social.otio"]))
    clips = list(edit.find_clips())
    assert [c.name for c in clips] == ["dock-1", "dock-2", "boat-1"]
    assert clips[0].media_reference.target_url == "build/preview/shots/dock-1.mp4"
    assert edit.duration().to_frames() == 42
    transitions = [t for t in edit.tracks[0] if isinstance(t, otio.schema.Transition)]
    assert len(transitions) == 1 and transitions[0].in_offset.to_frames() + transitions[0].out_offset.to_frames() == 6
    assert " D 006 " in out["social.edl"].read_text()


def test_burned_captions_show_and_export_is_deterministic(film):
    tmp, inputs = film
    params = {"preset": "source", "burn_captions": True}
    one = run_export(context(tmp / "one", "export/web", "export", params, inputs))
    two = run_export(context(tmp / "two", "export/web", "export", params, inputs))
    assert one["web.mp4"].read_bytes() == two["web.mp4"].read_bytes()

    def frame(path: Path, index: int) -> np.ndarray:
        raw = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
                              "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True).stdout
        return np.frombuffer(raw, np.uint8).reshape(36, 64, 3).astype(int)

    # Frame 35 (boat, 0.55 s into its shot) carries a caption; frame 2 has none.
    plain = frame(inputs["film"], 35)
    assert np.abs(frame(one["web.mp4"], 35) - plain).mean() > 3
    assert np.abs(frame(one["web.mp4"], 2) - frame(inputs["film"], 2)).mean() < 3


def test_vertical_export_with_burned_captions_is_byte_identical(film):
    """The demo's export/vertical shape (speaker crop, captions in yuv420) gives the same bytes every run.

    Its x264 once ran the lookahead in a thread of its own: the MB-tree pass for a keyframe
    raced the frame threads already encoding the frames before it, so a block or two could
    get another quantiser (5 digests in 6 builds). This encode is too small to lose that
    race reliably; `test_x264_never_depends_on_thread_timing` pins the setting that removes it.
    """
    tmp, inputs = film
    params = {"preset": "vertical", "resolution": [360, 640], "reframe": "speaker", "burn_captions": True}
    runs = [run_export(context(tmp / f"vertical-{i}", "export/vertical", "export", params, inputs))["vertical.mp4"]
            for i in range(3)]
    assert ffmpeg.count_frames(runs[0]) == 42
    assert runs[1].read_bytes() == runs[0].read_bytes() and runs[2].read_bytes() == runs[0].read_bytes()


def test_x264_never_depends_on_thread_timing():
    """Frame threads are deterministic in x264; its separate lookahead thread is not (see above)."""
    args = list(ffmpeg.X264)
    params = dict(item.split("=", 1) for item in args[args.index("-x264-params") + 1].split(":"))
    assert int(params["threads"]) == int(args[args.index("-threads") + 1]) == 2  # fixed: it changes the bytes
    assert params.get("sliced-threads") == "0"
    assert params.get("sync-lookahead") == "0", "x264's lookahead must run in the encoding thread"


def test_source_preset_without_captions_copies_the_stream(film):
    tmp, inputs = film
    out = run_export(context(tmp / "copy", "export/master", "export", {"preset": "source"}, inputs))
    assert ffmpeg.count_frames(out["master.mp4"]) == 42


def test_fit_modes_and_crop_positions():
    assert reframe.Fit(1920, 1080, 1920, 1080).mode == "scale"
    assert reframe.Fit(1440, 1080, 1920, 1080).mode == "pad"
    vertical = reframe.Fit(640, 360, 1080, 1920)
    assert vertical.mode == "crop" and vertical.scaled_w == 3414
    assert vertical.crop_x(0.0) == 0 and vertical.crop_x(1.0) == 3414 - 1080
    assert vertical.crop_x(0.5) == (3414 - 1080) // 2 // 2 * 2


def test_speaker_reframing_follows_the_speaker_and_jumps_at_cuts():
    cut = {"fps": 10, "shots": [{"id": "a", "start": 0.0, "end": 3.0}, {"id": "b", "start": 3.0, "end": 5.0}],
           "lines": [{"shot": "a", "start": 0.5, "end": 1.0, "pan": -1.0},
                     {"shot": "a", "start": 1.5, "end": 2.5, "pan": 1.0},
                     {"shot": "b", "start": 3.5, "end": 4.5, "pan": 0.0}]}
    centres = reframe.speaker_centres(cut, 50)
    assert centres[0] == pytest.approx(0.0)  # framed on the first speaker from the shot's first frame
    assert centres[29] == pytest.approx(1.0)  # then on the second, held to the end of the shot
    assert np.all(np.diff(centres[:30]) >= 0) and np.max(np.diff(centres[:30])) < 0.2  # a glide, not a jump
    assert centres[30] == pytest.approx(0.5)  # the cut jumps straight to the next shot's framing


def test_sendcmd_crop_moves_the_picture(tmp_path: Path):
    fit = reframe.Fit(64, 36, 36, 64)
    centres = np.array([0.0] * 5 + [1.0] * 5)
    commands = reframe.write_commands(fit, centres, FPS, tmp_path / "crop 'x'.cmd")
    ramp = np.zeros((36, 64, 3), np.uint8)
    ramp[..., 0] = np.arange(64) * 4
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x36",
                           "-r", str(FPS), "-i", "-", "-filter_complex", f"[0:v]{fit.filters(0.0, commands)}[v]",
                           "-map", "[v]", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          input=ramp.tobytes() * 10, capture_output=True, check=True)
    frames = np.frombuffer(proc.stdout, np.uint8).reshape(10, 64, 36, 3)
    assert frames[4, 32, 0, 0] < 10 and frames[5, 32, 0, 0] > 100  # left edge, then the right edge


def test_missing_adapter_and_unknown_formats_are_clear_errors(film, monkeypatch):
    tmp, inputs = film
    import opentimelineio as otio

    monkeypatch.setattr(otio.adapters, "available_adapter_names", lambda: ["otio_json"])
    with pytest.raises(BackendError, match="cmx_3600") as err:
        run_export(context(tmp / "e1", "export/x", "export", {"preset": "source", "timeline": ["edl"]}, inputs))
    assert err.value.hint == "pip install otio-cmx3600-adapter"
    assert timeline.available_formats() == ["otio"]
    with pytest.raises(BackendError, match="unknown export preset"):
        run_export(context(tmp / "e2", "export/x", "export", {"preset": "imax"}, inputs))


def test_timelines_round_trip_deterministically_and_shorten_dissolves_without_handles(tmp_path: Path):
    import opentimelineio as otio

    # The dock scene ends in a 2-frame shot, shorter than half of the 12-frame crossfade.
    cut = {"fps": 24, "duration": 2.5,
           "scenes": [{"id": "dock", "start": 0.0, "end": 1.5, "transition": {"type": "crossfade", "duration": 0.5}},
                      {"id": "boat", "start": 1.0, "end": 2.5, "transition": {"type": "cut", "duration": 0.0}}],
           "shots": [{"id": "dock-1", "scene": "dock", "start": 0.0, "end": 1.0 + 10 / 24},
                     {"id": "dock-2", "scene": "dock", "start": 1.0 + 10 / 24, "end": 1.5},
                     {"id": "boat-1", "scene": "boat", "start": 1.0, "end": 2.5}], "lines": []}
    logs: list[str] = []
    edit = timeline.build(cut, "Harbour", log=logs.append)
    assert [c.name for c in edit.find_clips()] == ["dock-1", "boat-1"]  # dock-2 only ever shows inside the dissolve
    assert edit.duration().to_frames() == 60
    assert logs and "needs 6+6 frames of handles" in logs[0]
    for fmt in timeline.available_formats():
        ext = timeline.FORMATS[fmt][1]
        one = timeline.write(edit, tmp_path / f"one.{ext}", fmt)
        two = timeline.write(timeline.build(cut, "Harbour"), tmp_path / f"two.{ext}", fmt)
        assert one.read_bytes() == two.read_bytes(), fmt
        if fmt in ("otio", "edl", "fcp7xml"):
            back = otio.adapters.read_from_file(str(one))
            assert len(list(back.find_clips())) == 2, fmt
