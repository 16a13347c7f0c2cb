"""Frame painters: the picture of a shot at frame i, for each kind of source.

A ShotSpec is plain data (it crosses process boundaries); `painter_for(spec)` builds the
painter once per process, then `frame(i)` is a pure function of i, so frames come out the
same whichever process paints them and in whatever order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np


RENDER3D, CARD, TITLE, KEN_BURNS, CLIP = "render3d", "card", "title", "ken_burns", "clip"


@dataclass(frozen=True)
class LineTrack:
    """A line placed on the shot: who speaks, what, when, and its mouth cues (line-relative)."""

    index: int
    character: str
    text: str
    start: float
    end: float
    cues: tuple[tuple[float, float, str], ...]


@dataclass(frozen=True)
class ShotSpec:
    """Everything needed to paint a shot's frames (picklable)."""

    params: Mapping[str, Any]
    inputs: Mapping[str, str]
    picture: str  # RENDER3D | CARD | TITLE | KEN_BURNS | CLIP
    duration: float
    frames: int
    fps: float
    lines: tuple[LineTrack, ...]
    cache: str | None = None  # a folder for derived data kept between builds (meshcache)

    def time(self, i: int) -> float:
        """When frame i is shown (seconds): what mouths and captions follow."""
        return i / self.fps

    def move_time(self, i: int) -> float:
        """Where frame i is along camera and Ken Burns moves: the first frame at 0, the last at the end."""
        return self.duration * (i / (self.frames - 1) if self.frames > 1 else 0.0)

    def move_time_at(self, t: float) -> float:
        """Where the frame shown at `t` seconds is along the moves."""
        return self.move_time(min(max(t * self.fps, 0.0), max(self.frames - 1, 0)))


def shapes_at(lines: tuple[LineTrack, ...], t: float) -> dict[str, str]:
    """Each speaking character's mouth shape at t (later lines win where lines overlap)."""
    from storybuild.backends.embedded.visemes import mouth_at

    shapes: dict[str, str] = {}
    for line in lines:
        if line.start <= t < line.end and line.cues:
            cues = [{"start": s, "end": e, "value": v} for s, e, v in line.cues]
            shapes[line.character] = mouth_at(cues, t - line.start)
    return shapes


def caption_at(lines: tuple[LineTrack, ...], t: float) -> str:
    """The text of the line being spoken at t ('' between lines)."""
    text = ""
    for line in lines:
        if line.start <= t < line.end:
            text = line.text
    return text


class Overlay:
    """What every shot adds over its picture: captions; and where speakers are (pans)."""

    def __init__(self, spec: ShotSpec):
        self.spec = spec
        self.captions = bool(spec.params.get("caption_lines"))

    def finish(self, i: int, picture: np.ndarray) -> np.ndarray:
        """Frame i from its picture: the current line's caption burned in when the shot asks."""
        if self.captions:
            from storybuild.backends.embedded.compose2d import draw_caption

            draw_caption(picture, caption_at(self.spec.lines, self.spec.time(i)))
        return picture

    def pan(self, character: str, t: float) -> float:
        """Where a speaker stands on screen at t, -1..1, by the shot's camera and staging."""
        from storybuild.backends.embedded.camera import camera_at
        from storybuild.backends.embedded.stage3d import aim_point, framed_camera, screen_x

        params = self.spec.params
        cast = params.get("cast") or []
        member = next((c for c in cast if c.get("character") == character), None)
        if member is None:
            return 0.0
        aspect = int(params["width"]) / int(params["height"])
        camera = camera_at(framed_camera(params.get("camera"), cast), self.spec.move_time_at(t), self.spec.duration,
                           aspect)
        return screen_x(camera, aim_point(member))


class Painter(Overlay, ABC):
    """Paints whole frames: a picture for frame i, finished with the overlay."""

    @abstractmethod
    def picture(self, i: int) -> np.ndarray:
        """The picture of frame i (RGB uint8, H×W×3), before captions."""

    def frame(self, i: int) -> np.ndarray:
        """Frame i, complete."""
        return self.finish(i, self.picture(i))


class Render3DPainter(Painter):
    """The set and cast rendered from the shot's camera, with talking mouths."""

    def __init__(self, spec: ShotSpec):
        from storybuild.backends.embedded.stage3d import Stage3D

        super().__init__(spec)
        self.stage = Stage3D(spec.params, {k: Path(v) for k, v in spec.inputs.items()}, spec.cache)

    def picture(self, i: int) -> np.ndarray:
        camera = self.stage.camera(self.spec.move_time(i), self.spec.duration)
        return self.stage.render(camera, shapes_at(self.spec.lines, self.spec.time(i)))


class CardPainter(Painter):
    """The cast as illustrated cards with talking mouths."""

    def __init__(self, spec: ShotSpec):
        from storybuild.backends.embedded.cards import CardStage
        from storybuild.backends.embedded.mouths import mouth_set_for

        super().__init__(spec)
        p = spec.params
        cast = p.get("cast") or []
        inputs = {k: Path(v) for k, v in spec.inputs.items()}
        sets = {str(c.get("character")): mouth_set_for(c.get("mouths"), inputs) for c in cast}
        self.stage = CardStage(cast, int(p["width"]), int(p["height"]), sets, p.get("time"), p.get("background"),
                               p.get("lighting"), int(p.get("seed") or 0))

    def picture(self, i: int) -> np.ndarray:
        t = self.spec.time(i)
        return self.stage.frame(t, shapes_at(self.spec.lines, t))

    def pan(self, character: str, t: float) -> float:
        return self.stage.pan(character)


class TitlePainter(Painter):
    """A title card."""

    def __init__(self, spec: ShotSpec):
        from storybuild.backends.embedded.compose2d import TitleCard

        super().__init__(spec)
        p = spec.params
        self.card = TitleCard(str(p.get("title") or ""), int(p["width"]), int(p["height"]), p.get("background"),
                              spec.duration)

    def picture(self, i: int) -> np.ndarray:
        return self.card.frame(self.spec.time(i))


class KenBurnsPainter(Painter):
    """A still (provided or generated) with a slow zoom and drift."""

    def __init__(self, spec: ShotSpec):
        from storybuild.backends.embedded.compose2d import KenBurns

        super().__init__(spec)
        p = spec.params
        self.still = KenBurns(Path(spec.inputs["image"]), int(p["width"]), int(p["height"]), p.get("ken_burns"))

    def picture(self, i: int) -> np.ndarray:
        return self.still.frame(self.spec.move_time(i) / self.spec.duration if self.spec.duration > 0 else 0.0)


PAINTERS = {RENDER3D: Render3DPainter, CARD: CardPainter, TITLE: TitlePainter, KEN_BURNS: KenBurnsPainter}


def painter_for(spec: ShotSpec) -> Overlay:
    """The painter for a spec's picture kind; for a clip (conformed, not painted) just the overlay."""
    if spec.picture == CLIP:
        return Overlay(spec)
    return PAINTERS[spec.picture](spec)
