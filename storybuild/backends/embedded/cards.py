"""Character cards: flat illustrated characters in their colours, named, with talking mouths.

The cast stands in a row, left to right by stage position, over a sky-and-floor backdrop
in the scene's light. The still parts are drawn once per shot; each frame only pastes
the current mouths and, now and then, a blink (timed from a hash of the character id,
so it is the same on every run).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from storybuild.backends.embedded.compose2d import font
from storybuild.backends.embedded.lighting import lighting_for, parse_color
from storybuild.backends.embedded.mouths import MouthSet, mouth_width_for, paste

_SS = 2  # draw the still layer at 2× and downsample: Pillow's shapes are not anti-aliased
BLINK = 0.13  # seconds the eyes stay shut


def _rgb8(c: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round(max(0.0, min(1.0, float(v))) * 255)) for v in c)  # type: ignore[return-value]


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> tuple[float, float, float]:
    return tuple(float(x) + (float(y) - float(x)) * t for x, y in zip(a, b))  # type: ignore[return-value]


@dataclass(frozen=True)
class Figure:
    """Where one character's card sits on screen (final pixels)."""

    character: str
    x: float  # centre
    head: tuple[float, float]  # head centre
    head_r: float
    mouth: tuple[float, float]
    eyes: tuple[tuple[float, float], tuple[float, float]]
    eye_r: float
    skin: tuple[int, int, int]
    blink_period: float
    blink_phase: float


class CardStage:
    """A shot's cast drawn as cards; `frame(t, shapes)` gives the picture at time t."""

    def __init__(self, cast: Sequence[Mapping[str, Any]], width: int, height: int, mouth_sets: Mapping[str, MouthSet],
                 time: str | None = None, background: str | None = None, lighting: str | None = None, seed: int = 0):
        self.width, self.height = int(width), int(height)
        self.mouth_sets = mouth_sets
        order = sorted(range(len(cast)), key=lambda i: (float((cast[i].get("position") or [0.0])[0]), i))
        self.cast = [cast[i] for i in order]
        self.figures: dict[str, Figure] = {}
        self.base = self._draw_still(time, background, lighting, seed)
        self._lids = {c: self._eyelids(f) for c, f in self.figures.items()}

    def pan(self, character: str) -> float:
        """Screen x of a character's card in -1..1 (0 when it is not on the stage)."""
        fig = self.figures.get(character)
        return 0.0 if fig is None else float(np.clip(fig.x / self.width * 2.0 - 1.0, -1.0, 1.0))

    def frame(self, t: float, shapes: Mapping[str, str]) -> np.ndarray:
        """The cards at `t` seconds with each character's current mouth shape (rest if absent)."""
        out = self.base.copy()
        for character, fig in self.figures.items():
            if (t + fig.blink_phase) % fig.blink_period < BLINK:
                lid, (x, y) = self._lids[character]
                paste(out, lid, x, y)
            shape = shapes.get(character, "X")
            sprite = self.mouth_sets[character].sprite(shape, mouth_width_for(fig.head_r * 2.0))
            paste(out, sprite, fig.mouth[0], fig.mouth[1])
        return out

    # ------------------------------------------------------------------ drawing

    def _draw_still(self, time: str | None, background: str | None, lighting: str | None, seed: int) -> np.ndarray:
        from PIL import Image, ImageDraw

        w, h = self.width * _SS, self.height * _SS
        light = lighting_for(time, background, lighting)
        horizon_y = 0.72
        ys = (np.arange(h, dtype=np.float32) + 0.5) / h
        top, hor = np.array(light.sky_top, np.float32), np.array(light.sky_horizon, np.float32)
        floor = hor * 0.45 + np.array([0.22, 0.2, 0.16], np.float32) * 0.55
        s = np.clip(ys / horizon_y, 0.0, 1.0)[:, None]
        rows = np.where((ys < horizon_y)[:, None], top + (hor - top) * np.sqrt(s), floor * (1.0 - 0.25 * (ys[:, None] - horizon_y)))
        img = Image.fromarray(np.repeat((np.clip(rows, 0, 1) * 255 + 0.5).astype(np.uint8)[:, None, :], w, axis=1))
        draw = ImageDraw.Draw(img)
        n = max(1, len(self.cast))
        fig_h = h * min(0.62, 1.5 / n ** 0.5 * 0.5)
        floor_y = h * 0.86
        for i, member in enumerate(self.cast):
            cx = w * (i + 1) / (n + 1)
            self._draw_figure(draw, member, cx, floor_y, fig_h, seed, floor)
        return np.asarray(img.resize((self.width, self.height), Image.LANCZOS), dtype=np.uint8)

    def _draw_figure(self, draw, member: Mapping[str, Any], cx: float, floor_y: float, fig_h: float, seed: int,
                     shadow: Sequence[float]) -> None:
        color = parse_color(member.get("color"))
        dark = _mix(color, (0, 0, 0), 0.45)
        skin = _mix(color, (1, 1, 1), 0.55)
        outline = _rgb8(_mix(color, (0, 0, 0), 0.65))
        lw = max(2, int(fig_h * 0.012))
        # Body: a rounded gown whose hem runs past the floor line.
        bw = fig_h * 0.21
        top = floor_y - fig_h * 0.6
        draw.ellipse((cx - bw * 1.1, floor_y - fig_h * 0.03, cx + bw * 1.1, floor_y + fig_h * 0.05),
                     fill=_rgb8(_mix(shadow, (0, 0, 0), 0.3)))
        draw.rounded_rectangle((cx - bw, top, cx + bw, floor_y), radius=bw * 0.8, fill=_rgb8(color),
                               outline=outline, width=lw)
        draw.line((cx, top + fig_h * 0.12, cx, floor_y - lw), fill=_rgb8(dark), width=lw)
        hr = fig_h * 0.17
        hx, hy = cx, top - hr * 0.55
        draw.ellipse((hx - hr, hy - hr, hx + hr, hy + hr), fill=_rgb8(skin), outline=outline, width=lw)
        eye_r = hr * 0.16
        eyes = ((hx - hr * 0.36, hy - hr * 0.12), (hx + hr * 0.36, hy - hr * 0.12))
        for ex, ey in eyes:
            draw.ellipse((ex - eye_r, ey - eye_r * 1.2, ex + eye_r, ey + eye_r * 1.2), fill=(250, 250, 246),
                         outline=outline, width=max(1, lw // 2))
            pr = eye_r * 0.55
            draw.ellipse((ex - pr, ey - pr + eye_r * 0.2, ex + pr, ey + pr + eye_r * 0.2), fill=(20, 20, 26))
        name = str(member.get("name") or member.get("character") or "")
        if name:
            f = font(max(8, int(hr * 0.62)))
            ty = hy - hr - hr * 0.55
            tw = f.getlength(name)
            pad = hr * 0.18
            draw.rounded_rectangle((hx - tw / 2 - pad, ty - hr * 0.36, hx + tw / 2 + pad, ty + hr * 0.36),
                                   radius=hr * 0.2, fill=_rgb8(_mix(color, (0, 0, 0), 0.7)))
            draw.text((hx, ty), name, font=f, fill=(255, 255, 255), anchor="mm")
        character = str(member.get("character") or name)
        digest = hashlib.blake2b(f"{seed}:{character}".encode(), digest_size=8).digest()
        period = 3.0 + (digest[0] / 255.0) * 2.0
        phase = (int.from_bytes(digest[1:5], "big") / 2**32) * period
        s = 1.0 / _SS
        self.figures[character] = Figure(
            character, cx * s, (hx * s, hy * s), hr * s, (hx * s, (hy + hr * 0.48) * s),
            ((eyes[0][0] * s, eyes[0][1] * s), (eyes[1][0] * s, eyes[1][1] * s)), eye_r * s,
            _rgb8(skin), period, phase)

    def _eyelids(self, fig: Figure) -> tuple[np.ndarray, tuple[float, float]]:
        """A patch (RGBA) closing both eyes, and where its centre goes."""
        from PIL import Image, ImageDraw

        (lx, ly), (rx, ry) = fig.eyes
        r = fig.eye_r * 1.35
        w = int(np.ceil(rx - lx + 2 * r)) + 2
        h = int(np.ceil(2.6 * r)) + 2
        big = Image.new("RGBA", (w * 4, h * 4), (0, 0, 0, 0))
        draw = ImageDraw.Draw(big)
        for ex in (r + 1, r + 1 + (rx - lx)):
            box = ((ex - r) * 4, (h / 2 - 1.3 * r) * 4, (ex + r) * 4, (h / 2 + 1.3 * r) * 4)
            draw.ellipse(box, fill=fig.skin + (255,))
            draw.line(((ex - r * 0.8) * 4, h / 2 * 4, (ex + r * 0.8) * 4, h / 2 * 4), fill=(30, 24, 24, 255),
                      width=max(2, int(r * 0.5)))
        patch = np.asarray(big.resize((w, h), Image.LANCZOS), dtype=np.uint8)
        return patch, ((lx + rx) / 2.0, (ly + ry) / 2.0)
