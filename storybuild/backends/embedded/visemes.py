"""visemes/<shot>/<n>: a line's phoneme timings, or a user's Rhubarb file → visemes.json.

    timings.json phonemes ──► Rhubarb phones ──► shape sets ──► one shape each (nearest to
    its neighbours) ──► pauses held / relaxed / rested ──► contiguous cues 0..duration,
    equal neighbours merged ──► every cue at least MIN_CUE_CS long ──► Rhubarb JSON

A user's Rhubarb file (input "rhubarb") replaces all of that: it is checked, normalised
onto the same centisecond grid and written out in the same layout.

`mouth_at` is what renderers call per frame. Pure Python: importing this is cheap.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import rhubarb
from storybuild.backends.embedded.rhubarb import MouthCue, Span
from storybuild.backends.embedded.viseme_rules import ANY, closest_shape, pause_shape, phones_for, shape_sets
from storybuild.errors import BackendError

# Shortest cue we write, in centiseconds: long enough that every cue is seen on at least
# one frame at 24 fps and up (frames 4.2 cs apart); shorter shapes read as flicker.
MIN_CUE_CS = 5
DIPHTHONG_SPLIT = 0.6  # where a phoneme made of two phones passes to the second


def _phone_sets(start: int, end: int, mnemonic: str) -> list[tuple[int, int, frozenset[str]]]:
    """The shape sets one phoneme asks for over [start, end) centiseconds."""
    phones = phones_for(mnemonic)
    cuts = [start, start + round((end - start) * DIPHTHONG_SPLIT), end] if len(phones) == 2 else [start, end]
    out = []
    for phone, p_start, p_end in zip(phones, cuts, cuts[1:]):
        rule = shape_sets(phone, (p_end - p_start) / 100)
        bounds = [p_start + round((p_end - p_start) * frac) for frac, _ in rule] + [p_end]
        out.extend((s, e, shapes) for (_, shapes), s, e in zip(rule, bounds, bounds[1:]) if e > s)
    return out


def _resolve(sets: list[tuple[int, int, frozenset[str]]]) -> list[Span]:
    """One shape per set: the one least effort from the shape before it.

    At the start of speech (nothing before, or a silence) the reference is the next
    definite shape instead, so the mouth anticipates what comes. A phone that allows any
    shape (an h is the next vowel, breathed) takes the shape after it.
    """
    out: list[Span] = []
    for i, (start, end, shapes) in enumerate(sets):
        if len(shapes) == 1:
            shape = next(iter(shapes))
        elif shapes == ANY:
            shape = ""  # filled from its successor below
        else:
            if out and out[-1][1] == start and out[-1][2]:
                reference = out[-1][2]
            else:
                reference = next((next(iter(s)) for _, _, s in sets[i + 1:] if len(s) == 1), "X")
            shape = closest_shape(reference, shapes)
        out.append((start, end, shape))
    for i in range(len(out) - 1, -1, -1):
        start, end, shape = out[i]
        if not shape:
            after = out[i + 1] if i + 1 < len(out) and out[i + 1][0] == end else None
            before = out[i - 1] if i > 0 and out[i - 1][1] == start else None
            shape = (after or before or (0, 0, "X"))[2] or "X"
            out[i] = (start, end, shape)
    return out


def _animate_pauses(spans: list[Span]) -> list[Span]:
    """Silences between spoken shapes: held, relaxed or rested, by their length."""
    out: list[Span] = []
    for span in spans:
        if out and span[0] > out[-1][1]:
            gap = (out[-1][1], span[0])
            out.append((*gap, pause_shape(out[-1][2], span[2], (gap[1] - gap[0]) / 100)))
        out.append(span)
    return out


def _merge(spans: list[Span], i: int, j: int, value: str) -> list[Span]:
    """Spans i and j (neighbours) joined into one showing `value`, equal neighbours merged."""
    a, b = sorted((i, j))
    joined = spans[:a] + [(spans[a][0], spans[b][1], value)] + spans[b + 1:]
    return rhubarb.normalise(joined, joined[-1][1])


def enforce_min_length(spans: list[Span], min_cs: int = MIN_CUE_CS) -> list[Span]:
    """Contiguous spans from 0 with none shorter than `min_cs` (unless only one remains).

    Taking the earliest short span each time: a short rest at either end is only the edge
    of the speech, so the spoken shape next to it takes its time. Otherwise the span
    borrows what its neighbours can spare (from the one before first: a mouth may move
    ahead of the sound, not after it); when they cannot spare enough, it merges into its
    shorter neighbour and the longer of the two gives the merged span its shape.
    """
    spans = list(spans)
    while len(spans) > 1:
        i = next((k for k, (s, e, _) in enumerate(spans) if e - s < min_cs), None)
        if i is None:
            break
        start, end, value = spans[i]
        last = len(spans) - 1
        if value == "X" and i in (0, last):
            j = 1 if i == 0 else last - 1
            spans = _merge(spans, i, j, spans[j][2])
            continue
        need = min_cs - (end - start)
        spare_before = max(0, spans[i - 1][1] - spans[i - 1][0] - min_cs) if i > 0 else 0
        spare_after = max(0, spans[i + 1][1] - spans[i + 1][0] - min_cs) if i < last else 0
        if spare_before + spare_after >= need:
            take = min(spare_before, need)
            rest = need - take
            if take:
                spans[i - 1] = (spans[i - 1][0], spans[i - 1][1] - take, spans[i - 1][2])
            if rest:
                spans[i + 1] = (spans[i + 1][0] + rest, spans[i + 1][1], spans[i + 1][2])
            spans[i] = (start - take, end + rest, value)
            continue
        if i == 0 or i == last:
            j = 1 if i == 0 else last - 1
        else:
            before, after = spans[i - 1], spans[i + 1]
            j = i - 1 if before[1] - before[0] <= after[1] - after[0] else i + 1
        longer = spans[i] if end - start > spans[j][1] - spans[j][0] else spans[j]
        spans = _merge(spans, i, j, longer[2])
    return spans


def spans_from_phonemes(phonemes: Sequence[Mapping[str, Any]], duration: float, extended: bool = True) -> list[Span]:
    """Mouth shapes for a line from its timings.json phonemes, in centiseconds over 0..duration."""
    duration_cs = rhubarb.to_cs(duration)
    sets = []
    for p in sorted(phonemes, key=lambda p: (p["start"], p["end"])):
        start, end = rhubarb.to_cs(p["start"]), min(rhubarb.to_cs(p["end"]), duration_cs)
        if sets:
            start = max(start, sets[-1][1])  # rounding must not make phonemes overlap
        if end > start:
            sets.extend(_phone_sets(start, end, str(p["phoneme"])))
    spans = _animate_pauses(_resolve(sets))
    spans = rhubarb.normalise(spans, duration_cs, extended)
    return rhubarb.normalise(enforce_min_length(spans), duration_cs, extended)


def cues_from_phonemes(phonemes: Sequence[Mapping[str, Any]], duration: float, extended: bool = True) -> tuple[MouthCue, ...]:
    """Mouth cues (seconds, two decimals) for a line from its timings.json phonemes."""
    return rhubarb.to_cues(spans_from_phonemes(phonemes, duration, extended))


def mouth_at(cues: Sequence[MouthCue | Mapping[str, Any]], t: float) -> str:
    """The mouth shape at `t` seconds: the cue with start ≤ t < end; rest (X) outside them.

    `cues` may be MouthCue objects or the "mouthCues" dicts of a visemes.json, in order.
    """
    def start(cue: MouthCue | Mapping[str, Any]) -> float:
        return cue["start"] if isinstance(cue, Mapping) else cue.start

    i = bisect.bisect_right(cues, t, key=start) - 1
    if i < 0:
        return "X"
    cue = cues[i]
    end, value = (cue["end"], cue["value"]) if isinstance(cue, Mapping) else (cue.end, cue.value)
    return value if t < end else "X"


def load_cues(path: Path) -> tuple[MouthCue, ...]:
    """The cues of a visemes.json this module wrote (renderers use this with mouth_at)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(MouthCue(float(c["start"]), float(c["end"]), str(c["value"])) for c in doc["mouthCues"])


def _read_timings(path: Path) -> tuple[float, list[Mapping[str, Any]]]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        duration = float(doc["duration"])
        phonemes = [p for p in doc["phonemes"] if {"start", "end", "phoneme"} <= p.keys()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackendError(f"{path}: not a speech timings.json ({type(exc).__name__}: {exc})")
    return duration, phonemes


def run_visemes(ctx: ActionContext) -> dict[str, Path]:
    """Perform a `visemes` action: write visemes.json from input "rhubarb" or "timings"."""
    extended = ctx.params.get("extended", True)
    if not isinstance(extended, bool):
        raise BackendError(f"{ctx.action_id}: 'extended' must be true or false, got {extended!r}")
    if "rhubarb" in ctx.inputs:
        duration_cs, spans = rhubarb.load(ctx.inputs["rhubarb"])
        spans = rhubarb.normalise(spans, duration_cs, extended)
    elif "timings" in ctx.inputs:
        duration, phonemes = _read_timings(ctx.inputs["timings"])
        duration_cs = rhubarb.to_cs(duration)
        spans = spans_from_phonemes(phonemes, duration, extended)
    else:
        raise BackendError(f"{ctx.action_id}: a visemes action needs an input named 'timings' or 'rhubarb'")
    out = ctx.output("visemes.json")
    out.write_text(rhubarb.dumps(duration_cs, spans), encoding="utf-8")
    ctx.progress(1.0, f"{len(spans)} mouth cues")
    return {"visemes.json": out}
