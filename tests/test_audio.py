"""Audio helpers: resampling, looping, fades, panning, ducking, reverb, loudness."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from storybuild.backends.embedded import loudness, reverb

from storybuild.backends.shared import audio

from storybuild.backends.shared import ffmpeg
from storybuild.errors import BackendError


def _sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _error_db(actual: np.ndarray, expected: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean((actual - expected) ** 2)) / np.sqrt(np.mean(expected ** 2)))


@pytest.mark.parametrize("src,dst", [(44100, 48000), (22050, 48000), (48000, 44100), (44101, 48000)])
def test_resample_keeps_a_tone_clean(src, dst):
    x = _sine(1000.0, 1.0, src)[:, None]
    y = audio.resample(x, src, dst)
    assert len(y) == -(-len(x) * dst // src)
    expected = _sine(1000.0, len(y) / dst, dst)[:len(y)]
    edge = dst // 20  # the ends see the zero padding
    assert _error_db(y[edge:-edge, 0], expected[edge:-edge]) < -80


def test_resample_removes_what_the_new_rate_cannot_hold():
    x = _sine(30000.0, 0.5, 96000)[:, None]
    y = audio.resample(x, 96000, 48000)
    assert np.max(np.abs(y[1000:-1000])) < 1e-4  # would alias to 18 kHz at full level otherwise


def test_load_makes_stereo_at_the_target_rate(tmp_path: Path):
    sf.write(str(tmp_path / "m.ogg"), _sine(440.0, 0.5, 44100), 44100, format="OGG", subtype="VORBIS")
    loaded = audio.load(tmp_path / "m.ogg", 48000)
    assert loaded.shape == (24000, 2) and loaded.dtype == np.float32
    assert np.array_equal(loaded[:, 0], loaded[:, 1])
    with pytest.raises(BackendError, match="not found"):
        audio.load(tmp_path / "missing.wav", 48000)


def test_write_wav_is_bit_exact_and_readable(tmp_path: Path):
    x = np.random.default_rng(3).uniform(-1, 1, (1000, 2)).astype(np.float32)
    one, two = audio.write_wav(tmp_path / "1.wav", x, 48000), audio.write_wav(tmp_path / "2.wav", x, 48000)
    assert one.read_bytes() == two.read_bytes()
    back, rate = sf.read(str(one), dtype="float32")
    assert rate == 48000 and np.array_equal(back, x)


def test_pan_is_equal_power():
    mono = np.ones(10, dtype=np.float32)
    for position in (-1.0, -0.3, 0.0, 0.7, 1.0):
        st = audio.pan(mono, position)
        assert np.allclose(st[:, 0] ** 2 + st[:, 1] ** 2, 1.0)
    assert np.allclose(audio.pan(mono, -1.0)[:, 1], 0.0) and np.allclose(audio.pan(mono, 1.0)[:, 0], 0.0)
    assert np.allclose(audio.pan(mono, 0.0), np.sqrt(0.5))


def test_loop_to_is_continuous_and_exact_length():
    x = np.stack([_sine(100.0, 0.1, 1000)] * 2, axis=1)  # exactly 10 periods: loops seamlessly
    looped = audio.loop_to(x, 350)
    assert looped.shape == (350, 2)
    assert np.allclose(looped[100:200], x) and np.allclose(looped[300:], x[:50])
    faded = audio.loop_to(np.ones((100, 2), np.float32), 300, crossfade=20)
    assert faded.shape == (300, 2) and np.all(faded > 0.9)  # equal-power seams never dip to silence


def test_fade_and_duck_envelope_are_smooth():
    faded = audio.fade(np.ones((1000, 2), np.float32), 1000, fade_in=0.1, fade_out=0.2)
    assert faded[0, 0] < 0.01 and faded[500, 0] == 1.0 and faded[-1, 0] < 0.01
    assert np.all(np.diff(faded[:100, 0]) > 0)
    env = audio.duck_envelope(3000, 1000, [(1.0, 1.5), (1.6, 2.0)], 0.3, attack=0.1, release=0.3)
    assert env[0] == 1.0 and env[1200] == pytest.approx(0.3) and env[1550] == pytest.approx(0.3)
    assert env[2999] == pytest.approx(1.0, abs=1e-3)
    assert np.max(np.abs(np.diff(env))) < 0.05  # no steps


def test_reverb_adds_a_decaying_tail():
    rate = 48000
    click = np.zeros((rate * 3, 2), np.float32)
    click[0] = 1.0
    for name, rt60 in (("room", 0.45), ("hall", 2.1)):
        wet = reverb.apply(click, name, rate)
        tail = wet[1:, 0] ** 2
        early = tail[:int(0.1 * rate)].sum()
        late = tail[int(0.1 * rate):int(0.1 * rate) * 2].sum()
        assert early > 0 and late > 0 and late < early
        assert np.abs(wet[int(rt60 * rate):, 0]).max() < 1e-3  # -60 dB by rt60
    slap = reverb.apply(click, "outdoor", rate)[:, 0]
    echo = int(0.13 * rate)
    assert np.abs(slap[echo - 10:echo + 250]).max() > 0.05  # the slap echo off a far wall
    assert np.array_equal(reverb.apply(click, "none", rate), click)
    assert np.array_equal(reverb.apply(click, "hall", rate), reverb.apply(click, "hall", rate))


def test_fft_convolve_matches_direct_convolution():
    rng = np.random.default_rng(5)
    x, h = rng.standard_normal((5000, 2)), rng.standard_normal((300, 2))
    ours = audio.fft_convolve(x, h)
    assert np.allclose(ours[:, 1], np.convolve(x[:, 1], h[:, 1]), atol=1e-4)


def _ffmpeg_loudness(path: Path) -> float:
    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128",
                           "-f", "null", "-"], capture_output=True, text=True)
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", proc.stderr)[-1])


@pytest.mark.parametrize("rate", [48000, 44100])
def test_loudness_matches_ffmpeg_ebur128(tmp_path: Path, rate: int):
    rng = np.random.default_rng(7)
    t = np.arange(rate * 5) / rate
    # Speech-like: a tone in bursts (so gating matters), low rumble, and noise.
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 0.4 * t) > 0.2)
    x += 0.2 * np.sin(2 * np.pi * 50 * t) + 0.02 * rng.standard_normal(len(t))
    signal = np.stack([x, 0.6 * x], axis=1).astype(np.float32)
    audio.write_wav(tmp_path / "l.wav", signal, rate)
    assert loudness.integrated_loudness(signal, rate) == pytest.approx(_ffmpeg_loudness(tmp_path / "l.wav"), abs=0.5)


def test_loudness_of_reference_tone_and_silence():
    # BS.1770: a 0 dBFS 997 Hz sine in one channel measures -3.01 LUFS.
    x = np.zeros((48000 * 2, 2), np.float32)
    x[:, 0] = _sine(997.0, 2.0, 48000, amp=1.0)
    assert loudness.integrated_loudness(x, 48000) == pytest.approx(-3.01, abs=0.05)
    assert loudness.integrated_loudness(np.zeros((48000, 2), np.float32), 48000) == float("-inf")


def test_normalisation_reaches_the_target_and_limits_peaks():
    rate = 48000
    x = np.zeros((rate * 4, 2), np.float32)
    x[:, 0] = x[:, 1] = _sine(300.0, 4.0, rate, amp=0.05)
    x[rate:rate + 200] = 0.9  # a door slam: reaching -16 LUFS would push it far past full scale
    envelope, before, after = loudness.normalisation_envelope(x, rate, -16.0)
    out = x * envelope[:, None]
    assert after == pytest.approx(-16.0, abs=0.05)
    assert loudness.integrated_loudness(out, rate) == pytest.approx(-16.0, abs=0.05)
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    assert np.max(np.abs(np.diff(envelope))) < 0.05 * np.max(envelope)  # ramps, not steps
    assert np.ptp(envelope[2 * rate:]) == 0.0  # away from the slam, one plain gain
    assert np.all(loudness.limiter_envelope(x * 0.1, rate) == 1.0)  # nothing near the ceiling: untouched
    silent, measured, _ = loudness.normalisation_envelope(np.zeros((rate, 2), np.float32), rate, -16.0)
    assert measured == float("-inf") and np.all(silent == 1.0)


def test_normalisation_measures_the_limited_signal_exactly():
    # The envelope's loudness is worked out from one K-weighting pass plus corrections
    # around limited peaks; it must equal measuring the limited signal from scratch.
    rate = 48000
    rng = np.random.default_rng(3)
    x = (0.05 * rng.standard_normal((rate * 6, 2))).astype(np.float32)
    for start in (rate // 2, rate * 2, rate * 2 + 900, rate * 5):  # peaks, two of them close together
        x[start:start + 300] = 0.95
    envelope, _, after = loudness.normalisation_envelope(x, rate, -10.0)
    assert envelope.min() < 0.5 * envelope.max()  # the peaks really were ridden down
    assert after == pytest.approx(loudness.integrated_loudness(x * envelope[:, None], rate), abs=1e-6)


def test_limiter_leaves_samples_out_of_reach_of_peaks_exactly_alone():
    rate = 48000
    x = np.full((rate, 2), 0.1, np.float32)
    x[rate // 2:rate // 2 + 10] = 2.0
    gain = loudness.limiter_envelope(x, rate)
    touched = np.flatnonzero(gain < 1.0)
    assert gain.min() <= 10 ** (-1 / 20) / 2.0 + 1e-9  # the peak is brought under the ceiling
    assert touched.min() > rate // 2 - int(0.012 * rate) and touched.max() < rate // 2 + int(0.012 * rate)
    assert np.all(gain[:touched.min()] == 1.0) and np.all(gain[touched.max() + 1:] == 1.0)
