#!/usr/bin/env python3
"""Write the demo film's sound assets (assets/audio/*.ogg) by synthesis, deterministically.

    python tools/make_demo_audio.py [--out assets/audio]

Ambiences (sea, rain, wind) are built in the frequency domain or from periodic
modulators over exactly their length, so they loop without a seam. Music is additive
synthesis: a pad, a bass and a bell arpeggio under a flute-like melody (theme), or
drones, a heartbeat and a tremolo cluster (tension). Effects are modelled sounds: a
diaphone foghorn, gull calls, a thunder crack and rumble, knocks on a wooden door.
Every random choice comes from a fixed seed, and Vorbis is encoded by ffmpeg with
bit-exact flags (no random stream serials), so a rerun writes the same bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storybuild.backends.embedded import reverb  # noqa: E402

from storybuild.backends.shared import audio

from storybuild.backends.shared import ffmpeg

RATE = 48000


def seconds(n: float) -> np.ndarray:
    return np.arange(int(round(n * RATE))) / RATE


def shaped_noise(n: int, rng: np.random.Generator, lo: float, hi: float, tilt_db: float = 0.0,
                 channels: int = 2) -> np.ndarray:
    """Noise band-limited to lo..hi Hz with `tilt_db` per octave, circular (loops seamlessly), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal((n, channels)), axis=0)
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 1.0)[:, None]
    gain = (f / 1000.0) ** (tilt_db / 6.0206)
    gain *= 1 / np.sqrt(1 + (lo / f) ** 4) / np.sqrt(1 + (f / hi) ** 4)
    x = np.fft.irfft(spectrum * gain, n, axis=0)
    return x / np.sqrt(np.mean(x ** 2))


def midi(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def envelope(n: int, attack: float, release: float, decay: float | None = None) -> np.ndarray:
    """Attack ramp, then hold (or exponential decay), then a release ramp at the end."""
    t = np.arange(n) / RATE
    env = np.minimum(1.0, t / max(attack, 1e-4))
    if decay:
        env *= np.exp(-np.maximum(0.0, t - attack) / decay)
    tail = min(n, int(release * RATE))
    if tail:
        env[n - tail:] *= np.linspace(1.0, 0.0, tail)
    return env


def add(dst: np.ndarray, src: np.ndarray, at: float) -> None:
    stereo = src if src.ndim == 2 else audio.pan(src, 0.0)
    audio.place(dst, stereo.astype(np.float32), int(at * RATE))


def normalise(x: np.ndarray, peak: float = 0.7) -> np.ndarray:
    return (x * (peak / max(1e-9, np.max(np.abs(x))))).astype(np.float32)


# --------------------------------------------------------------------------- ambiences


def sea(rng: np.random.Generator) -> np.ndarray:
    length = 20.0
    t = seconds(length)
    n = len(t)
    period = length / 3  # three waves per loop
    swell = np.stack([0.5 - 0.5 * np.cos(2 * np.pi * (t / period - shift)) for shift in (0.0, 0.06)], axis=1)
    swell = swell ** 2 * (1 + 0.25 * np.sin(2 * np.pi * t / length))[:, None]
    crash = np.stack([np.maximum(0, np.sin(2 * np.pi * (t / period - 0.18 - s))) ** 4 for s in (0.0, 0.06)], axis=1)
    rumble = shaped_noise(n, rng, 30, 500, tilt_db=-6) * (0.25 + 0.75 * swell)
    surf = shaped_noise(n, rng, 400, 9000, tilt_db=-2) * (0.05 + 0.6 * crash)
    return normalise(0.6 * rumble + 0.5 * surf, 0.7)


def rain(rng: np.random.Generator) -> np.ndarray:
    n = int(20.0 * RATE)
    hiss = 0.35 * shaped_noise(n, rng, 900, 11000, tilt_db=-1.5)
    hiss += 0.15 * shaped_noise(n, rng, 40, 250, tilt_db=-3)  # rain on the ground far off
    drops = np.zeros((n, 2))
    for at in np.sort(rng.integers(0, n, 1400)):
        freq, decay = rng.uniform(1800, 5200), rng.uniform(0.002, 0.008)
        k = np.arange(int(decay * 6 * RATE)) / RATE
        drop = np.sin(2 * np.pi * freq * k * (1 + 8 * k)) * np.exp(-k / decay) * rng.uniform(0.2, 1.0)
        idx = (at + np.arange(len(k))) % n  # wrap: the loop point is just another moment
        side = rng.uniform(0, 1)
        drops[idx, 0] += drop * np.sqrt(1 - side)
        drops[idx, 1] += drop * np.sqrt(side)
    return normalise(hiss + 0.9 * drops, 0.45)


def wind(rng: np.random.Generator) -> np.ndarray:
    length = 20.0
    t = seconds(length)[:, None]
    n = len(t)
    gust = lambda cycles, phase: 0.5 + 0.5 * np.sin(2 * np.pi * cycles * t / length + phase)  # noqa: E731
    low = shaped_noise(n, rng, 60, 500, tilt_db=-3) * (0.4 + 0.6 * gust(2, 0.0))
    mid = shaped_noise(n, rng, 400, 1400) * gust(3, 1.3) ** 2
    whistle = shaped_noise(n, rng, 700, 760) * gust(5, 2.1) ** 3 + shaped_noise(n, rng, 1050, 1090) * gust(4, 0.4) ** 4
    return normalise(0.7 * low + 0.35 * mid + 0.25 * whistle, 0.45)


# --------------------------------------------------------------------------- music

BEAT = 0.625  # 96 bpm
BAR = 4 * BEAT
CHORDS = {"D": [50, 62, 66, 69], "A": [45, 61, 64, 69], "Bm": [47, 62, 66, 71], "G": [43, 62, 67, 71]}
PROGRESSION = ["D", "A", "Bm", "G"] * 3 + ["D", "A", "G", "D"]
# (bar, beat, beats, midi note): a D-major melody entering at bar 5.
MELODY = [(4, 0, 2, 69), (4, 2, 1, 66), (4, 3, 1, 69), (5, 0, 2, 76), (5, 2, 1, 73), (5, 3, 1, 71),
          (6, 0, 1.5, 74), (6, 1.5, 0.5, 73), (6, 2, 2, 71), (7, 0, 3, 69),
          (8, 0, 2, 78), (8, 2, 1, 76), (8, 3, 1, 74), (9, 0, 1, 76), (9, 1, 1, 69), (9, 2, 2, 73),
          (10, 0, 1, 71), (10, 1, 1, 74), (10, 2, 1, 78), (10, 3, 1, 76), (11, 0, 3, 74),
          (12, 0, 1, 69), (12, 1, 1, 74), (12, 2, 2, 78), (13, 0, 1.5, 76), (13, 1.5, 0.5, 74), (13, 2, 2, 73),
          (14, 0, 2, 71), (14, 2, 1, 74), (14, 3, 1, 71), (15, 0, 4, 74)]


def pad_note(freq: float, n: int, detune: float) -> np.ndarray:
    t = np.arange(n) / RATE
    voice = sum(a * np.sin(2 * np.pi * freq * k * (1 + detune) * t) for k, a in ((1, 1.0), (2, 0.25), (3, 0.1)))
    return voice * envelope(n, 0.5, 0.8)


def bell(freq: float, dur: float) -> np.ndarray:
    t = seconds(dur)
    return (np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * freq * 2.76 * t) * np.exp(-t / 0.15)) \
        * envelope(len(t), 0.004, 0.05, decay=0.5)


def flute(freq: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    t = seconds(dur)
    vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.2 * t) * np.minimum(1, t / 0.4)
    phase = 2 * np.pi * np.cumsum(freq * vibrato) / RATE
    tone = np.sin(phase) + 0.18 * np.sin(2 * phase) + 0.06 * np.sin(3 * phase)
    breath = 0.012 * shaped_noise(len(t), rng, 1500, 6000, channels=1)[:, 0]
    return (tone + breath) * envelope(len(t), 0.06, min(0.25, dur / 3))


def pluck(freq: float, dur: float) -> np.ndarray:
    t = seconds(dur)
    tone = sum(np.sin(2 * np.pi * freq * k * t) * np.exp(-t * k / 0.6) / k for k in range(1, 6))
    return tone * envelope(len(t), 0.005, 0.1, decay=0.9)


def theme(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((int(40.0 * RATE), 2), np.float32)
    for bar, name in enumerate(PROGRESSION):
        root, *upper = CHORDS[name]
        n = int((BAR + 0.8) * RATE)
        for i, note in enumerate(upper):
            # Left and right detuned by a few cents: a slow chorus that widens the pad.
            left, right = pad_note(midi(note), n, -0.0012), pad_note(midi(note), n, 0.0012)
            add(out, 0.07 * np.stack([left, right], axis=1), bar * BAR)
        for beat in (0, 2):
            add(out, audio.pan(0.22 * pluck(midi(root), 1.4), -0.1), bar * BAR + beat * BEAT)
        if bar >= 2:
            for step in range(8):
                note = upper[[0, 1, 2, 1, 0, 1, 2, 1][step]] + 12
                side = 0.35 if step % 2 else -0.35
                add(out, audio.pan(0.05 * bell(midi(note), 0.9), side), bar * BAR + step * BEAT / 2)
    for bar, beat, beats, note in MELODY:
        add(out, audio.pan(0.16 * flute(midi(note), beats * BEAT + 0.1, rng), 0.1), bar * BAR + beat * BEAT)
    out = reverb.apply(out, "hall", RATE, wet=0.45)
    return normalise(audio.fade(out, RATE, 1.0, 4.0), 0.6)


def tension(rng: np.random.Generator) -> np.ndarray:
    length = 30.0
    t = seconds(length)
    grow = np.minimum(1, t / length * 1.3)[:, None]
    drone = sum(np.sin(2 * np.pi * midi(note) * t * (1 + d)) for note, d in ((38, 0), (38, 0.004), (45, -0.003)))
    drone = drone * (0.6 + 0.4 * np.sin(2 * np.pi * 0.07 * t) ** 2)
    cluster = sum(np.sin(2 * np.pi * midi(note) * t) for note in (74, 75, 81))  # D5, Eb5, A5: a rub
    cluster = cluster * (0.5 + 0.5 * np.sin(2 * np.pi * 6.5 * t)) * np.clip((t - 8) / 15, 0, 1)
    out = np.stack([0.18 * drone + 0.04 * cluster, 0.18 * drone * 0.95 + 0.045 * cluster], axis=1) * (0.4 + 0.6 * grow)
    scrape = shaped_noise(len(t), rng, 2000, 4000) * 0.03 * (0.5 - 0.5 * np.cos(2 * np.pi * t / 10))[:, None]
    out = out + scrape * grow
    for beat in np.arange(0.5, length - 1, 1.25):  # a slow heartbeat: lub-dub
        for offset, level in ((0.0, 0.5), (0.22, 0.3)):
            k = seconds(0.25)
            add(out, audio.pan(level * np.sin(2 * np.pi * 55 * k * (1 - 0.5 * k)) * np.exp(-k / 0.06), 0.0),
                beat + offset)
    out = reverb.apply(out, "hall", RATE, wet=0.5)
    return normalise(audio.fade(out, RATE, 2.0, 2.5), 0.6)


# --------------------------------------------------------------------------- effects


def foghorn(rng: np.random.Generator) -> np.ndarray:
    t = seconds(3.4)
    pitch = 98.0 * (1 - 0.05 * np.clip((t - 2.6) / 0.8, 0, 1))  # the diaphone sags as the air runs out
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    tone = sum(np.sin(k * phase) / k ** 1.1 * (1 if k < 14 else 0.3) for k in range(1, 30))
    tone *= envelope(len(t), 0.35, 0.7) * (1 + 0.03 * np.sin(2 * np.pi * 7 * t))
    out = audio.pan(normalise(tone, 0.6), 0.0)
    return normalise(reverb.apply_with_tail(out, "outdoor", RATE, wet=0.6), 0.6)


def gull(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((int(2.4 * RATE), 2), np.float32)
    for i, at in enumerate((0.05, 0.55, 0.95)):
        dur = 0.34 if i == 0 else 0.26
        t = seconds(dur)
        u = t / dur
        freq = 1500 + 1300 * np.sin(np.pi * np.minimum(1, u * 1.6)) ** 0.5 - 400 * u
        phase = 2 * np.pi * np.cumsum(freq) / RATE
        rough = 1 + 0.4 * np.sin(2 * np.pi * 85 * t)  # the raspy edge of a gull's call
        call = (np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)) * rough
        add(out, audio.pan(0.5 * call * np.sin(np.pi * u) ** 0.7, 0.2 - 0.15 * i), at)
    return normalise(reverb.apply(out, "outdoor", RATE, wet=0.4), 0.6)


def thunder(rng: np.random.Generator) -> np.ndarray:
    length = 7.0
    t = seconds(length)[:, None]
    crack = shaped_noise(len(t), rng, 900, 7000) * np.exp(-np.maximum(0, t - 0.1) / 0.07) * (t >= 0.1)
    rumble = shaped_noise(len(t), rng, 20, 180, tilt_db=-4)
    rolls = np.abs(shaped_noise(len(t), rng, 0.3, 3.0)) ** 1.5  # slow, irregular rolls of the rumble
    body = rumble * (1 - np.exp(-np.maximum(0, t - 0.15) / 0.3)) * np.exp(-np.maximum(0, t - 0.5) / 1.8) * rolls
    return normalise(audio.fade(0.25 * crack + 1.0 * body, RATE, 0.0, 1.0), 0.8)


def door(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((int(1.6 * RATE), 2), np.float32)
    modes = [(118, 0.09), (247, 0.06), (415, 0.045), (960, 0.025), (1730, 0.012)]
    for at in (0.1, 0.36, 0.62):
        t = seconds(0.4)
        knock = sum(rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * rng.uniform(0.98, 1.02) * t) * np.exp(-t / d)
                    for f, d in modes)
        knock += shaped_noise(len(t), rng, 2000, 9000, channels=1)[:, 0] * 0.4 * np.exp(-t / 0.003)
        add(out, audio.pan(knock * rng.uniform(0.85, 1.0), 0.0), at)
    return normalise(reverb.apply(out, "room", RATE, wet=0.35), 0.6)


SOUNDS = {"sea": sea, "rain": rain, "wind": wind, "theme": theme, "tension": tension,
          "foghorn": foghorn, "gull": gull, "thunder": thunder, "door": door}
MONO = {"foghorn", "gull", "door"}  # effects a mix pans and places itself
QUALITY = {"sea": "1", "rain": "0", "wind": "0", "theme": "3", "tension": "2"}


def encode(samples: np.ndarray, out: Path, quality: str, mono: bool) -> None:
    """Vorbis via ffmpeg with bit-exact flags (libsndfile would stamp random stream serials)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = audio.write_wav(Path(tmp) / "in.wav", samples, RATE)
        subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav),
                        *(["-ac", "1"] if mono else []), "-c:a", "libvorbis", "-q:a", quality, *ffmpeg.BITEXACT,
                        str(out)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "audio")
    parser.add_argument("names", nargs="*", help="sounds to make (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for index, (name, make) in enumerate(SOUNDS.items()):
        if args.names and name not in args.names:
            continue
        samples = make(np.random.default_rng(1000 + index))
        path = args.out / f"{name}.ogg"
        encode(samples, path, QUALITY.get(name, "2"), name in MONO)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{len(samples) / RATE:.1f} s, {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
