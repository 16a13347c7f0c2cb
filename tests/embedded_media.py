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

from storybuild.backends.base import ActionContext
from storybuild.backends.embedded import ffmpeg

FPS = 24
W, H = 64, 36
RATE = 48000


def make_shot(folder: Path, shot_id: str, frames: int, lines: list[dict] | None = None,
              colour: tuple[int, int, int] = (200, 60, 40)) -> dict[str, Path]:
    """shot.mp4 (a moving bar over a flat colour), shot.json and thumb.png for one shot."""
    from PIL import Image

    folder = Path(folder) / shot_id
    folder.mkdir(parents=True, exist_ok=True)

    def frames_of():
        for i in range(frames):
            a = np.zeros((H, W, 3), np.uint8)
            a[...] = colour
            a[:, (i * 2) % W] = 255
            yield a.tobytes()

    ffmpeg.encode_frames(frames_of(), folder / "shot.mp4", FPS, W, H)
    shot = {"duration": frames / FPS, "fps": FPS, "frames": frames, "width": W, "height": H,
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
