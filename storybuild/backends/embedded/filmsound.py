"""The film's sound: each scene's stems laid on the film timeline through its transitions.

Every scene gets one gain curve (fade in over the transition before it, fade out over the
one after it), applied identically to its four stems, so after the crossfades the stems
still sum to the master. Then one loudness gain takes the master to the target (with a
look-ahead limiter riding down any peak it would push past -1 dBFS); that envelope too
is applied to every stem.

    crossfade / wipe: equal-power (the two scenes' sounds are unrelated, so power adds)
    fade (through black): the first scene fades out over the first half, the second
                          fades in over the second half, as the picture dips to black
    cut: a few milliseconds of ramp on each side, so a bed stopping dead does not click
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Collection, Mapping

import numpy as np

from storybuild.backends.embedded import loudness

from storybuild.backends.shared import audio
from storybuild.backends.embedded.cut import FilmCut
from storybuild.errors import BackendError
from storybuild.model import STEMS

DECLICK_S = 0.004


def _t(n: int) -> np.ndarray:
    return (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)


def fade_in_curve(kind: str, n: int) -> np.ndarray:
    """Gain of the incoming scene over an `n`-sample transition of type `kind`."""
    t = _t(n)
    if kind == "fade":
        return np.where(t < 0.5, 0.0, np.sin(np.pi * np.clip(t - 0.5, 0.0, 0.5)))
    return np.sin(t * np.pi / 2)


def fade_out_curve(kind: str, n: int) -> np.ndarray:
    """Gain of the outgoing scene over an `n`-sample transition of type `kind`."""
    t = _t(n)
    if kind == "fade":
        return np.where(t < 0.5, np.cos(np.pi * np.clip(t, 0.0, 0.5)), 0.0)
    return np.cos(t * np.pi / 2)


def sample_at(frame: int, fps: float, rate: int) -> int:
    """The sample where film frame `frame` begins."""
    return int(round(frame / fps * rate))


def scene_gain(cut: FilmCut, index: int, rate: int) -> np.ndarray:
    """The gain curve of scene `index` over its own samples."""
    span = cut.scenes[index]
    first, last = sample_at(span.start, cut.fps, rate), sample_at(span.end, cut.fps, rate)
    gain = np.ones(last - first, dtype=np.float64)
    declick = max(1, int(round(DECLICK_S * rate)))
    if index > 0:
        before = cut.scenes[index - 1]
        n = sample_at(before.end, cut.fps, rate) - first
        if n > 0:
            gain[:n] *= fade_in_curve(before.transition, n)
        else:
            gain[:declick] *= fade_in_curve("crossfade", min(declick, len(gain)))
    if index < len(cut.scenes) - 1:
        n = last - sample_at(cut.scenes[index + 1].start, cut.fps, rate)
        if n > 0:
            gain[len(gain) - n:] *= fade_out_curve(span.transition, n)
        else:
            k = min(declick, len(gain))
            gain[len(gain) - k:] *= fade_out_curve("crossfade", k)
    elif span.fade_out:
        n = min(len(gain), int(round(span.fade_out / cut.fps * rate)))
        gain[len(gain) - n:] *= audio.ramp(n)[::-1]
    return gain


def lay_stems(cut: FilmCut, load: Callable[[str, str], np.ndarray], rate: int) -> dict[str, np.ndarray]:
    """Each stem over the whole film; `load(scene_id, stem)` returns that scene's stem samples."""
    total = sample_at(cut.frames, cut.fps, rate)
    out = {name: np.zeros((total, 2), dtype=np.float32) for name in STEMS}
    for i, span in enumerate(cut.scenes):
        first = sample_at(span.start, cut.fps, rate)
        gain = scene_gain(cut, i, rate)[:, None]
        for name in STEMS:
            data = load(span.id, name)
            # A stem a few samples off its scene's length (rounding upstream) is padded or cut.
            n = min(len(data), len(gain))
            out[name][first:first + n] += data[:n] * gain[:n]
    return out


def normalise(stems: Mapping[str, np.ndarray], rate: int, target: float
              ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """(scaled float32 stems, master = their float32 sum, loudness facts).

    The normalisation envelope (one gain, plus peak limiting where needed) is computed
    on the master and applied to every stem, so the stems still sum to the master.
    """
    master = np.zeros_like(next(iter(stems.values())), dtype=np.float64)
    for name in STEMS:
        master += stems[name]
    envelope, measured, achieved = loudness.normalisation_envelope(master, rate, target)
    del master
    envelope = envelope[:, None]
    scaled = {name: (stems[name] * envelope).astype(np.float32) for name in STEMS}
    out = np.zeros(envelope.shape[:1] + (2,), dtype=np.float32)
    for name in STEMS:
        out += scaled[name]  # the master is the sum of exactly the samples written to the stems
    facts = {"measured": measured, "achieved": achieved, "target": target,
             "gain_db": float(20 * np.log10(np.max(envelope))) if len(envelope) else 0.0,
             "limited_db": float(20 * np.log10(np.min(envelope) / np.max(envelope))) if len(envelope) else 0.0}
    return scaled, out, facts


def write_stems(out_dir: Path, stems: Mapping[str, np.ndarray], master: np.ndarray, rate: int) -> dict[str, Path]:
    """Write master.wav and the four stem WAVs (32-bit float)."""
    written = {"master.wav": audio.write_wav(out_dir / "master.wav", master, rate)}
    for name in STEMS:
        written[f"{name}.wav"] = audio.write_wav(out_dir / f"{name}.wav", stems[name], rate)
    return written


def describe(facts: Mapping[str, float]) -> str:
    """A log line saying what loudness normalisation did."""
    if not math.isfinite(facts["measured"]):
        return "the film is silent; no loudness normalisation"
    line = (f"loudness {facts['measured']:.1f} LUFS → {facts['achieved']:.1f} LUFS (target {facts['target']:.1f}), "
            f"gain {facts['gain_db']:+.1f} dB")
    if facts["limited_db"] < -0.05:
        line += f", peaks limited by up to {-facts['limited_db']:.1f} dB"
    return line


def require(present: Collection[str], scene: str) -> None:
    """Raise if a scene lacks any of its four stems (`present`: the stem names it has)."""
    missing = [name for name in STEMS if name not in present]
    if missing:
        raise BackendError(f"scene {scene!r}: missing stem input(s) {', '.join(missing)}")
