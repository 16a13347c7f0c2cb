"""The backend end to end against the test server: keyframes, clips, lip-sync, speech, alpha."""

from __future__ import annotations

import json
import os
import sys
import threading

import numpy as np
import pytest
import soundfile
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.backends.contract import ActionContext  # noqa: E402
from storybuild.backends.comfyui.backend import (ComfyUIBackend, add_recorder, close_farms,  # noqa: E402
                                                 remove_recorder)
from storybuild.backends.comfyui.expansion import resolve_workflow  # noqa: E402
from storybuild.backends.shared.ffmpeg import count_frames, encode_frames, probe  # noqa: E402
from storybuild.errors import BackendError, Cancelled  # noqa: E402
from storybuild.model import Backends, Manifest, Project  # noqa: E402

ALL_MODELS: dict[str, list[str]] = {}
for _template in registry.templates().values():
    for _folder, _names in _template.models.items():
        ALL_MODELS.setdefault(_folder, []).extend(n for n in _names if n not in ALL_MODELS.get(_folder, []))
ALL_MODELS["facerestore_models"] = ["codeformer-v0.1.0.pth"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    fake = FakeComfyUI(tmp_path_factory.mktemp("comfy"), models=ALL_MODELS, custom_nodes=True).start()
    soundfile.write(str(fake.root / "input" / "mara.wav"), tone(0.6, 24000), 24000)
    yield fake
    close_farms()
    fake.stop()


@pytest.fixture
def manifest(server, tmp_path):
    return Manifest(root=str(tmp_path), file="storybuild.yaml", files=("storybuild.yaml",), version=1,
                    project=Project("test"), presets={}, characters={}, assets={}, scenes=(), workflows={},
                    exports=(), steps=(), backends=Backends(settings={"comfyui": {"servers": [{"url": server.url}]}}))


def tone(seconds: float, rate: int, pitch: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def context(server, tmp_path, kind, params, inputs=None, name="a"):
    out = tmp_path / name
    out.mkdir()
    progress: list[tuple[float, str]] = []
    ctx = ActionContext(action_id=f"{kind}/shot-1", kind=kind, params=params, inputs=inputs or {}, out_dir=out,
                        project_root=tmp_path, config={"servers": [{"url": server.url}], "timeout": 60},
                        progress=lambda fraction, message: progress.append((fraction, message)))
    return ctx, progress


def picture_values(**extra):
    return {"prompt": "a lighthouse at dusk", "negative": "", "seed": 11, "width": 64, "height": 48, "fps": 12,
            "steps": 4, **extra}


def test_keyframe(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "text_to_image", None, picture_values())
    ctx, progress = context(server, tmp_path, "keyframe", params)
    outputs = ComfyUIBackend().run(ctx)
    assert set(outputs) == {"keyframe.png"} and sorted(p.name for p in ctx.out_dir.iterdir()) == ["keyframe.png"]
    with Image.open(outputs["keyframe.png"]) as image:
        assert image.size == (64, 48) and image.mode == "RGB" and "prompt" not in image.info  # no server metadata
    assert progress[-1][0] == 1.0 and ctx.extra["comfyui"]["server"] == server.url


def test_text_to_video_from_an_animated_webp(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "text_to_video", "wan_text_to_video", picture_values(frames=8))
    assert params["values"]["frames"] == 9  # Wan wants 4k+1 frames
    outputs = ComfyUIBackend().run(context(server, tmp_path, "clip", params)[0])
    info = probe(outputs["clip.mp4"])
    assert (info.video, info.width, info.height, info.audio) == ("h264", 64, 48, None)
    assert count_frames(outputs["clip.mp4"]) == 9


def test_image_to_video_uploads_the_keyframe_and_converts_webm(server, manifest, tmp_path):
    keyframe = tmp_path / "keyframe.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(keyframe)
    params = resolve_workflow(manifest, "image_to_video", "ltxv_image_to_video",
                              picture_values(frames=9, width=64, height=64))
    ctx, _ = context(server, tmp_path, "clip", params, {"image": keyframe})
    outputs = ComfyUIBackend().run(ctx)
    assert count_frames(outputs["clip.mp4"]) == 9 and probe(outputs["clip.mp4"]).video == "h264"
    uploaded = list((server.root / "input" / "storybuild").iterdir())
    assert any(p.read_bytes() == keyframe.read_bytes() for p in uploaded)


def test_super_resolution_video_from_frames(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "text_to_video", "hunyuan15_text_to_video_sr", picture_values(frames=5))
    outputs = ComfyUIBackend().run(context(server, tmp_path, "clip", params)[0])
    info = probe(outputs["clip.mp4"])
    assert (info.width, info.height) == (64, 48) and count_frames(outputs["clip.mp4"]) == 5


def clip_file(path, frames=6, size=(32, 32)):
    encode_frames((bytes([30 * k % 255]) * (size[0] * size[1] * 3) for k in range(frames)), path, 12, *size)
    return path


def speech_inputs(tmp_path, count=2):
    inputs = {}
    for index in range(count):
        wav, timings = tmp_path / f"line{index}.wav", tmp_path / f"timings{index}.json"
        soundfile.write(str(wav), tone(0.3, 48000, 200 + 50 * index), 48000)
        timings.write_text(json.dumps({"duration": 0.3, "sample_rate": 48000, "words": [], "phonemes": []}))
        inputs[f"line:{index}"], inputs[f"timings:{index}"] = wav, timings
    return inputs


@pytest.mark.parametrize("workflow_id,face_restore", [("wav2lip", True), ("latentsync", False)])
def test_lipsync_syncs_the_shots_dialogue(server, manifest, tmp_path, workflow_id, face_restore):
    values = {**picture_values(), "face_restore": face_restore, "lines": [{"index": 0, "offset": 0.0},
                                                                         {"index": 1, "offset": 0.2}]}
    params = resolve_workflow(manifest, "lipsync", workflow_id, values)
    inputs = {"clip": clip_file(tmp_path / "clip.mp4"), **speech_inputs(tmp_path)}
    outputs = ComfyUIBackend().run(context(server, tmp_path, "lipsync", params, inputs)[0])
    assert count_frames(outputs["lipsync.mp4"]) == 6
    classes = {n["class_type"] for n in server.executor.history[list(server.executor.history)[-1]]["prompt"][2].values()}
    assert ("FaceRestoreCFWithModel" in classes) is face_restore
    # The dialogue went up as one track: line 0, a 0.2 s pause, line 1.
    dialogue = [p for p in (server.root / "input" / "storybuild").iterdir() if p.suffix == ".wav"]
    assert any(abs(soundfile.info(str(p)).duration - 0.8) < 0.01 for p in dialogue)


def test_sadtalker_returns_a_video_by_path(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "lipsync", "sadtalker", {**picture_values(), "lines": [{"index": 0}]})
    inputs = {"clip": clip_file(tmp_path / "clip.mp4"), **speech_inputs(tmp_path, 1)}
    outputs = ComfyUIBackend().run(context(server, tmp_path, "lipsync", params, inputs)[0])
    assert probe(outputs["lipsync.mp4"]).video == "h264" and count_frames(outputs["lipsync.mp4"]) > 1


def test_speech_gives_a_line_and_word_timings(server, manifest, tmp_path):
    values = {"text": "The harbour lights are on", "name": "mara.wav", "rate": 165, "pitch": 50, "volume": 1.0}
    params = resolve_workflow(manifest, "tts", None, values)
    params["sample_rate"] = 48000
    outputs = ComfyUIBackend().run(context(server, tmp_path, "speech", params)[0])
    info = soundfile.info(str(outputs["line.wav"]))
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
    timings = json.loads(outputs["timings.json"].read_text())
    assert [w["text"] for w in timings["words"]] == ["The", "harbour", "lights", "are", "on"]
    assert timings["duration"] == pytest.approx(info.duration, abs=1e-3)
    starts = [w["start"] for w in timings["words"]]
    assert starts == sorted(starts) and timings["words"][-1]["end"] <= timings["duration"]
    assert timings["phonemes"] and {"start", "end", "phoneme"} == set(timings["phonemes"][0])


def test_video_alpha_writes_a_matte(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "video_alpha", None, {"fps": 12})
    ctx, _ = context(server, tmp_path, "clip", params, {"clip": clip_file(tmp_path / "clip.mp4")})
    outputs = ComfyUIBackend().run(ctx)
    assert set(outputs) == {"clip.mp4", "matte.mp4"}
    assert count_frames(outputs["matte.mp4"]) == count_frames(outputs["clip.mp4"]) == 6


def test_the_action_key_ignores_the_server(server, manifest, tmp_path):
    backend = ComfyUIBackend()
    params = resolve_workflow(manifest, "text_to_image", None, picture_values())
    key = backend.config_key("keyframe", params, {"servers": [{"url": server.url}]})
    assert key == backend.config_key("keyframe", params, {"servers": [{"url": "http://elsewhere:8188"}]})
    assert key["models"] == ["sd_xl_base_1.0.safetensors"]
    other = resolve_workflow(manifest, "text_to_image", None, picture_values(seed=12))
    assert backend.config_key("keyframe", other, {}) != key


def test_cancelling_an_action_stops_it(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "text_to_image", None, picture_values(steps=400, seed=99))
    ctx, _ = context(server, tmp_path, "keyframe", params)
    threading.Timer(0.5, ctx.cancel_event.set).start()
    server.step_seconds = 0.01
    try:
        with pytest.raises(Cancelled):
            ComfyUIBackend().run(ctx)
    finally:
        server.step_seconds = 0.002
    assert not (ctx.out_dir / "keyframe.png").exists()


def test_records_reach_a_registered_recorder(server, manifest, tmp_path):
    seen = []
    add_recorder(seen.append)
    try:
        ComfyUIBackend().run(context(server, tmp_path, "keyframe", resolve_workflow(
            manifest, "text_to_image", None, picture_values(seed=5)))[0])
    finally:
        remove_recorder(seen.append)
    assert seen and seen[-1].ok and seen[-1].workflow == "sdxl_text_to_image"


def test_a_missing_input_file_is_a_clear_error(server, manifest, tmp_path):
    params = resolve_workflow(manifest, "image_to_video", "wan_image_to_video", {**picture_values(), "image": "kf"})
    with pytest.raises(BackendError, match="'image' names the input 'kf', which this action does not have"):
        ComfyUIBackend().run(context(server, tmp_path, "clip", params)[0])
