"""Subtitles from the film's cut: SubRip (.srt) and WebVTT (.vtt).

Cue text is cleaned (control characters dropped, whitespace collapsed) and wrapped into
lines of at most ~42 characters, the broadcast convention, with lines as even as
possible (two 30-character lines read better than 42 + 18). SRT has no escape syntax,
so only what would break its structure is neutralised (blank lines, "-->"); WebVTT
escapes &, < and > and names the speaker with a voice span.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

LINE_WIDTH = 42
MAX_LINES = 2  # longer lines become consecutive cues, timed by their share of the text


@dataclass(frozen=True)
class Cue:
    """One subtitle: when, what, and who says it."""

    start: float
    end: float
    text: str
    speaker: str = ""


def clean(text: str) -> str:
    """Text without control or format characters, whitespace collapsed to single spaces."""
    kept = "".join(" " if ch.isspace() else ch for ch in text
                   if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(kept.split())


def wrap(text: str, width: int = LINE_WIDTH) -> list[str]:
    """Split `text` into as few lines of at most `width` characters as possible, evenly balanced.

    A word longer than `width` gets a line of its own rather than being broken.
    """
    words = clean(text).split(" ")
    if words == [""]:
        return []
    # The fewest lines a greedy fill needs…
    count, length = 1, -1
    for word in words:
        if length >= 0 and length + 1 + len(word) > width:
            count, length = count + 1, len(word)
        else:
            length += 1 + len(word)
    # …then, among splits into that many lines, the one with the shortest longest line
    # (ties: the most even). best[i][k] covers words[:i] in k lines.
    n = len(words)
    inf = (float("inf"), float("inf"))
    best: list[list[tuple[float, float]]] = [[inf] * (count + 1) for _ in range(n + 1)]
    back = [[0] * (count + 1) for _ in range(n + 1)]
    best[0][0] = (0, 0)
    for i in range(1, n + 1):
        for k in range(1, count + 1):
            line = -1
            for j in range(i - 1, -1, -1):
                line += 1 + len(words[j])
                if line > width and j < i - 1:
                    break
                prev = best[j][k - 1]
                if prev == inf:
                    continue
                score = (max(prev[0], line), prev[1] + line * line)
                if score < best[i][k]:
                    best[i][k], back[i][k] = score, j
    return _split_at(words, back, count)


def _chunks(text: str, width: int) -> list[str]:
    """`text` in as few pieces of at most MAX_LINES wrapped lines as possible.

    Pieces are about equally long and preferably end at punctuation, so that a cue
    change falls where a reader pauses anyway.
    """
    needed = len(wrap(text, width))
    if needed <= MAX_LINES:
        return [text]
    words = text.split(" ")
    pieces = -(-needed // MAX_LINES)  # always reachable: pairs of the greedy lines fit
    ideal = len(text) / pieces
    n = len(words)
    inf = float("inf")
    best = [[inf] * (pieces + 1) for _ in range(n + 1)]
    back = [[0] * (pieces + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(i - 1, -1, -1):
            chunk = " ".join(words[j:i])
            if len(chunk) > MAX_LINES * (width + 1) and j < i - 1:
                break
            if len(wrap(chunk, width)) > MAX_LINES:
                continue
            pause = 0.25 * ideal * ideal if chunk[-1] in ".,;:!?\u2014" else 0.0
            cost = (len(chunk) - ideal) ** 2 - pause
            for k in range(1, pieces + 1):
                if best[j][k - 1] + cost < best[i][k]:
                    best[i][k], back[i][k] = best[j][k - 1] + cost, j
    return _split_at(words, back, pieces)


def _split_at(words: list[str], back: list[list[int]], count: int) -> list[str]:
    """The `count` pieces of `words` a split search chose: back[i][k] starts the k-th piece ending at i."""
    out, i = [], len(words)
    for k in range(count, 0, -1):
        j = back[i][k]
        out.append(" ".join(words[j:i]))
        i = j
    return out[::-1]


def cues(lines: Iterable[Mapping[str, Any]], width: int = LINE_WIDTH) -> list[Cue]:
    """Cues from film.json `lines`, in time order, skipping empty or zero-length ones.

    Text that needs more than MAX_LINES lines is split into consecutive cues, each
    shown for its share of the line's time (by characters).
    """
    out = []
    for line in lines:
        text = clean(str(line.get("text", "")))
        start, end = float(line["start"]), float(line["end"])
        if not text or end <= start:
            continue
        speaker = clean(str(line.get("character", "")))
        parts = _chunks(text, width)
        total = sum(len(part) for part in parts)
        at = start
        for i, part in enumerate(parts):
            until = end if i == len(parts) - 1 else at + (end - start) * len(part) / total
            out.append(Cue(at, until, part, speaker))
            at = until
    return sorted(out, key=lambda c: (c.start, c.end))


def timestamp(seconds: float, separator: str) -> str:
    """HH:MM:SS<sep>mmm, rounded to the millisecond (SRT uses ",", WebVTT ".")."""
    ms = max(0, int(round(seconds * 1000)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def srt(lines: Iterable[Mapping[str, Any]], width: int = LINE_WIDTH) -> str:
    """A SubRip document for film.json `lines`."""
    blocks = []
    for number, cue in enumerate(cues(lines, width), start=1):
        text = "\n".join(wrap(cue.text.replace("-->", "\u2192"), width))
        blocks.append(f"{number}\n{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt(lines: Iterable[Mapping[str, Any]], width: int = LINE_WIDTH) -> str:
    """A WebVTT document for film.json `lines`, speakers as <v> spans."""
    blocks = ["WEBVTT\n"]
    for cue in cues(lines, width):
        text = "\n".join(_vtt_escape(line) for line in wrap(cue.text, width))
        if cue.speaker:
            # A voice annotation ends at ">", so the name cannot contain one.
            text = f"<v {re.sub(r'[<>&]', '', cue.speaker)}>{text}</v>"
        blocks.append(f"{timestamp(cue.start, '.')} --> {timestamp(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)
