"""Audio buffers for mixing: load, resample, loop, fade, pan, place, duck, convolve.

Every buffer is a float32 numpy array shaped (samples, channels), stereo unless noted.
Everything here is deterministic: no threads, no randomness, no BLAS (sums go through
einsum or FFTs), so the same inputs give the same bytes.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Iterable

import numpy as np

from storybuild.errors import BackendError

# Resampler design: Kaiser-windowed sinc with this many zero crossings on each side
# (at the output's cutoff), passband up to ROLLOFF of the lower Nyquist frequency.
# With beta 8.6 the stopband sits near -90 dB, far below anything audible in a mix.
ZERO_CROSSINGS = 16
ROLLOFF = 0.945
KAISER_BETA = 8.6
MAX_PHASES = 4096  # rates whose ratio needs more phases round to the nearest of these
_CHUNK = 16384  # output samples per vectorised step (bounds memory to a few MB)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 (samples, channels) and its rate, any format libsndfile knows.

    Files libsndfile cannot read (m4a, aac, …) are decoded by ffmpeg into stereo.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data), int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return _read_with_ffmpeg(path), _ffmpeg_rate(path)


def _ffmpeg_rate(path: Path) -> int:
    from storybuild.backends.shared import ffmpeg

    info = ffmpeg.probe(path)
    if info.audio is None or info.sample_rate is None:
        raise BackendError(f"{path.name}: no audio stream found (is it an audio file?)")
    return info.sample_rate


def _read_with_ffmpeg(path: Path) -> np.ndarray:
    from storybuild.backends.shared import ffmpeg

    rate = _ffmpeg_rate(path)
    # ffmpeg's own downmix handles 5.1 and friends properly; we only ask for stereo f32.
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                           "-i", str(path), "-map", "0:a:0", "-ac", "2", "-ar", str(rate),
                           "-f", "f32le", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        raise BackendError(f"cannot read audio file {path.name}: {tail}")
    return np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, 2).astype(np.float32)


def load(path: Path, rate: int) -> np.ndarray:
    """Load an audio file as float32 stereo at `rate` (mono is duplicated, >2 channels downmixed)."""
    if not Path(path).is_file():
        raise BackendError(f"audio file not found: {path}")
    data, src_rate = read_audio(Path(path))
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    elif data.shape[1] > 2:
        data = _read_with_ffmpeg(Path(path))
    return resample(data, src_rate, rate)


def load_mono(path: Path, rate: int) -> np.ndarray:
    """Load an audio file as a float32 mono vector at `rate` (channels averaged)."""
    if not Path(path).is_file():
        raise BackendError(f"audio file not found: {path}")
    data, src_rate = read_audio(Path(path))
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
    return resample(mono, src_rate, rate)[:, 0]


def write_wav(path: Path, data: np.ndarray, rate: int) -> Path:
    """Write samples as a 32-bit float WAV, byte-identical for identical samples.

    Written by hand because libsndfile adds a PEAK chunk stamped with the current time.
    """
    import struct

    samples = np.ascontiguousarray(data, dtype="<f4")
    if samples.ndim == 1:
        samples = samples[:, None]
    channels = samples.shape[1]
    payload = samples.tobytes()
    fmt = struct.pack("<HHIIHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32)  # 3: IEEE float
    fact = struct.pack("<I", len(samples))  # non-PCM WAVs carry their frame count in a fact chunk
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(payload)) + payload)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


# --------------------------------------------------------------------------- resampling


def _kaiser_sinc_table(phases: int, half: int, scale: float) -> np.ndarray:
    """Polyphase filter table (phases, 2*half): row p holds the taps for fractional offset p/phases."""
    frac = np.arange(phases, dtype=np.float64)[:, None] / phases
    k = np.arange(2 * half, dtype=np.float64)[None, :]
    tau = frac + (half - 1) - k  # distance from the output position to each input tap
    u = np.clip(tau / half, -1.0, 1.0)
    window = np.i0(KAISER_BETA * np.sqrt(1.0 - u * u)) / np.i0(KAISER_BETA)
    table = scale * np.sinc(scale * tau) * window
    # Normalising each phase to unit DC gain removes the small ripple that would
    # otherwise modulate a constant signal at the phase pattern's period.
    table /= table.sum(axis=1, keepdims=True)
    return table.astype(np.float32)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample (samples, channels) float32 from `src` Hz to `dst` Hz with a polyphase windowed sinc."""
    if src == dst or len(x) == 0:
        return np.ascontiguousarray(x, dtype=np.float32)
    if src <= 0 or dst <= 0:
        raise BackendError(f"invalid sample rates for resampling: {src} → {dst}")
    g = math.gcd(src, dst)
    up, down = dst // g, src // g
    phases = min(up, MAX_PHASES)
    scale = min(1.0, dst / src) * ROLLOFF
    half = int(math.ceil(ZERO_CROSSINGS / scale))
    table = _kaiser_sinc_table(phases, half, scale)
    n_in = len(x)
    n_out = (n_in * up + down - 1) // down
    padded = np.zeros((n_in + 2 * half + 1 + down, x.shape[1]), dtype=np.float32)
    padded[half - 1:half - 1 + n_in] = x
    if up == phases:
        return _resample_by_phase(padded, table, up, down, n_out)
    return _resample_by_gather(padded, table, up, down, n_out)


def _resample_by_phase(padded: np.ndarray, table: np.ndarray, up: int, down: int, n_out: int) -> np.ndarray:
    """Outputs n, n+up, n+2up… share one phase and step `down` inputs: one strided dot per phase."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(padded, table.shape[1], axis=0)  # (positions, channels, taps), no copy
    out = np.empty((n_out, padded.shape[1]), dtype=np.float32)
    for first in range(min(up, n_out)):
        base, phase = divmod(first * down, up)
        count = len(range(first, n_out, up))
        out[first::up] = np.einsum("jct,t->jc", windows[base:base + count * down:down], table[phase])
    return out


def _resample_by_gather(padded: np.ndarray, table: np.ndarray, up: int, down: int, n_out: int) -> np.ndarray:
    """General path for ratios with more phases than the table holds: round to the nearest phase."""
    phases, n_taps = table.shape
    out = np.empty((n_out, padded.shape[1]), dtype=np.float32)
    taps = np.arange(n_taps, dtype=np.int64)
    for begin in range(0, n_out, _CHUNK):
        n = np.arange(begin, min(begin + _CHUNK, n_out), dtype=np.int64)
        base, rem = np.divmod(n * down, up)
        phase = (rem * phases + up // 2) // up
        wrap = phase == phases
        base = base + wrap
        phase = np.where(wrap, 0, phase)
        windows = padded[base[:, None] + taps[None, :]]  # (n, taps, channels)
        out[begin:begin + len(n)] = np.einsum("ntc,nt->nc", windows, table[phase])
    return out


# --------------------------------------------------------------------------- shaping


def loop_to(x: np.ndarray, length: int, crossfade: int = 0) -> np.ndarray:
    """`x` repeated (or cut) to exactly `length` samples; seams crossfade over `crossfade` samples."""
    if length <= 0:
        return np.zeros((0, x.shape[1]), dtype=np.float32)
    if len(x) == 0:
        return np.zeros((length, x.shape[1]), dtype=np.float32)
    if len(x) >= length:
        return np.ascontiguousarray(x[:length], dtype=np.float32)
    xf = crossfade if 0 < crossfade * 2 < len(x) else 0
    if xf == 0:
        reps = -(-length // len(x))
        return np.ascontiguousarray(np.tile(x, (reps, 1))[:length], dtype=np.float32)
    # Each copy after the first starts `xf` samples early and fades in while the
    # previous one fades out (equal power: loops are uncorrelated at the seam).
    period = len(x) - xf
    t = (np.arange(xf, dtype=np.float64) + 0.5) / xf
    fade_in = np.sin(t * math.pi / 2)[:, None]
    fade_out = np.cos(t * math.pi / 2)[:, None]
    shaped = x.astype(np.float64)
    shaped[:xf] *= fade_in
    out = np.zeros((length + len(x), x.shape[1]), dtype=np.float64)
    out[:len(x)] = x
    start = period
    while start < length:
        out[start:start + xf] *= fade_out
        out[start:start + len(x)] += shaped
        start += period
    return out[:length].astype(np.float32)


def fade(x: np.ndarray, rate: int, fade_in: float = 0.0, fade_out: float = 0.0) -> np.ndarray:
    """A copy of `x` with raised-cosine fades (seconds) at its start and end."""
    out = np.array(x, dtype=np.float32, copy=True)
    n_in = min(len(out), int(round(max(0.0, fade_in) * rate)))
    n_out = min(len(out), int(round(max(0.0, fade_out) * rate)))
    if n_in:
        out[:n_in] *= ramp(n_in)[:, None]
    if n_out:
        out[len(out) - n_out:] *= ramp(n_out)[::-1, None]
    return out


def ramp(n: int) -> np.ndarray:
    """A raised-cosine ramp from 0 towards 1 over `n` samples (float32, never reaching 1 exactly)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(1, n)
    return (0.5 - 0.5 * np.cos(math.pi * t)).astype(np.float32)


def pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Place a mono vector in stereo with the equal-power (-3 dB centre) law; position -1..1."""
    p = min(1.0, max(-1.0, float(position)))
    angle = (p + 1.0) * math.pi / 4.0
    gains = np.array([math.cos(angle), math.sin(angle)], dtype=np.float32)
    return np.asarray(mono, dtype=np.float32)[:, None] * gains[None, :]


def place(dst: np.ndarray, src: np.ndarray, start: int) -> bool:
    """Add `src` into `dst` starting at sample `start` (clipped to dst); return False if it was cut."""
    begin = max(0, start)
    end = min(len(dst), start + len(src))
    if end > begin:
        dst[begin:end] += src[begin - start:end - start]
    return begin - start == 0 and end - start == len(src)


def duck_envelope(length: int, rate: int, intervals: Iterable[tuple[float, float]], gain: float,
                  attack: float = 0.12, release: float = 0.45) -> np.ndarray:
    """Gain (length,) that dips to `gain` over each (start, end) second interval.

    The dip begins `attack` seconds before a line starts (the timeline is known, so we can
    look ahead and have the music already down when the first syllable lands) and
    recovers over `release` seconds after it ends. Pauses shorter than attack + release
    hold the dip, so the music does not pump up and down between sentences.
    """
    depth = np.zeros(length, dtype=np.float32)
    n_att = max(1, int(round(attack * rate)))
    n_rel = max(1, int(round(release * rate)))
    up, down = ramp(n_att), ramp(n_rel)[::-1]
    held: list[list[float]] = []
    for start, end in sorted(intervals):
        if held and start - held[-1][1] < attack + release:
            held[-1][1] = max(held[-1][1], end)
        else:
            held.append([start, end])
    for start, end in held:
        s, e = int(round(start * rate)), int(round(end * rate))
        if e <= s:
            continue
        shape = np.concatenate([up, np.ones(e - s, dtype=np.float32), down])
        lo = s - n_att
        a, b = max(0, lo), min(length, lo + len(shape))
        if b > a:
            np.maximum(depth[a:b], shape[a - lo:b - lo], out=depth[a:b])
    return (1.0 - (1.0 - float(gain)) * depth).astype(np.float32)


# --------------------------------------------------------------------------- convolution


def fast_len(n: int) -> int:
    """The smallest 5-smooth number (2^a 3^b 5^c) >= n: sizes where FFTs are fastest."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(x: np.ndarray, h: np.ndarray, length: int | None = None) -> np.ndarray:
    """Convolve each channel of `x` (n, c) with the same channel of `h` (m, c) by FFT overlap-add.

    Returns the first `length` samples (default n + m - 1) as float32.
    """
    n, m = len(x), len(h)
    if length is None:
        length = n + m - 1
    out = np.zeros((length, x.shape[1]), dtype=np.float64)
    if n == 0 or m == 0 or length == 0:
        return out.astype(np.float32)
    nfft = fast_len(max(2 * m, min(n + m - 1, 1 << 16)))
    block = nfft - m + 1
    spectrum = np.fft.rfft(h.astype(np.float64), nfft, axis=0)
    for start in range(0, min(n, length), block):
        seg = np.fft.irfft(np.fft.rfft(x[start:start + block].astype(np.float64), nfft, axis=0) * spectrum,
                           nfft, axis=0)
        end = min(length, start + nfft)
        out[start:end] += seg[:end - start]
    return out.astype(np.float32)


def peak(x: np.ndarray) -> float:
    """The largest absolute sample value."""
    return float(np.max(np.abs(x))) if x.size else 0.0

