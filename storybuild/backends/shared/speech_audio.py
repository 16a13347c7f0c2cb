"""Sample-level work on synthesized speech: trim the tail, resample, convert to PCM.

Everything is plain numpy in float64 with fixed operation order, so the same samples in
give the same bytes out. numpy is imported by the caller's first use of this module,
which happens only inside a running speech action.
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil, gcd

from typing import Callable

import numpy as np

SILENCE_LEVEL = 1e-3  # -60 dBFS: below this a tail is inaudible under any mix
TAIL_S = 0.010  # kept after the last audible sample, so a decay is not cut mid-wave
FADE_S = 0.005  # a short fade-out at the cut, so it cannot click
KAISER_BETA = 8.6  # ~ -86 dB stop band: aliasing stays under 16-bit quantisation noise
ZERO_CROSSINGS = 16  # filter half-length, in zero crossings of the sinc


def audible_end(samples: np.ndarray, sample_rate: int) -> int:
    """How many samples to keep: up to the last audible one plus a short tail.

    All of it when nothing is audible (a line of punctuation is still a valid, silent line).
    """
    loud = np.flatnonzero(np.abs(samples) > SILENCE_LEVEL)
    if loud.size == 0:
        return int(samples.shape[0])
    return int(min(samples.shape[0], loud[-1] + 1 + round(TAIL_S * sample_rate)))


def fade_out(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """`samples` with a linear fade over the last FADE_S seconds."""
    n = min(samples.shape[0], round(FADE_S * sample_rate))
    if n == 0:
        return samples
    out = samples.copy()
    out[-n:] *= np.linspace(1.0, 0.0, n + 1)[1:]
    return out


@lru_cache(maxsize=8)
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc low-pass for rational resampling, split into `up` phases.

    Returns (bank, half): bank[p, k] is tap p + k·up of the prototype filter, whose
    centre is at tap `half`. The cut-off is the lower of the two Nyquist rates, so
    nothing folds back when downsampling and no images remain when upsampling.
    """
    rate = max(up, down)
    half = ZERO_CROSSINGS * rate
    n = np.arange(-half, half + 1, dtype=np.float64)
    h = np.sinc(n / rate) * np.kaiser(2 * half + 1, KAISER_BETA)
    h *= up / h.sum()  # DC gain `up` restores the level that zero-stuffing spreads out
    taps = ceil(h.size / up)
    padded = np.zeros(taps * up)
    padded[: h.size] = h
    return padded.reshape(taps, up).T.copy(), half


def resample(samples: np.ndarray, rate_in: int, rate_out: int, check: Callable[[], None] | None = None) -> np.ndarray:
    """`samples` (1-D float) resampled from rate_in to rate_out by polyphase filtering.

    Output sample n lies at input time n·rate_in/rate_out, so timings convert by the same
    ratio; the result has round(len·rate_out/rate_in) samples. `check` is called between
    passes (a long line takes seconds): an action's check_cancelled stops it there.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} → {rate_out}")
    x = np.asarray(samples, dtype=np.float64)
    if rate_in == rate_out:
        return x.copy()
    g = gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    bank, half = _polyphase_filter(up, down)
    taps = bank.shape[1]
    n_out = round(x.shape[0] * up / down)
    # Output n reads the up-sampled stream at m = n·down + half (the filter's centre);
    # only every up-th up-sampled sample is non-zero, so the sum runs over input
    # samples base - k with coefficient bank[phase, k].
    m = np.arange(n_out, dtype=np.int64) * down + half
    phase, base = m % up, m // up
    pad = taps  # zeros on both sides stand in for the silence beyond the ends
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad + 1)])
    y = np.zeros(n_out)
    for k in range(taps):
        if check is not None:
            check()
        y += bank[phase, k] * xp[base - k + pad]
    return y


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in -1..1 → int16, rounded to nearest and clipped."""
    return np.clip(np.rint(samples * 32767.0), -32768, 32767).astype(np.int16)
