"""EBU R128 / ITU-R BS.1770-4 integrated loudness, in numpy.

K-weighting is the BS.1770 pair of biquads (a high shelf modelling the head, then a
high-pass), designed for any sample rate the way libebur128 and pyloudnorm do. Running
two IIR filters sample by sample in Python is slow, so the cascade is applied as its
impulse response by FFT convolution: the filters' poles are well inside the unit circle,
so the response has decayed below 1e-15 long before it is truncated, and the result
equals the direct IIR to float precision. Gating: 400 ms blocks every 100 ms, an
absolute gate at -70 LUFS and a relative gate 10 LU under the ungated mean.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from storybuild.backends.shared.audio import fast_len

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
BLOCK_S = 0.4
STEP_S = 0.1


def _biquads(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(b, a) of the K-weighting stages at `rate` (BS.1770 analogue prototypes, bilinear)."""
    # Stage 1: high shelf, +4 dB above ~1.7 kHz.
    gain_db, q, fc = 3.999843853973347, 0.7071752369554196, 1681.974450955533
    k = math.tan(math.pi * fc / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = (np.array([vh + vb * k / q + k * k, 2.0 * (k * k - vh), vh - vb * k / q + k * k]) / a0,
             np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    # Stage 2: the RLB high-pass at ~38 Hz.
    q, fc = 0.5003270373238773, 38.13547087602444
    k = math.tan(math.pi * fc / rate)
    a0 = 1.0 + k / q + k * k
    highpass = (np.array([1.0, -2.0, 1.0]),
                np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]))
    return [shelf, highpass]


@lru_cache(maxsize=8)
def k_weighting_response(rate: int) -> np.ndarray:
    """The impulse response of the K-weighting cascade at `rate`, truncated where it is negligible."""
    n = 1 << int(math.ceil(math.log2(rate)))  # ~1 s: the 38 Hz pole's tail is far below float noise by then
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(n))
    response = np.ones_like(z)
    for b, a in _biquads(rate):
        response *= (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
    h = np.fft.irfft(response, n)
    # Keep the part that carries all but 1e-20 of the energy (a few thousand taps).
    energy = np.cumsum(h[::-1] ** 2)[::-1]
    keep = int(np.searchsorted(-energy, -1e-20 * energy[0]))
    return h[:max(keep, 3)]


def k_weighted(x: np.ndarray, rate: int) -> np.ndarray:
    """`x` (samples, channels) through the K-weighting cascade: float64, same shape."""
    return _convolve(np.asarray(x, np.float64), k_weighting_response(rate), len(x))


def _convolve(x: np.ndarray, h: np.ndarray, length: int) -> np.ndarray:
    """The first `length` samples of every channel of `x` (n, c) convolved with `h` (float64)."""
    n, m = len(x), len(h)
    out = np.zeros((length, x.shape[1]))
    if n == 0 or length == 0:
        return out
    nfft = fast_len(max(2 * m, min(n + m - 1, 1 << 16)))
    block = nfft - m + 1
    spectrum = np.fft.rfft(h, nfft)[:, None]
    for start in range(0, min(n, length), block):
        seg = np.fft.irfft(np.fft.rfft(x[start:start + block], nfft, axis=0) * spectrum, nfft, axis=0)
        end = min(length, start + nfft)
        out[start:end] += seg[:end - start]
    return out


def _block_mean_squares(weighted: np.ndarray, rate: int) -> np.ndarray:
    """Mean square of K-weighted samples (n, c) in each 400 ms block, every 100 ms, summed over channels."""
    block = int(round(BLOCK_S * rate))
    step = int(round(STEP_S * rate))
    if len(weighted) < block:
        return np.zeros(0)
    # Channel weights are 1 for left and right (BS.1770 weights only surrounds differently).
    power = np.zeros(len(weighted) + 1)
    np.cumsum(np.einsum("ij,ij->i", weighted, weighted), out=power[1:])
    starts = np.arange(0, len(weighted) - block + 1, step)
    return (power[starts + block] - power[starts]) / block


def _lufs(mean_square: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(np.maximum(mean_square, 0.0))


def _gated(blocks: np.ndarray) -> float:
    """Integrated loudness from block loudnesses: the absolute, then the relative gate."""
    gated = blocks[blocks > ABSOLUTE_GATE]
    if len(gated) == 0:
        return float("-inf")
    energy = 10.0 ** ((gated + 0.691) / 10.0)
    relative = -0.691 + 10.0 * math.log10(float(np.mean(energy))) + RELATIVE_GATE
    final = energy[gated > relative]
    return -0.691 + 10.0 * math.log10(float(np.mean(final)))


def _channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def block_loudness(x: np.ndarray, rate: int) -> np.ndarray:
    """Loudness (LUFS) of each 400 ms gating block, every 100 ms (empty if shorter than a block)."""
    x = _channels(x)
    if len(x) < int(round(BLOCK_S * rate)):
        return np.zeros(0)
    return _lufs(_block_mean_squares(k_weighted(x, rate), rate))


def integrated_loudness(x: np.ndarray, rate: int) -> float:
    """Integrated loudness of `x` (samples, channels) in LUFS; -inf for silence or < 400 ms."""
    return _gated(block_loudness(x, rate))


def _moving_min(x: np.ndarray, width: int) -> np.ndarray:
    """Minimum over a centred window of `width` samples (van Herk / Gil-Werman, O(n), vectorised)."""
    if width <= 1:
        return x.copy()
    half = width // 2
    padded = np.pad(x, (half, width - half - 1), mode="edge")
    total = -(-len(padded) // width) * width
    blocks = np.pad(padded, (0, total - len(padded)), constant_values=np.inf).reshape(-1, width)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(suffix[:len(x)], prefix[width - 1:width - 1 + len(x)])


def limiter_envelope(x: np.ndarray, rate: int, ceiling_db: float = -1.0, window_s: float = 0.012) -> np.ndarray:
    """Per-sample gain (<= 1) that keeps `x` (samples, channels) under the ceiling, smoothly.

    An offline look-ahead limiter: the gain each sample needs is held as a minimum over a
    window and then averaged over half of it, so the envelope ramps down before a peak and
    back up after it, and never exceeds what any sample in reach needs. Away from peaks
    the gain is exactly 1, so only the stretches around peaks are worked out.
    """
    ceiling = 10.0 ** (ceiling_db / 20.0)
    x = _channels(x)
    top = np.abs(x[:, 0]).astype(np.float64)
    for channel in range(1, x.shape[1]):  # column by column: a max along a short axis is slow
        np.maximum(top, np.abs(x[:, channel]), out=top)
    limited = np.flatnonzero(top > ceiling)
    envelope = np.ones(len(top))
    if limited.size == 0:
        return envelope
    need = np.ones(len(top))
    need[limited] = ceiling / top[limited]
    width = max(3, int(round(window_s * rate)) | 1)
    reach = 2 * width  # how far a peak's hold and ramps extend, with margin
    for start, stop in _spans(limited, 2 * reach):
        a, b = max(0, start - reach), min(len(top), stop + reach)
        envelope[a:b] = _held_and_smoothed(need[a:b], width)
    return envelope


def _held_and_smoothed(need: np.ndarray, width: int) -> np.ndarray:
    """The limiter's gain over a stretch that starts and ends in samples needing none."""
    held = _moving_min(need, width)
    average = width // 2 | 1
    # Average the reduction (1 - gain), not the gain: sums of exact zeros stay exactly zero,
    # so the envelope is exactly 1 wherever no peak is in reach.
    padded = np.pad(1.0 - held, (average // 2, average // 2), mode="edge")
    cumulative = np.concatenate([[0.0], np.cumsum(padded)])
    return 1.0 - (cumulative[average:] - cumulative[:-average]) / average


def _spans(where: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[start, stop) runs covering the sorted indices `where`, merging runs closer than `gap` samples."""
    if where.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(where) > gap)
    starts = np.concatenate([[where[0]], where[breaks + 1]])
    stops = np.concatenate([where[breaks], [where[-1]]]) + 1
    return list(zip(starts.tolist(), stops.tolist()))


def normalisation_envelope(x: np.ndarray, rate: int, target: float, ceiling_db: float = -1.0,
                           tolerance: float = 0.05) -> tuple[np.ndarray, float, float]:
    """(per-sample gain, LUFS before, LUFS after) taking `x` to `target` with peaks under the ceiling.

    Mostly one gain; where that gain would push peaks over the ceiling, the limiter's
    envelope rides them down, and the gain is nudged until the limited result measures
    the target. Silence gets gain 1.

    The K-weighting filter is linear, so the limited signal's weighted samples are
    gain·K(x) minus K(x·gain·(1 - limiter)), and the second term is filtered only around
    the peaks the limiter touched: one full filtering pass instead of one per attempt.
    """
    x = _channels(x)
    if len(x) < int(round(BLOCK_S * rate)):
        return np.ones(len(x)), float("-inf"), float("-inf")
    h = k_weighting_response(rate)
    weighted = k_weighted(x, rate)
    measured = _gated(_lufs(_block_mean_squares(weighted, rate)))
    if not math.isfinite(measured):
        return np.ones(len(x)), measured, measured
    gain = 10.0 ** ((target - measured) / 20.0)
    achieved = measured
    for _attempt in range(4):
        limiter = limiter_envelope(x * gain, rate, ceiling_db)
        envelope = gain * limiter
        limited = weighted * gain
        for start, stop in _spans(np.flatnonzero(limiter < 1.0), len(h)):
            reduction = x[start:stop] * (gain * (1.0 - limiter[start:stop]))[:, None]
            end = min(len(x), stop + len(h) - 1)
            limited[start:end] -= _convolve(reduction, h, end - start)
        achieved = _gated(_lufs(_block_mean_squares(limited, rate)))
        if abs(achieved - target) <= tolerance:
            break
        gain *= 10.0 ** ((target - achieved) / 20.0)
    return envelope, measured, achieved
