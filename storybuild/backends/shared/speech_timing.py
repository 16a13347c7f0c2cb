"""espeak-ng's synthesis events → word and phoneme timings (pure; no numpy).

espeak reports a WORD event where each word starts, with the 1-based character position
of the word in the text, and a PHONEME event where each phoneme starts, with its mnemonic
(stress marks prefixed, e.g. ``'aI``). Neither has an end time: a phoneme ends where the
next event begins. Pauses are phonemes too (``_``, ``_:``, ``_!``…): they bound the
phonemes before them and are then left out, so gaps in the lists are silence.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from storybuild.errors import BackendError

EVENT_WORD, EVENT_END, EVENT_PHONEME = 1, 5, 7
STRESS_MARKS = "',"  # primary, secondary stress: prosody, not part of the phoneme's name


@dataclass(frozen=True)
class Timed:
    """A word or phoneme and when it is heard, in seconds from the start of the line."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Timings:
    """Everything timings.json holds."""

    duration: float
    sample_rate: int
    words: tuple[Timed, ...]
    phonemes: tuple[Timed, ...]


def clean_text(text: str) -> str:
    """The text as given to espeak: control characters become spaces.

    One character for one, so espeak's character positions still index the original
    words; a NUL would end the C string early and a newline is no part of a word.
    """
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def _tokens(text: str) -> tuple[list[int], list[str]]:
    """Whitespace-separated tokens of `text`: where each starts, and its word."""
    starts, words = [], []
    for m in re.finditer(r"\S+", text):
        starts.append(m.start())
        words.append(_word_text(m.group()))
    return starts, words


def _word_text(token: str) -> str:
    """A token without the punctuation around it ("Hello," → "Hello"; "don't" stays)."""
    lo, hi = 0, len(token)
    while lo < hi and unicodedata.category(token[lo]).startswith("P"):
        lo += 1
    while hi > lo and unicodedata.category(token[hi - 1]).startswith("P"):
        hi -= 1
    return token[lo:hi] or token


def _token_at(starts: Sequence[int], position: int) -> int:
    """The token a 0-based character position belongs to.

    Expansions (a number read as several words, an emoji read by name) can report word
    positions past their token, in the whitespace after it; those belong to the token
    before. Positions before the first token belong to the first.
    """
    return max(0, bisect.bisect_right(starts, position) - 1)


def phoneme_name(raw: str) -> str:
    """An event's phoneme mnemonic without its stress marks ("'aI" → "aI")."""
    return raw.lstrip(STRESS_MARKS)


def is_pause(name: str) -> bool:
    """Pauses are espeak phonemes whose mnemonic starts with an underscore."""
    return name.startswith("_")


def build_timings(text: str, events: Iterable[Mapping], sample_rate: int, samples: int) -> tuple[list[Timed], list[Timed]]:
    """Words and phonemes (times in seconds) from espeak events over `samples` samples.

    `text` is the text espeak spoke (after `clean_text`); each event is a mapping with
    "type", "pos" (1-based character) and "sample" (where it starts), and "name" for
    phonemes. Phonemes of zero length (espeak elides some) and pauses are dropped; a
    word spans its phonemes, and several word events on one token ("42" → "forty two")
    make one word.
    """
    starts, token_words = _tokens(text)
    # (start sample, name, token index or -1 before any word) for every phoneme incl. pauses
    marks: list[tuple[int, str, int]] = []
    token = -1
    for ev in events:
        sample = min(max(int(ev["sample"]), 0), samples)
        if ev["type"] == EVENT_WORD and starts:
            token = _token_at(starts, int(ev["pos"]) - 1)
        elif ev["type"] == EVENT_PHONEME:
            name = phoneme_name(str(ev.get("name", "")))
            if name:
                marks.append((sample, name, token))
    phonemes: list[Timed] = []
    spans: dict[int, list[float]] = {}  # token → [start, end]
    for i, (sample, name, tok) in enumerate(marks):
        end_sample = marks[i + 1][0] if i + 1 < len(marks) else samples
        if is_pause(name) or end_sample <= sample:
            continue
        start, end = sample / sample_rate, end_sample / sample_rate
        phonemes.append(Timed(start, end, name))
        if tok >= 0:
            span = spans.setdefault(tok, [start, end])
            span[1] = end
    words = [Timed(span[0], span[1], token_words[tok]) for tok, span in sorted(spans.items(), key=lambda kv: kv[1][0])]
    return words, phonemes


def clip(items: Iterable[Timed], duration: float) -> tuple[Timed, ...]:
    """Items cut to end by `duration`; those starting at or after it are dropped."""
    return tuple(Timed(t.start, min(t.end, duration), t.text) for t in items if t.start < duration)


def to_json(timings: Timings) -> str:
    """timings.json: sorted keys, times rounded to microseconds, so equal input gives equal bytes."""
    def r(x: float) -> float:
        return round(x, 6)

    doc = {
        "duration": r(timings.duration),
        "sample_rate": timings.sample_rate,
        "words": [{"start": r(w.start), "end": r(w.end), "text": w.text} for w in timings.words],
        "phonemes": [{"start": r(p.start), "end": r(p.end), "phoneme": p.text} for p in timings.phonemes],
    }
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def line_text(action_id: str, params: Mapping[str, Any]) -> str:
    """A speech action's text, checked and cleaned (clean_text): what every speech backend speaks."""
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BackendError(f"{action_id}: a line of dialogue needs some text, got {text!r}")
    return clean_text(text)


def output_rate(params: Mapping[str, Any]) -> int:
    """A speech action's output sample rate, checked (the film's rate: 8 to 384 kHz)."""
    rate = params.get("sample_rate", 48000)
    if isinstance(rate, bool) or not isinstance(rate, int) or not 8000 <= rate <= 384000:
        raise BackendError(f"sample_rate must be an integer from 8000 to 384000, got {rate!r}")
    return rate
