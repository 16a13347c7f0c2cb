"""The cut: where every scene, shot and line sits on the film's timeline, in whole frames.

Scenes follow each other; a transition into the next scene (crossfade, fade through
black, wipe) makes the two overlap by its duration, so the next scene starts that much
before the previous one ends. Everything is counted in frames so that picture, sound,
subtitles and timelines agree to the frame. This module is pure: it reads shot.json
files and computes; it encodes nothing.

    scene a  |==========xxxx|
    scene b             |xxxx=========|     (xxxx: the crossfade, `overlap` frames)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from storybuild.errors import BackendError

TRANSITIONS = ("cut", "crossfade", "fade", "wipe")


@dataclass(frozen=True)
class ShotInfo:
    """What the mix and the assembly need from a shot's shot.json."""

    id: str
    frames: int
    fps: float
    lines: tuple[Mapping[str, Any], ...] = ()

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def read_shot(path: Path, shot_id: str, fps: float | None = None) -> ShotInfo:
    """Parse a shot.json; `fps` (the project's) fills in when the file predates the field."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"shot {shot_id!r}: cannot read shot.json ({exc})") from exc
    rate = float(data.get("fps") or fps or 0)
    if "frames" in data and rate > 0:
        frames = int(data["frames"])
    elif "duration" in data and rate > 0:
        frames = int(round(float(data["duration"]) * rate))
    else:
        raise BackendError(f"shot {shot_id!r}: shot.json has neither frames+fps nor duration")
    if frames <= 0:
        raise BackendError(f"shot {shot_id!r} has no frames")
    lines = tuple(sorted(data.get("lines", []), key=lambda line: (float(line.get("start", 0)), line.get("index", 0))))
    return ShotInfo(shot_id, frames, rate, lines)


@dataclass(frozen=True)
class SceneSpan:
    """A scene on the film timeline: [start, start + frames) in frames."""

    id: str
    start: int
    frames: int
    shots: tuple[ShotInfo, ...]
    transition: str  # into the next scene
    overlap: int  # frames shared with the next scene (0 for cuts and the last scene)
    fade_out: int = 0  # frames of fade to black at the very end (last scene with "fade")

    @property
    def end(self) -> int:
        return self.start + self.frames


@dataclass(frozen=True)
class FilmCut:
    """All scenes placed; `frames` is the film's length."""

    fps: float
    scenes: tuple[SceneSpan, ...]

    @property
    def frames(self) -> int:
        return self.scenes[-1].end if self.scenes else 0

    def overlap_before(self, index: int) -> int:
        """Frames scene `index` shares with the scene before it."""
        return self.scenes[index - 1].overlap if index > 0 else 0

    def transition_before(self, index: int) -> str:
        return self.scenes[index - 1].transition if index > 0 else "cut"


def plan_cut(scenes: Sequence[Mapping[str, Any]], shots: Mapping[str, ShotInfo], fps: float) -> FilmCut:
    """Place scenes (film params `scenes`) on the timeline; raise if a transition cannot fit."""
    if not scenes:
        raise BackendError("the film has no scenes")
    lengths, kinds, overlaps = [], [], []
    for scene in scenes:
        ids = list(scene.get("shots", []))
        if not ids:
            raise BackendError(f"scene {scene['id']!r} has no shots")
        missing = [s for s in ids if s not in shots]
        if missing:
            raise BackendError(f"scene {scene['id']!r}: no shot.json for shot(s) {', '.join(missing)}")
        lengths.append(sum(shots[s].frames for s in ids))
        transition = scene.get("transition") or {}
        kind = str(transition.get("type", "cut"))
        if kind not in TRANSITIONS:
            raise BackendError(f"scene {scene['id']!r}: unknown transition {kind!r}",
                               hint=f"use one of: {', '.join(TRANSITIONS)}")
        frames = int(round(float(transition.get("duration") or 0.0) * fps))
        if kind == "cut" or frames <= 0:
            kind, frames = "cut", 0
        kinds.append(kind)
        overlaps.append(frames)

    spans: list[SceneSpan] = []
    start = 0
    last = len(scenes) - 1
    for i, scene in enumerate(scenes):
        overlap = overlaps[i] if i < last else 0
        fade_out = overlaps[i] if i == last and kinds[i] == "fade" else 0
        before = overlaps[i - 1] if i > 0 else 0
        if i < last and overlap > min(lengths[i], lengths[i + 1]):
            raise BackendError(
                f"the {kinds[i]} from scene {scene['id']!r} into {scenes[i + 1]['id']!r} lasts {overlap / fps:.2f} s "
                f"but the scenes last {lengths[i] / fps:.2f} s and {lengths[i + 1] / fps:.2f} s",
                hint="shorten the transition or lengthen the scenes")
        if before + overlap > lengths[i] or fade_out > lengths[i]:
            raise BackendError(
                f"scene {scene['id']!r} ({lengths[i] / fps:.2f} s) is too short for the transitions into and out of it "
                f"({before / fps:.2f} s + {max(overlap, fade_out) / fps:.2f} s)",
                hint="shorten the transitions or lengthen the scene")
        spans.append(SceneSpan(scene["id"], start, lengths[i], tuple(shots[s] for s in scene["shots"]),
                               kinds[i] if i < last or fade_out else "cut", overlap, fade_out))
        start += lengths[i] - overlap
    return FilmCut(fps, tuple(spans))


def _t(frames: int, fps: float) -> float:
    return round(frames / fps, 6)


def cut_json(cut: FilmCut, width: int, height: int, sample_rate: int) -> dict[str, Any]:
    """film.json: the cut as pipeline.md describes it (plus frames, size, transitions and line pans)."""
    fps = cut.fps
    scenes, shots, lines = [], [], []
    for span in cut.scenes:
        scenes.append({"id": span.id, "start": _t(span.start, fps), "end": _t(span.end, fps),
                       "frames": span.frames,
                       "transition": {"type": span.transition, "duration": _t(max(span.overlap, span.fade_out), fps)}})
        at = span.start
        for shot in span.shots:
            shots.append({"id": shot.id, "scene": span.id, "start": _t(at, fps), "end": _t(at + shot.frames, fps),
                          "frames": shot.frames})
            for line in shot.lines:
                offset = at / fps
                lines.append({"shot": shot.id, "character": line.get("character", ""), "text": line.get("text", ""),
                              "start": round(offset + float(line["start"]), 6),
                              "end": round(offset + float(line["end"]), 6),
                              "pan": round(float(line.get("pan", 0.0)), 6)})
            at += shot.frames
    lines.sort(key=lambda line: (line["start"], line["shot"]))
    return {"duration": _t(cut.frames, fps), "fps": fps, "frames": cut.frames, "width": width, "height": height,
            "sample_rate": sample_rate, "scenes": scenes, "shots": shots, "lines": lines}


def write_json(path: Path, data: Any) -> Path:
    """Write sorted, indented JSON with a trailing newline (stable bytes for stable input)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return Path(path)


def load_cut(path: Path) -> dict[str, Any]:
    """Read a film.json written by `cut_json`, checking the fields exports rely on."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read the film cut {Path(path).name}: {exc}") from exc
    for key in ("duration", "fps", "scenes", "shots", "lines"):
        if key not in data:
            raise BackendError(f"{Path(path).name} is not a film cut: no {key!r}")
    return data
