"""The film's sound and film actions alone: three scenes (~45 s, 640×360, 24 fps), two transitions.

Builds realistic scene inputs once — shots encoded by `ffmpeg.encode_frames` from numpy
frames (moving gradients under noise, so the encoder has work), joined by the scene
action, with four stems per scene — then times `run_sound` (laying out, normalising and
writing the stems) and `run_film` on its master (cutting, blending the transition
windows, joining, AAC): the two actions a one-line edit re-runs at the end. Prints the
conditions and a table.

    python benchmarks/bench_film_join.py [--repeat 3] [--seconds 45]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing; PYTHONPATH still wins
    sys.path.append(str(ROOT))

from storybuild.backends.contract import ActionContext  # noqa: E402
from storybuild.backends.embedded import assemble, ffmpeg  # noqa: E402
from storybuild.model import STEMS  # noqa: E402

FPS, W, H, RATE = 24, 640, 360, 48000


def _frames(count: int, seed: int):
    """Moving diagonal gradients with per-frame noise: cheap to make, real work to encode."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    tint = rng.integers(0, 255, 3)
    for i in range(count):
        base = np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, (x + y + i) % 256], axis=-1) // 2 + tint // 2
        noise = rng.integers(-6, 7, (H, W, 3))
        yield np.clip(base + noise, 0, 255).astype(np.uint8).tobytes()


def _context(tmp: Path, action: str, kind: str, params: dict, inputs: dict, progress=None) -> ActionContext:
    out = tmp / ("out-" + action.replace("/", "_"))
    out.mkdir(parents=True, exist_ok=True)
    ctx = ActionContext(action_id=action, kind=kind, params=params, inputs=inputs, out_dir=out,
                        project_root=tmp, log=lambda _line: None)
    if progress is not None:
        ctx.progress = progress
    return ctx


def _wav(path: Path, seconds: float, freq: float, seed: int) -> Path:
    t = np.arange(int(round(seconds * RATE))) / RATE
    tone = 0.2 * np.sin(2 * np.pi * freq * t)
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    sf.write(str(path), np.stack([tone + noise] * 2, axis=1).astype(np.float32), RATE, subtype="FLOAT")
    return path


def build_inputs(tmp: Path, seconds: float) -> tuple[dict, dict]:
    """Shots, scenes and stems for three scenes of about `seconds` / 3 each; (film params, inputs)."""
    per_scene = int(round(seconds / 3 * FPS))
    layout = {"harbour": [per_scene // 2, per_scene - per_scene // 2],
              "storm": [per_scene // 3] * 2 + [per_scene - 2 * (per_scene // 3)],
              "dawn": [per_scene]}
    inputs: dict[str, Path] = {}
    scenes = []
    seed = 0
    for scene, lengths in layout.items():
        shots, videos = [], {}
        for n, frames in enumerate(lengths):
            seed += 1
            shot = f"{scene}-{n + 1}"
            folder = tmp / "shots" / shot
            folder.mkdir(parents=True)
            ffmpeg.encode_frames(_frames(frames, seed), folder / "shot.mp4", FPS, W, H)
            (folder / "shot.json").write_text(json.dumps({"duration": frames / FPS, "fps": FPS, "frames": frames,
                                                          "width": W, "height": H, "lines": []}))
            inputs[f"shot:{shot}"] = folder / "shot.json"
            videos[f"shot:{shot}:video"] = folder / "shot.mp4"
            shots.append(shot)
        length = sum(lengths) / FPS
        for k, stem in enumerate(STEMS):
            inputs[f"stems:{scene}:{stem}"] = _wav(tmp / f"{scene}-{stem}.wav", length, 110.0 * (k + 2), seed + k)
        mix = _wav(tmp / f"{scene}-mix.wav", length, 220.0, seed)
        out = assemble.run_scene(_context(tmp, f"scene/{scene}", "scene",
                                          {"fps": FPS, "width": W, "height": H, "shots": shots},
                                          {**videos, "mix": mix}))
        inputs[f"scene:{scene}"] = out["scene.mp4"]
        scenes.append({"id": scene, "shots": shots, "transition": {"type": "cut", "duration": 0.0}})
    scenes[0]["transition"] = {"type": "crossfade", "duration": 1.0}
    scenes[1]["transition"] = {"type": "fade", "duration": 1.0}
    params = {"fps": FPS, "width": W, "height": H, "sample_rate": RATE, "loudness": -16.0, "scenes": scenes}
    return params, inputs


def time_film(tmp: Path, params: dict, inputs: dict, run: int) -> tuple[float, float]:
    """(sound seconds, film seconds) of one run_sound and the run_film on its master."""
    start = time.perf_counter()
    sound = assemble.run_sound(_context(tmp, f"sound-{run}", "sound", params, inputs))
    middle = time.perf_counter()
    assemble.run_film(_context(tmp, f"film-{run}", "film", params, {**inputs, "master": sound["master.m4a"]}))
    return middle - start, time.perf_counter() - middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=45.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        made = time.perf_counter()
        params, inputs = build_inputs(tmp, args.seconds)
        made = time.perf_counter() - made
        runs = [time_film(tmp, params, inputs, k) for k in range(args.repeat)]
        film = tmp / f"out-film-{args.repeat - 1}" / "film.mp4"
        frames = ffmpeg.count_frames(film)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{W}x{H} {FPS} fps, 3 scenes, crossfade 1 s + fade 1 s: {frames} frames "
              f"({frames / FPS:.1f} s); inputs built in {made:.1f} s; load {load:.2f}; {os.cpu_count()} cores")
        print(f"{'':<10} {'sound s':>8} {'film s':>8} {'total s':>8}")
        for k, (sound, film) in enumerate(runs):
            print(f"{'run ' + str(k + 1):<10} {sound:8.2f} {film:8.2f} {sound + film:8.2f}")
        print(f"{'median':<10} {statistics.median(s for s, _ in runs):8.2f} "
              f"{statistics.median(f for _, f in runs):8.2f} {statistics.median(s + f for s, f in runs):8.2f}")


if __name__ == "__main__":
    main()
