"""Deterministic algorithmic reverb: synthetic impulse responses per acoustic zone.

A zone's impulse response is built from seeded noise: a few discrete early reflections,
then a diffuse tail whose envelope decays to -60 dB in `rt60` seconds, with highs dying
faster than lows (air and walls absorb them). "outdoor" has no diffuse field, only slap
echoes off distant surfaces. Left and right use independent noise so the tail is wide.
Convolution is by FFT, so a two-second hall costs a few FFTs, not a slow IIR network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from storybuild.backends.shared.audio import fft_convolve
from storybuild.errors import BackendError


@dataclass(frozen=True)
class Zone:
    """The acoustic character of a space."""

    rt60: float  # seconds for the diffuse tail to fall by 60 dB
    predelay: float  # seconds before the first reflection
    wet: float  # level of the reverberant signal next to the dry one
    damping_hz: float  # above this, the tail decays faster
    early: int  # number of discrete early reflections
    early_span: float  # seconds over which early reflections arrive
    slaps: tuple[tuple[float, float], ...] = ()  # (delay s, relative gain) discrete echoes
    # Energy of each part relative to the others (each part is first made unit energy).
    early_level: float = 0.3
    slap_level: float = 0.0
    diffuse_level: float = 1.0
    seed: int = 0


ZONES: dict[str, Zone] = {
    "room": Zone(rt60=0.45, predelay=0.004, wet=0.22, damping_hz=5000.0, early=8, early_span=0.03,
                 early_level=0.4, seed=0x5EED01),
    "hall": Zone(rt60=2.1, predelay=0.022, wet=0.32, damping_hz=3500.0, early=14, early_span=0.08,
                 early_level=0.25, seed=0x5EED02),
    # Outdoors there is no diffuse field to speak of: slap echoes off distant walls or
    # cliffs, and a faint short wash from the ground and nearby surfaces.
    "outdoor": Zone(rt60=0.18, predelay=0.0, wet=0.3, damping_hz=2500.0, early=3, early_span=0.02,
                    slaps=((0.13, 1.0), (0.29, 0.55), (0.47, 0.25)), early_level=0.1, slap_level=1.0,
                    diffuse_level=0.12, seed=0x5EED03),
}


def zone(name: str) -> Zone | None:
    """The zone called `name`; None for "none"."""
    if name in ("none", "", None):
        return None
    if name not in ZONES:
        raise BackendError(f"unknown reverb {name!r}", hint=f"use one of: none, {', '.join(sorted(ZONES))}")
    return ZONES[name]


def _band_split(noise: np.ndarray, rate: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Split noise into complementary low and high bands (zero-phase, power-complementary)."""
    n = len(noise)
    spectrum = np.fft.rfft(noise, axis=0)
    f = np.fft.rfftfreq(n, 1.0 / rate)[:, None]
    low = 1.0 / np.sqrt(1.0 + (f / cutoff) ** 4)  # 2nd-order Butterworth magnitude
    high = np.sqrt(np.maximum(0.0, 1.0 - low * low))
    return np.fft.irfft(spectrum * low, n, axis=0), np.fft.irfft(spectrum * high, n, axis=0)


def _unit(part: np.ndarray) -> np.ndarray:
    energy = np.sqrt(np.sum(part * part, axis=0, keepdims=True))
    return part / np.maximum(energy, 1e-12)


@lru_cache(maxsize=16)
def impulse_response(name: str, rate: int) -> np.ndarray:
    """The stereo impulse response (samples, 2) of zone `name` at `rate`, unit energy per channel."""
    z = zone(name)
    if z is None:
        raise BackendError("the 'none' reverb has no impulse response")
    rng = np.random.default_rng(z.seed)
    tail_s = max([z.rt60 * 1.2, z.early_span] + [d + 0.05 for d, _ in z.slaps])
    length = int(math.ceil((z.predelay + tail_s) * rate)) + 1
    pre = int(round(z.predelay * rate))

    # Early reflections: sparse taps, weaker as they come later, independent per ear.
    early = np.zeros((length, 2))
    for ch in range(2):
        times = np.sort(rng.random(z.early)) * z.early_span
        signs = np.where(rng.random(z.early) < 0.5, -1.0, 1.0)
        for t, sign in zip(times, signs):
            early[pre + int(round(t * rate)), ch] += sign * (1.0 - 0.6 * t / max(z.early_span, 1e-9))

    # Slap echoes: a distant wall is not a mirror, so each echo is a few close taps.
    slaps = np.zeros((length, 2))
    for delay, gain in z.slaps:
        at = pre + int(round(delay * rate))
        spread = (rng.random((5, 2)) * 0.004 * rate).astype(int)
        for k in range(5):
            for ch in range(2):
                slaps[min(length - 1, at + spread[k, ch]), ch] += gain

    # Diffuse tail: noise decaying to -60 dB at rt60, highs (above damping_hz) twice as fast.
    n = length - pre
    t = np.arange(n, dtype=np.float64)[:, None] / rate
    low, high = _band_split(rng.random((n, 2)) * 2.0 - 1.0, rate, z.damping_hz)
    onset = 1.0 - np.exp(-t / 0.004)  # the diffuse field builds up rather than clicking in
    diffuse = np.zeros((length, 2))
    diffuse[pre:] = onset * (low * 10.0 ** (-3.0 * t / z.rt60) + high * 10.0 ** (-3.0 * t / (z.rt60 * 0.5)))

    ir = z.early_level * _unit(early) + z.diffuse_level * _unit(diffuse)
    if z.slaps:
        ir += z.slap_level * _unit(slaps)
    return _unit(ir).astype(np.float32)


def apply(x: np.ndarray, name: str, rate: int, wet: float | None = None) -> np.ndarray:
    """`x` (samples, 2) with the zone's reverb added; same length (the tail past the end is cut)."""
    z = zone(name)
    if z is None or len(x) == 0:
        return np.array(x, dtype=np.float32, copy=True)
    level = z.wet if wet is None else float(wet)
    if not np.any(x):
        return np.array(x, dtype=np.float32, copy=True)
    ir = impulse_response(name, rate)
    tail = fft_convolve(x, ir, length=len(x))
    return (x + np.float32(level) * tail).astype(np.float32)


def apply_with_tail(x: np.ndarray, name: str, rate: int, wet: float | None = None) -> np.ndarray:
    """`x` with reverb, extended by the impulse response so the tail rings out."""
    z = zone(name)
    if z is None:
        return np.array(x, dtype=np.float32, copy=True)
    ir = impulse_response(name, rate)
    out = np.zeros((len(x) + len(ir) - 1, x.shape[1]), dtype=np.float32)
    out[:len(x)] = x
    out += np.float32(z.wet if wet is None else wet) * fft_convolve(x, ir)
    return out
