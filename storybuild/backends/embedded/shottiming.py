"""Where a shot's lines fall on its timeline, and how long the shot lasts (pure functions).

Shared by shot rendering (mouths, captions, shot.json) and mixing (placing line.wav), so
that pictures and sound agree to the sample:

    line i starts at the end of line i-1 (or 0) plus its offset
    a shot with no explicit duration lasts until its last line ends plus padding, ≥ 1 s

A negative offset overlaps a line with the one before (an interruption); no line starts
before 0. Lines that run past an explicit duration are kept: the shot cuts them off, and
`ShotTiming.overrun` says by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

MIN_SHOT_DURATION = 1.0


@dataclass(frozen=True)
class LineSpan:
    """One line of dialogue placed on a shot's timeline, in seconds."""

    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ShotTiming:
    """A shot's duration and its lines' places in it."""

    duration: float
    lines: tuple[LineSpan, ...]

    @property
    def speech_end(self) -> float:
        """When the last line ends (0 for a shot without dialogue)."""
        return max((line.end for line in self.lines), default=0.0)

    @property
    def overrun(self) -> float:
        """How far dialogue runs past the shot's end (0 when it fits)."""
        return max(0.0, self.speech_end - self.duration)


def _check(value: float, what: str, allow_negative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if value < 0 and not allow_negative:
        raise ValueError(f"{what} must be ≥ 0, got {value!r}")
    return float(value)


def place_lines(durations: Sequence[float], offsets: Sequence[float]) -> tuple[LineSpan, ...]:
    """Each line's start and end: after the previous line's end plus its offset (never < 0)."""
    if len(durations) != len(offsets):
        raise ValueError(f"{len(durations)} line durations but {len(offsets)} offsets")
    spans = []
    previous_end = 0.0
    for i, (duration, offset) in enumerate(zip(durations, offsets)):
        length = _check(duration, f"line {i} duration")
        start = max(0.0, previous_end + _check(offset, f"line {i} offset", allow_negative=True))
        spans.append(LineSpan(i, start, start + length))
        previous_end = start + length
    return tuple(spans)


def shot_timing(durations: Sequence[float], offsets: Sequence[float],
                duration: float | None = None, padding: float = 0.0) -> ShotTiming:
    """A shot's timing: `duration` if given, else the dialogue plus `padding`, at least 1 s."""
    lines = place_lines(durations, offsets)
    if duration is not None:
        length = _check(duration, "shot duration")
        if length <= 0:
            raise ValueError(f"shot duration must be > 0, got {duration!r}")
    else:
        speech_end = max((line.end for line in lines), default=0.0)
        length = max(MIN_SHOT_DURATION, speech_end + _check(padding, "padding"))
    return ShotTiming(length, lines)
