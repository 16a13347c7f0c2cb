"""Rhubarb Lip Sync's JSON format: read and check a user's file, write ours byte-for-byte alike.

    {
      "metadata": {
        "soundFile": "line.wav",
        "duration": 0.93
      },
      "mouthCues": [
        { "start": 0.00, "end": 0.09, "value": "A" },
        …
      ]
    }

Times are seconds with two decimals, as Rhubarb writes them; inside, cues are kept in
whole centiseconds so that rounding can never open a gap or an overlap between cues.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from storybuild.backends.embedded.viseme_rules import BASIC, SHAPES
from storybuild.errors import BackendError, SourceLoc

SOUND_FILE = "line.wav"
TOLERANCE_CS = 1  # a file's times may disagree by a rounding step


@dataclass(frozen=True)
class MouthCue:
    """One mouth shape held from `start` to `end` (seconds)."""

    start: float
    end: float
    value: str


Span = tuple[int, int, str]  # (start cs, end cs, shape): the exact form cues are built in


def to_cs(seconds: float) -> int:
    """Seconds → whole centiseconds, rounding half up (Rhubarb's grid)."""
    return int(math.floor(seconds * 100 + 0.5))


def normalise(spans: Iterable[Span], duration_cs: int, extended: bool = True) -> list[Span]:
    """Spans made contiguous over 0..duration: gaps rest (X), empty spans dropped,
    basic shapes substituted when not `extended`, equal neighbours merged."""
    out: list[Span] = []
    cursor = 0
    for start, end, value in sorted(spans):
        start, end = max(start, cursor), min(end, duration_cs)
        if end <= start:
            continue
        if start > cursor:
            out.append((cursor, start, "X"))
        out.append((start, end, value))
        cursor = end
    if cursor < duration_cs:
        out.append((cursor, duration_cs, "X"))
    merged: list[Span] = []
    for start, end, value in out:
        value = value if extended else BASIC[value]
        if merged and merged[-1][2] == value:
            merged[-1] = (merged[-1][0], end, value)
        else:
            merged.append((start, end, value))
    return merged


def to_cues(spans: Sequence[Span]) -> tuple[MouthCue, ...]:
    """Centisecond spans → cues in seconds."""
    return tuple(MouthCue(s / 100, e / 100, v) for s, e, v in spans)


def dumps(duration_cs: int, spans: Sequence[Span], sound_file: str = SOUND_FILE) -> str:
    """Rhubarb's JSON layout exactly (its JsonExporter's spacing and two-decimal times).

    Like Rhubarb, an empty animation is written as one zero-length rest cue.
    """
    def t(cs: int) -> str:
        return f"{cs // 100}.{cs % 100:02d}"

    rows = spans or [(0, 0, "X")]
    cues = ",\n".join(f'    {{ "start": {t(s)}, "end": {t(e)}, "value": "{v}" }}' for s, e, v in rows)
    return ('{\n  "metadata": {\n'
            f'    "soundFile": {json.dumps(sound_file, ensure_ascii=False)},\n'
            f'    "duration": {t(duration_cs)}\n'
            '  },\n  "mouthCues": [\n'
            f"{cues}\n  ]\n}}\n")


def _fail(path: Path, message: str, hint: str | None = None, line: int = 0, col: int = 0) -> BackendError:
    return BackendError(f"Rhubarb lip-sync file: {message}", loc=SourceLoc(str(path), line, col), hint=hint)


def _number(path: Path, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _fail(path, f"{what} must be a number of seconds ≥ 0, got {value!r}")
    return float(value)


def _read_doc(path: Path) -> tuple[list, dict]:
    """The file's "mouthCues" list and "metadata" object, read as JSON and checked for shape."""
    fmt_hint = "export it with `rhubarb --exportFormat json` (storybuild reads Rhubarb's JSON output)"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _fail(path, "not a text file", fmt_hint)
    except OSError as exc:
        raise _fail(path, f"cannot read it: {exc.strerror or exc}")
    head = text.lstrip()[:1]
    if head == "<":
        raise _fail(path, "this is XML, not JSON", fmt_hint)
    if head.isdigit():
        raise _fail(path, "this looks like Rhubarb's TSV output, not JSON", fmt_hint)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON: {exc.msg}", fmt_hint, exc.lineno, exc.colno)
    if not isinstance(doc, dict):
        raise _fail(path, f"expected a JSON object with \"mouthCues\", got {type(doc).__name__}")
    cues = doc.get("mouthCues")
    if not isinstance(cues, list):
        raise _fail(path, "missing the \"mouthCues\" list", fmt_hint)
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _fail(path, "\"metadata\" must be an object")
    return cues, metadata


def _cue_spans(path: Path, cues: list) -> list[Span]:
    """The cues as spans in cs, checked: fields, shapes, order; overlaps within the tolerance trimmed."""
    spans: list[Span] = []
    for i, cue in enumerate(cues):
        where = f"mouthCues[{i}]"
        if not isinstance(cue, dict):
            raise _fail(path, f"{where} must be an object with start, end and value")
        missing = [k for k in ("start", "end", "value") if k not in cue]
        if missing:
            raise _fail(path, f"{where} has no {', '.join(missing)}")
        start = to_cs(_number(path, cue["start"], f"{where}.start"))
        end = to_cs(_number(path, cue["end"], f"{where}.end"))
        value = cue["value"]
        if not isinstance(value, str) or value not in SHAPES:
            raise _fail(path, f"{where}.value {value!r} is not a mouth shape",
                        f"Rhubarb's shapes are {', '.join(SHAPES)}")
        if end < start:
            raise _fail(path, f"{where} ends ({end / 100:.2f}) before it starts ({start / 100:.2f})")
        if spans and start < spans[-1][1] - TOLERANCE_CS:
            raise _fail(path, f"{where} starts at {start / 100:.2f}, before mouthCues[{i - 1}] ends "
                              f"({spans[-1][1] / 100:.2f}); cues must be in order and must not overlap")
        if spans:  # within the tolerance: the earlier cue keeps its end
            start = max(start, spans[-1][1])
            end = max(end, start)
        spans.append((start, end, value))
    return spans


def load(path: Path) -> tuple[int, list[Span]]:
    """A user's Rhubarb JSON file, checked: (duration in cs, its cues as spans in cs).

    Raises BackendError naming the file and the first problem: not JSON (or Rhubarb's TSV
    or XML output), missing fields, unknown shapes, cues out of order or overlapping,
    cues past the stated duration.
    """
    cues, metadata = _read_doc(path)
    spans = _cue_spans(path, cues)
    last = spans[-1][1] if spans else 0
    if "duration" in metadata:
        duration = to_cs(_number(path, metadata["duration"], "metadata.duration"))
        if last > duration + TOLERANCE_CS:
            raise _fail(path, f"the cues run to {last / 100:.2f} s, past metadata.duration {duration / 100:.2f} s")
    else:
        duration = last
    return duration, spans
