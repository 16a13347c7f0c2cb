"""2D pictures with Pillow: a still with a Ken Burns move, title cards, burned-in captions.

Text uses the bundled DejaVu Sans (storybuild/fonts), so any script it covers renders the
same on every machine; Pillow's built-in font is ASCII-only. Every function returns or
edits RGB uint8 numpy frames (H, W, 3) and is deterministic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from storybuild.backends.embedded.camera import ease
from storybuild.backends.embedded.lighting import parse_color
from storybuild.errors import BackendError

FONT_PATH = Path(__file__).resolve().parents[2] / "fonts" / "DejaVuSans.ttf"
DEFAULT_KEN_BURNS = {"zoom_from": 1.0, "zoom_to": 1.15, "center_from": [0.5, 0.5], "center_to": [0.5, 0.5]}
TITLE_FADE = 0.6  # seconds the title takes to fade in, and out


@lru_cache(maxsize=32)
def font(size: int):
    """The bundled Unicode font at `size` pixels."""
    from PIL import ImageFont

    if not FONT_PATH.is_file():
        raise BackendError(f"the bundled font is missing: {FONT_PATH}", hint="reinstall storybuild")
    return ImageFont.truetype(str(FONT_PATH), max(6, int(size)))


def wrap_text(text: str, size: int, max_width: float) -> list[str]:
    """Words of `text` broken into lines no wider than `max_width` pixels (long words split)."""
    f = font(size)
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if f.getlength(trial) <= max_width:
                line = trial
                continue
            if line:
                lines.append(line)
            line = word
            while f.getlength(line) > max_width and len(line) > 1:
                cut = len(line) - 1
                while cut > 1 and f.getlength(line[:cut]) > max_width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return [ln for ln in lines if ln] or [""]


# --------------------------------------------------------------------------- Ken Burns


class KenBurns:
    """A still image moved over a shot: zoom and centre eased from → to, sub-pixel smooth."""

    def __init__(self, path: Path, width: int, height: int, move: Mapping[str, Any] | None = None):
        from PIL import Image, UnidentifiedImageError

        self.width, self.height = int(width), int(height)
        spec = {**DEFAULT_KEN_BURNS, **(move or {})}
        # A zoom below 1 would show past the image's edges: the frame always stays inside it.
        self.zoom = (max(1.0, float(spec["zoom_from"])), max(1.0, float(spec["zoom_to"])))
        self.center = (tuple(map(float, spec["center_from"])), tuple(map(float, spec["center_to"])))
        self.easing = spec.get("easing") or "ease-in-out"
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            raise BackendError(f"cannot read image {Path(path).name}: {exc}") from exc
        # Shrink once so that the most zoomed-in crop is sampled about 1:1: the affine
        # sampler does not filter, so big sources would alias when minified per frame.
        aspect = self.width / self.height
        crop_w = min(image.width, image.height * aspect)
        want = self.width * max(self.zoom) * 1.25
        if crop_w > want:
            f = want / crop_w
            image = image.resize((max(1, round(image.width * f)), max(1, round(image.height * f))), Image.LANCZOS)
        self.image = image

    def frame(self, progress: float) -> np.ndarray:
        """The frame at `progress` 0..1 of the shot."""
        from PIL import Image

        s = ease(self.easing, progress)
        zoom = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * s
        cx = self.center[0][0] + (self.center[1][0] - self.center[0][0]) * s
        cy = self.center[0][1] + (self.center[1][1] - self.center[0][1]) * s
        sw, sh = self.image.size
        aspect = self.width / self.height
        base_w = min(sw, sh * aspect)
        cw = base_w / zoom
        ch = cw / aspect
        x0 = min(max(cx * sw - cw / 2.0, 0.0), sw - cw)
        y0 = min(max(cy * sh - ch / 2.0, 0.0), sh - ch)
        a, e = cw / self.width, ch / self.height
        out = self.image.transform((self.width, self.height), Image.AFFINE, (a, 0.0, x0, 0.0, e, y0),
                                   resample=Image.BICUBIC)
        return np.asarray(out, dtype=np.uint8).copy()


# --------------------------------------------------------------------------- titles


def backdrop(width: int, height: int, background: str | None, vignette: float = 0.35) -> np.ndarray:
    """A flat colour lifted in the middle and darkened at the corners (float 0..1, H×W×3)."""
    base = np.array(parse_color(background, "#202830"), np.float32)
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    r2 = (xs[None, :] * 1.2) ** 2 + ys[:, None] ** 2
    shade = 1.0 + 0.18 - vignette * r2 * 2.0
    return np.clip(base[None, None, :] * shade[:, :, None], 0.0, 1.0)


class TitleCard:
    """Title text centred over the shot's backdrop, fading in and out."""

    def __init__(self, title: str, width: int, height: int, background: str | None, duration: float):
        from PIL import Image, ImageDraw

        self.duration = max(float(duration), 1e-6)
        bg = backdrop(width, height, background)
        self.background = np.clip(bg * 255.0 + 0.5, 0, 255).astype(np.uint8)
        luminance = float(bg.mean(axis=(0, 1)) @ np.array([0.2126, 0.7152, 0.0722], np.float32))
        ink = (24, 24, 28) if luminance > 0.6 else (246, 242, 232)
        size = max(10, height // 9)
        lines = wrap_text(title, size, width * 0.84)
        while len(lines) > 3 and size > 10:  # long titles: smaller type rather than overflow
            size = int(size * 0.85)
            lines = wrap_text(title, size, width * 0.84)
        f = font(size)
        layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        line_h = int(size * 1.3)
        top = (height - line_h * len(lines)) / 2.0
        for i, line in enumerate(lines):
            draw.text((width / 2.0, top + i * line_h + line_h / 2.0), line, font=f, fill=ink + (255,), anchor="mm")
        self.text = np.asarray(layer, dtype=np.uint8)

    def frame(self, t: float) -> np.ndarray:
        """The card at `t` seconds."""
        fade = min(1.0, t / TITLE_FADE, (self.duration - t) / TITLE_FADE) if self.duration > 3 * TITLE_FADE else 1.0
        alpha = self.text[:, :, 3:4].astype(np.float32) / 255.0 * max(0.0, fade)
        out = self.background * (1.0 - alpha) + self.text[:, :, :3] * alpha
        return (out + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- captions


@lru_cache(maxsize=64)
def _caption_layer(text: str, width: int, height: int) -> tuple[np.ndarray, int]:
    """RGBA strip (h, width, 4) holding a caption box, and the row it goes at."""
    from PIL import Image, ImageDraw

    size = max(9, height // 18)
    lines = wrap_text(text, size, width * 0.86)[:3]
    f = font(size)
    line_h = int(size * 1.28)
    pad = max(3, size // 3)
    box_h = line_h * len(lines) + 2 * pad
    box_w = int(max(f.getlength(line) for line in lines)) + 4 * pad
    strip = Image.new("RGBA", (width, box_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(strip)
    left = (width - box_w) // 2
    draw.rounded_rectangle((left, 0, left + box_w, box_h - 1), radius=pad, fill=(0, 0, 0, 150))
    for i, line in enumerate(lines):
        draw.text((width / 2.0, pad + i * line_h + line_h / 2.0), line, font=f, fill=(255, 255, 255, 255),
                  anchor="mm", stroke_width=max(1, size // 14), stroke_fill=(0, 0, 0, 255))
    y = height - box_h - max(4, height // 24)
    arr = np.asarray(strip, dtype=np.uint8)
    arr.setflags(write=False)
    return arr, y


def draw_caption(frame: np.ndarray, text: str) -> None:
    """Burn `text` into the bottom of `frame` (in place), wrapped to at most three lines."""
    if not text.strip():
        return
    height, width = frame.shape[:2]
    strip, y = _caption_layer(text, width, height)
    y0, y1 = max(y, 0), min(y + strip.shape[0], height)
    part = strip[y0 - y:y1 - y]
    alpha = part[:, :, 3:4].astype(np.uint16)
    region = frame[y0:y1].astype(np.uint16)
    frame[y0:y1] = ((part[:, :, :3] * alpha + region * (255 - alpha) + 127) // 255).astype(np.uint8)
