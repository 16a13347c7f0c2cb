"""Audio around ComfyUI: a TTS result → line.wav + timings.json, and a shot's dialogue track.

A TTS node returns audio only. Words are placed on it from the audio itself: when the
voiced stretches (separated by pauses) are as many as the words, each word gets its own
stretch; otherwise the words share the voiced span in proportion to their length.
Phonemes are approximated per word from its letters (espeak-style mnemonics), enough for
the embedded viseme step to animate mouths; a server that reports timings wins.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from storybuild.backends.shared import audio
from storybuild.backends.shared.speech_audio import to_pcm16
from storybuild.backends.shared.speech_timing import Timed, Timings, to_json
from storybuild.errors import BackendError

FRAME_S = 0.01  # loudness window
MIN_PAUSE_S = 0.06  # a quieter stretch at least this long separates words
VOICED_DB = -35.0  # below the line's peak: silence

# Letters → espeak-ng mnemonics (viseme_rules.ESPEAK_PHONES knows them); digraphs first.
DIGRAPHS = {"th": "T", "sh": "S", "ch": "tS", "ph": "f", "ng": "N", "ee": "i:", "ea": "i:", "oo": "u:",
            "ou": "aU", "ow": "aU", "ai": "eI", "ay": "eI", "oi": "OI", "oy": "OI", "qu": "k", "ck": "k"}
LETTERS = {"a": "a", "e": "E", "i": "I", "o": "0", "u": "V", "y": "I", "c": "k", "j": "dZ", "q": "k", "x": "k"}


def write_pcm16(path: Path, samples: np.ndarray, rate: int) -> None:
    """A mono PCM_16 WAV (libsndfile writes no timestamps for PCM)."""
    import soundfile

    soundfile.write(str(path), to_pcm16(samples), rate, subtype="PCM_16", format="WAV")


def letters_to_phonemes(word: str) -> list[str]:
    """A rough phoneme sequence for a word, from its spelling."""
    text = re.sub(r"[^a-z]", "", word.lower())
    result: list[str] = []
    index = 0
    while index < len(text):
        pair = text[index:index + 2]
        if pair in DIGRAPHS:
            result.append(DIGRAPHS[pair])
            index += 2
            continue
        letter = text[index]
        if not (result and letter == text[index - 1]):  # a doubled letter is one sound
            result.append(LETTERS.get(letter, letter))
        index += 1
    return result


def voiced_spans(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of the stretches louder than the pause level."""
    window = max(1, int(rate * FRAME_S))
    frames = len(samples) // window
    if frames == 0:
        return []
    rms = np.sqrt(np.mean(samples[:frames * window].reshape(frames, window).astype(np.float64) ** 2, axis=1))
    peak = rms.max()
    if peak <= 0:
        return []
    loud = rms > peak * 10 ** (VOICED_DB / 20)
    spans: list[list[float]] = []
    for index, on in enumerate(loud):
        if not on:
            continue
        start, end = index * FRAME_S, (index + 1) * FRAME_S
        if spans and start - spans[-1][1] < MIN_PAUSE_S:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return [(s, e) for s, e in spans]


def place_words(words: Sequence[str], spans: Sequence[tuple[float, float]], duration: float) -> list[Timed]:
    """Words on the audio: one per voiced stretch when they match, else spread by length."""
    if not words:
        return []
    if len(spans) == len(words):
        return [Timed(s, e, w) for (s, e), w in zip(spans, words)]
    start, end = (spans[0][0], spans[-1][1]) if spans else (0.0, duration)
    weights = [len(w) + 1 for w in words]
    total = float(sum(weights))
    placed, cursor = [], start
    for word, weight in zip(words, weights):
        length = (end - start) * weight / total
        placed.append(Timed(cursor, cursor + length, word))
        cursor += length
    return placed


def phonemes_for(words: Sequence[Timed]) -> list[Timed]:
    result: list[Timed] = []
    for word in words:
        sounds = letters_to_phonemes(word.text) or ["@"]
        step = (word.end - word.start) / len(sounds)
        result += [Timed(word.start + k * step, word.start + (k + 1) * step, s) for k, s in enumerate(sounds)]
    return result


def server_timings(texts: Sequence[str]) -> list[Timed] | None:
    """Word timings a TTS node reported as JSON text (`{"words": [{start, end, text}]}`), if any."""
    for text in texts:
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(doc, Mapping) and isinstance(doc.get("words"), list):
            return [Timed(float(w["start"]), float(w["end"]), str(w.get("text", w.get("word", ""))))
                    for w in doc["words"]]
    return None


def speech_outputs(source: Path, text: str, rate: int, out_dir: Path, texts: Sequence[str] = ()) -> dict[str, Path]:
    """line.wav (mono PCM_16 at `rate`) and timings.json from a TTS node's audio file."""
    samples = audio.load_mono(source, rate)
    if samples.size == 0:
        raise BackendError("the TTS workflow returned empty audio")
    wav = out_dir / "line.wav"
    write_pcm16(wav, samples, rate)
    duration = len(samples) / rate
    words = server_timings(texts) or place_words(text.split(), voiced_spans(samples, rate), duration)
    timings = Timings(duration, rate, tuple(words), tuple(phonemes_for(words)))
    path = out_dir / "timings.json"
    path.write_text(to_json(timings), encoding="utf-8")
    return {"line.wav": wav, "timings.json": path}


def dialogue_track(lines: Sequence[Mapping[str, Any]], inputs: Mapping[str, Path], rate: int, out: Path) -> Path:
    """One mono WAV with a shot's lines where the shot plays them.

    Line i starts when line i-1 ends (its timings.json duration) plus its offset, the
    timeline rule of docs/pipeline.md. `lines`: [{index, offset}] from the action params.
    """
    placed: list[tuple[int, np.ndarray]] = []
    cursor = 0.0
    for line in sorted(lines, key=lambda entry: int(entry["index"])):
        index = int(line["index"])
        wav, timing = inputs.get(f"line:{index}"), inputs.get(f"timings:{index}")
        if wav is None:
            raise BackendError(f"lipsync needs the audio of line {index} (input 'line:{index}')")
        samples = audio.load_mono(wav, rate)
        duration = len(samples) / rate
        if timing is not None:
            duration = float(json.loads(Path(timing).read_text(encoding="utf-8"))["duration"])
        start = cursor + float(line.get("offset", 0.0))
        placed.append((int(round(start * rate)), samples))
        cursor = start + duration
    length = max((start + len(s) for start, s in placed), default=0)
    track = np.zeros(length, np.float32)
    for start, samples in placed:
        audio.place(track, samples, start)
    write_pcm16(out, track, rate)
    return out
