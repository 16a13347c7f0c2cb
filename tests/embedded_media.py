"""Tiny synthetic media for the sound, assembly and export tests: shots, lines, beds.

Shots are 64x36 H.264 clips made with ffmpeg.encode_frames; audio is numpy tones and
noise; everything is small so the tests stay fast on a shared two-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import soundfile as sf

from storybuild.backends.contract import ActionContext
from storybuild.backends.shared import ffmpeg

FPS = 24
W, H = 64, 36
RATE = 48000


def make_shot(folder: Path, shot_id: str, frames: int, lines: list[dict] | None = None,
              colour: tuple[int, int, int] = (200, 60, 40), fps: float = FPS, grain: int = 0) -> dict[str, Path]:
    """shot.mp4 (a moving bar over a flat colour), shot.json and thumb.png for one shot.

    `grain` > 0 adds a ramp sliding 8 px a frame and noise of that amplitude (seeded by the
    shot id), so that the encoder has work and a frame out of place shows in a comparison.
    """
    from PIL import Image

    folder = Path(folder) / shot_id
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(shot_id.encode()))
    ramp = np.arange(W, dtype=np.int16)[None, :, None] * 4

    def frames_of():
        for i in range(frames):
            a = np.zeros((H, W, 3), np.int16)
            a[...] = colour
            if grain:
                a = a // 2 + (ramp + 8 * i) % 128 + rng.integers(-grain, grain + 1, (H, W, 3))
            a[:, (i * 2) % W] = 255
            yield np.clip(a, 0, 255).astype(np.uint8).tobytes()

    ffmpeg.encode_frames(frames_of(), folder / "shot.mp4", fps, W, H)
    shot = {"duration": frames / fps, "fps": fps, "frames": frames, "width": W, "height": H,
            "lines": lines or []}
    (folder / "shot.json").write_text(json.dumps(shot), encoding="utf-8")
    thumb = np.zeros((H, W, 3), np.uint8)
    thumb[...] = colour
    Image.fromarray(thumb).save(folder / "thumb.png")
    return {"video": folder / "shot.mp4", "json": folder / "shot.json", "thumb": folder / "thumb.png"}


def tone(path: Path, seconds: float, freq: float, amp: float = 0.3, rate: int = RATE, channels: int = 1) -> Path:
    """A sine tone WAV (PCM_16), mono or stereo."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    data = x if channels == 1 else np.stack([x] * channels, axis=1)
    sf.write(str(path), data.astype(np.float32), rate, subtype="PCM_16")
    return Path(path)


def noise(path: Path, seconds: float, amp: float = 0.1, seed: int = 1, rate: int = RATE) -> Path:
    """Stereo white noise (an ambience stand-in)."""
    x = amp * np.random.default_rng(seed).standard_normal((int(round(seconds * rate)), 2))
    sf.write(str(path), x.astype(np.float32), rate, subtype="PCM_16")
    return Path(path)


def context(tmp: Path, action_id: str, kind: str, params: Mapping[str, Any], inputs: Mapping[str, Path],
            logs: list[str] | None = None) -> ActionContext:
    """An ActionContext writing into a fresh folder under `tmp`."""
    out = Path(tmp) / ("out-" + action_id.replace("/", "_"))
    out.mkdir(parents=True, exist_ok=True)
    sink = logs if logs is not None else []
    return ActionContext(action_id=action_id, kind=kind, params=params, inputs=dict(inputs), out_dir=out,
                         project_root=Path(tmp), log=sink.append)


def read(path: Path) -> np.ndarray:
    """A WAV as float32 (samples, channels)."""
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return data


def build_scenes(tmp: Path, scenes: Mapping[str, list[tuple[str, int, tuple[int, int, int]]]],
                 lines: Mapping[str, list[dict]], fps: float = FPS, grain: int = 0) -> dict[str, Path]:
    """Shots, mixes and scene.mp4 for `scenes` (scene → [(shot, frames, colour)]); one tone per line.

    Returns every file by the input name the film and export actions use
    (shot:<id>, thumb:<id>, video:<id>, stems:<scene>:<stem>, scene:<scene>).
    """
    from storybuild.backends.embedded.assemble import run_scene
    from storybuild.backends.embedded.mix import run_mix

    music = tone(tmp / "music.wav", 3.0, 220.0, 0.2, channels=2)
    files: dict[str, Path] = {}
    for scene, shots in scenes.items():
        mix_inputs: dict[str, Path] = {"audio:music": music}
        mix_shots = []
        for shot, frames, colour in shots:
            made = make_shot(tmp / "shots", shot, frames, lines.get(shot), colour, fps, grain)
            files.update({f"shot:{shot}": made["json"], f"video:{shot}": made["video"], f"thumb:{shot}": made["thumb"]})
            mix_inputs[f"shot:{shot}"] = made["json"]
            entry: dict[str, Any] = {"id": shot, "lines": [], "sfx": []}
            for line in lines.get(shot, []):
                name = f"line:{shot}/{line['index']}"
                wav = tmp / f"line-{shot}-{line['index']}.wav"
                mix_inputs[name] = tone(wav, line["end"] - line["start"], 330.0, 0.4)
                entry["lines"].append({"index": line["index"], "input": name, "volume": 1.0})
            mix_shots.append(entry)
        mix = run_mix(context(tmp, f"mix/{scene}", "mix", {
            "sample_rate": RATE, "reverb": "room", "ambience": None, "shots": mix_shots,
            "music": {"input": "audio:music", "volume": 1.0, "duck": 0.5, "fade_in": 0.0, "fade_out": 0.0,
                      "start": 0.0}}, mix_inputs))
        for stem in ("dialogue", "music", "sfx", "ambience"):
            files[f"stems:{scene}:{stem}"] = mix[f"{stem}.wav"]
        scene_inputs = {f"shot:{s}:video": files[f"video:{s}"] for s, _f, _c in shots}
        scene_inputs["mix"] = mix["mix.wav"]
        out = run_scene(context(tmp, f"scene/{scene}", "scene",
                                {"fps": fps, "width": W, "height": H, "shots": [s for s, _f, _c in shots]},
                                scene_inputs))
        files[f"scene:{scene}"] = out["scene.mp4"]
    return files


def film_params(scenes: Mapping[str, list], transitions: Mapping[str, dict], fps: float = FPS) -> dict[str, Any]:
    """Film params for `scenes` with `transitions` (scene → {"type", "duration"}; default cut)."""
    return {"fps": fps, "width": W, "height": H, "sample_rate": RATE, "loudness": -16.0,
            "scenes": [{"id": scene, "transition": transitions.get(scene, {"type": "cut", "duration": 0.0}),
                        "shots": [s for s, _f, _c in shots]} for scene, shots in scenes.items()]}


def film_inputs(files: Mapping[str, Path]) -> dict[str, Path]:
    """The subset of `build_scenes` files that the sound and film actions take."""
    return {k: v for k, v in files.items() if k.split(":")[0] in ("shot", "stems", "scene")}


def assemble_film(tmp: Path, params: Mapping[str, Any], files: Mapping[str, Path],
                  logs: list[str] | None = None) -> tuple[dict[str, Path], ActionContext]:
    """Run `sound`, then `film` on its master, as the planner chains them: (all outputs, film's context)."""
    from storybuild.backends.embedded.assemble import run_film, run_sound

    inputs = film_inputs(files)
    outputs = dict(run_sound(context(tmp, "sound", "sound", params, inputs, logs)))
    ctx = context(tmp, "film", "film", params, {**inputs, "master": outputs["master.m4a"]}, logs)
    outputs.update(run_film(ctx))
    return outputs, ctx
