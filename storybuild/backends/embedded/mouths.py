"""Mouth shapes A–H and X (Rhubarb Lip Sync's set), drawn with Pillow or read from a folder.

A  closed lips (M, B, P)            E  rounded (AO, ER)
B  slightly open, clenched teeth    F  puckered (UW, OO, W)
C  open (EH, AE)                    G  upper teeth on the lower lip (F, V)
D  wide open (AA)                   H  tongue up (L)
X  rest

A mouth-set folder holds A.png … X.png (any case; `name-A.png` works too); G, H and X may
be missing and fall back to B, C and A as Rhubarb documents. Sprites are RGBA, cached per
(shape, size), and composited onto frames with `paste`; `overlay_3d` places one on a 3D
character's face when the face is towards the camera and not hidden.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from storybuild.errors import BackendError

SHAPES = "ABCDEFGHX"
FALLBACK = {"G": "B", "H": "C", "X": "A"}
ASPECT = 0.62  # height / width of a drawn mouth
BUILTIN = ("default", "simple")
_SS = 4  # draw at 4× and downsample: Pillow's shapes have no anti-aliasing

# Palettes: lips, inside, teeth, tongue.
_PALETTES = {
    "default": ((140, 46, 56), (58, 12, 22), (250, 248, 240), (214, 96, 106)),
    "simple": ((30, 24, 26), (30, 24, 26), (30, 24, 26), (30, 24, 26)),
}

# Each shape in a 100 × 62 design box: (opening polygon or ellipse, features).
# kind "line": a closed mouth drawn as a stroke; "ellipse"/"rect": an opening with
# teeth (top/bottom bands, as fractions of the opening height) and a tongue.
_DESIGNS: dict[str, dict] = {
    "X": {"kind": "line", "points": [(24, 30), (38, 33), (50, 34), (62, 33), (76, 30)], "width": 4},
    "A": {"kind": "line", "points": [(28, 31), (72, 31)], "width": 7},
    "B": {"kind": "rect", "box": (24, 24, 76, 38), "teeth_top": 0.5, "teeth_bottom": 0.5},
    "C": {"kind": "ellipse", "box": (24, 16, 76, 46), "teeth_top": 0.22},
    "D": {"kind": "ellipse", "box": (20, 6, 80, 56), "teeth_top": 0.14, "tongue": 0.3},
    "E": {"kind": "ellipse", "box": (32, 13, 68, 49), "tongue": 0.25},
    "F": {"kind": "ellipse", "box": (40, 19, 60, 43), "lip": 9},
    "G": {"kind": "rect", "box": (28, 22, 72, 36), "teeth_top": 0.75, "lower_lip": True},
    "H": {"kind": "ellipse", "box": (26, 12, 74, 48), "teeth_top": 0.16, "tongue_up": 0.38},
}


def _draw_closed(draw, design: dict, sx: float, sy: float, lips: tuple) -> None:
    """A closed mouth: a stroke through the design's points, with rounded ends."""
    pts = [(x * sx, y * sy) for x, y in design["points"]]
    lw = max(1, round(design["width"] * sx))
    draw.line(pts, fill=lips + (255,), width=lw, joint="curve")
    for x, y in (pts[0], pts[-1]):  # round the ends
        draw.ellipse((x - lw / 2, y - lw / 2, x + lw / 2, y + lw / 2), fill=lips + (255,))


def _mouth_inside(size: tuple[int, int], design: dict, box: tuple, stroke: int, palette: tuple):
    """The inside of an open mouth, unmasked: its dark, the tongue and the teeth."""
    from PIL import Image, ImageDraw

    _, inside, teeth, tongue = palette
    layer = Image.new("RGBA", size, inside + (255,))
    ldraw = ImageDraw.Draw(layer)
    h = box[3] - box[1]
    if design.get("tongue"):
        t = design["tongue"]
        ldraw.ellipse((box[0] + 0.15 * (box[2] - box[0]), box[3] - t * h * 1.6,
                       box[2] - 0.15 * (box[2] - box[0]), box[3] + t * h), fill=tongue + (255,))
    if design.get("tongue_up"):
        t = design["tongue_up"]
        cx = (box[0] + box[2]) / 2
        ldraw.ellipse((cx - 0.22 * (box[2] - box[0]), box[1] + 0.05 * h, cx + 0.22 * (box[2] - box[0]),
                       box[1] + (t + 0.35) * h), fill=tongue + (255,))
    if design.get("teeth_top"):
        ldraw.rectangle((box[0], box[1], box[2], box[1] + design["teeth_top"] * h), fill=teeth + (255,))
    if design.get("teeth_bottom"):
        ldraw.rectangle((box[0], box[3] - design["teeth_bottom"] * h, box[2], box[3]), fill=teeth + (255,))
    if design.get("teeth_top") and design.get("teeth_bottom"):
        mid = box[1] + design["teeth_top"] * h
        ldraw.line((box[0], mid, box[2], mid), fill=inside + (255,), width=max(1, stroke // 2))
    return layer


def _draw_open(img, draw, design: dict, sx: float, sy: float, stroke: int, palette: tuple) -> None:
    """An open mouth: its inside pasted through the opening's shape, then the lips around it."""
    from PIL import Image, ImageDraw

    lips = palette[0]
    x0, y0, x1, y1 = design["box"]
    box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    radius = (box[3] - box[1]) * 0.45
    mask = Image.new("L", img.size, 0)
    mdraw = ImageDraw.Draw(mask)
    if design["kind"] == "ellipse":
        mdraw.ellipse(box, fill=255)
    else:
        mdraw.rounded_rectangle(box, radius=radius, fill=255)
    img.paste(_mouth_inside(img.size, design, box, stroke, palette), (0, 0), mask)
    h = box[3] - box[1]
    lw = max(1, round(design.get("lip", 3) * sx))
    if design["kind"] == "ellipse":
        draw.ellipse(box, outline=lips + (255,), width=lw)
    else:
        draw.rounded_rectangle(box, radius=radius, outline=lips + (255,), width=lw)
    if design.get("lower_lip"):
        # The lower lip tucked under the upper teeth: a thick curve along the bottom.
        draw.arc((box[0], box[3] - 1.2 * h, box[2], box[3] + 0.5 * h), 20, 160, fill=lips + (255,),
                 width=round(lw * 2.2))


def draw_mouth(shape: str, width: int, style: str = "default"):
    """A mouth shape as a Pillow RGBA image `width` wide (height = width × 0.62)."""
    from PIL import Image, ImageDraw

    if shape not in _DESIGNS:
        raise BackendError(f"unknown mouth shape {shape!r}", hint=f"shapes are {', '.join(SHAPES)}")
    if style not in _PALETTES:
        raise BackendError(f"unknown built-in mouth set {style!r}", hint=f"built-in sets: {', '.join(BUILTIN)}")
    width = max(2, int(width))
    height = max(2, int(round(width * ASPECT)))
    big_w, big_h = width * _SS, height * _SS
    sx, sy = big_w / 100.0, big_h / 62.0
    stroke = max(1, round(3.0 * sx))
    design = _DESIGNS[shape]
    img = Image.new("RGBA", (big_w, big_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    if design["kind"] == "line":
        _draw_closed(draw, design, sx, sy, _PALETTES[style][0])
    else:
        _draw_open(img, draw, design, sx, sy, stroke, _PALETTES[style])
    return img.resize((width, height), Image.LANCZOS)


def _file_for(directory: Path, shape: str) -> Path | None:
    for entry in sorted(directory.iterdir()):
        if entry.suffix.lower() != ".png":
            continue
        stem = entry.stem.upper()
        if stem == shape or stem.endswith(("-" + shape, "_" + shape)):
            return entry
    return None


class MouthSet:
    """A set of the nine mouth shapes: a built-in drawn style or a folder of PNGs."""

    def __init__(self, style: str = "default", directory: Path | None = None):
        self.style = style
        self.files: dict[str, Path] = {}
        if directory is not None:
            directory = Path(directory)
            if not directory.is_dir():
                raise BackendError(f"mouth set {directory.name} is not a folder of A.png … X.png")
            found = {s: _file_for(directory, s) for s in SHAPES}
            missing = [s for s in "ABCDEF" if found[s] is None]
            if missing:
                raise BackendError(f"mouth set {directory.name} lacks {', '.join(m + '.png' for m in missing)}",
                                   hint="a mouth set needs A.png … F.png; G, H and X are optional")
            self.files = {s: p for s, p in found.items() if p is not None}
        elif style not in BUILTIN:
            raise BackendError(f"unknown mouth set {style!r}",
                               hint=f"use a built-in set ({', '.join(BUILTIN)}) or a `mouths` asset folder")

    def resolve(self, shape: str) -> str:
        """The shape actually drawn for `shape` (after Rhubarb's fallbacks for a partial set)."""
        shape = shape if shape in SHAPES else "X"
        if self.files and shape not in self.files:
            shape = FALLBACK.get(shape, "A")
        return shape

    def sprite(self, shape: str, width: int, height: int | None = None) -> np.ndarray:
        """The shape as RGBA uint8 (h, w, 4), `width` wide (height from the shape's aspect if None)."""
        return _sprite(self, self.resolve(shape), max(2, int(width)), None if height is None else max(2, int(height)))

    def _image(self, shape: str, width: int):
        from PIL import Image

        if not self.files:
            return draw_mouth(shape, width, self.style)
        with Image.open(self.files[shape]) as im:
            im = im.convert("RGBA")
            h = max(2, round(im.height * width / im.width))
            return im.resize((width, h), Image.LANCZOS)

    def __hash__(self) -> int:
        return hash((self.style, tuple(sorted(self.files.items()))))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MouthSet) and (self.style, self.files) == (other.style, other.files)


@lru_cache(maxsize=512)
def _sprite(mouths: MouthSet, shape: str, width: int, height: int | None) -> np.ndarray:
    from PIL import Image

    img = mouths._image(shape, width)
    if height is not None and height != img.height:
        img = img.resize((width, height), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    arr.setflags(write=False)
    return arr


def mouth_set_for(name: str | None, inputs: Mapping[str, Path]) -> MouthSet:
    """The mouth set a cast member asks for: an input ("mouths:<asset>") or a built-in style."""
    name = name or "default"
    key = name if name.startswith("mouths:") else f"mouths:{name}"
    path = inputs.get(key)
    if path is not None:
        return MouthSet(directory=Path(path))
    if name.startswith("mouths:"):
        raise BackendError(f"mouth set {name[7:]!r} is not among the shot's inputs")
    return MouthSet(style=name)


def paste(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float) -> None:
    """Alpha-blend an RGBA sprite onto an RGB frame (in place), centred at (cx, cy), clipped."""
    sh, sw = sprite.shape[:2]
    x0, y0 = int(round(cx - sw / 2.0)), int(round(cy - sh / 2.0))
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + sw, frame.shape[1]), min(y0 + sh, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = sprite[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    alpha = part[:, :, 3:4].astype(np.uint16)
    region = frame[fy0:fy1, fx0:fx1].astype(np.uint16)
    frame[fy0:fy1, fx0:fx1] = ((part[:, :, :3] * alpha + region * (255 - alpha) + 127) // 255).astype(np.uint8)


def overlay_3d(frame_rgb: np.ndarray, depth: np.ndarray, objects: np.ndarray, camera, mouth: np.ndarray,
               forward: np.ndarray, head_radius: float, object_id: int, mouths: MouthSet, shape: str) -> bool:
    """Draw `shape` on a 3D character's face; return whether it was visible.

    The mouth is drawn only when the face turns towards the camera (foreshortened as it
    turns) and the z-buffer shows the character's own surface there, not something nearer.
    """
    height, width = depth.shape
    ndc, dist = camera.project(mouth[None, :])
    if dist[0] <= 0:
        return False
    to_camera = camera.position - mouth
    to_camera = to_camera / max(float(np.linalg.norm(to_camera)), 1e-9)
    facing = float(forward @ to_camera)
    if facing < 0.3:
        return False
    px = (ndc[0, 0] + 1.0) * 0.5 * width
    py = (1.0 - ndc[0, 1]) * 0.5 * height
    ix, iy = int(px), int(py)
    if not (0 <= ix < width and 0 <= iy < height):
        return False
    window = (slice(max(iy - 1, 0), iy + 2), slice(max(ix - 1, 0), ix + 2))
    own = objects[window] == object_id
    near_enough = depth[window] >= dist[0] - max(0.35 * head_radius, 0.02)
    if not (own | near_enough).any():
        return False
    size = 1.05 * head_radius * camera.focal_px(width) / dist[0]  # mouth ≈ half the head's width
    if size < 3:
        return False
    w = max(3, int(round(size * (0.35 + 0.65 * facing))))
    h = max(2, int(round(size * ASPECT)))
    paste(frame_rgb, mouths.sprite(shape, w, h), px, py)
    return True


def mouth_width_for(head_px: float) -> int:
    """Mouth sprite width for a 2D head `head_px` across (about half of it)."""
    return max(4, int(math.floor(head_px * 0.5)))
