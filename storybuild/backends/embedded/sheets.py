"""Stills for an export: the poster frame and the contact sheet of every shot.

Both are drawn or saved with Pillow, which writes PNGs without timestamps, so the same
pictures give the same bytes.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.captions import font
from storybuild.errors import BackendError

CELL_W = 320  # thumbnail width on the contact sheet
MARGIN = 16
LABEL_H = 30
HEADER_H = 64
BACKGROUND = (24, 24, 28)


def poster_time(cut: Mapping[str, Any]) -> float:
    """The middle of the first scene with dialogue, else the middle of the film (seconds)."""
    for scene in cut["scenes"]:
        start, end = float(scene["start"]), float(scene["end"])
        if any(start <= float(line["start"]) < end for line in cut.get("lines", [])):
            return (start + end) / 2
    return float(cut["duration"]) / 2


def grab_frame(film: Path, seconds: float, filters: str, width: int, height: int, out: Path) -> Path:
    """Decode the frame at `seconds`, pass it through `filters`, save it as PNG."""
    from PIL import Image

    proc = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
                           "-ss", f"{seconds:.6f}", "-i", str(film), "-frames:v", "1", "-threads", "1",
                           "-filter_threads", "1", "-vf", filters, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    expected = width * height * 3
    if proc.returncode != 0 or len(proc.stdout) < expected:
        tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        raise BackendError(f"could not take a frame at {seconds:.2f} s from {film.name}: {tail}")
    Image.frombytes("RGB", (width, height), proc.stdout[:expected]).save(out, format="PNG")
    return out


@dataclass(frozen=True)
class SheetLayout:
    """Grid geometry of a contact sheet."""

    cols: int
    rows: int
    cell_w: int
    cell_h: int
    header: int

    @property
    def width(self) -> int:
        return MARGIN + self.cols * (self.cell_w + MARGIN)

    @property
    def height(self) -> int:
        return self.header + MARGIN + self.rows * (self.cell_h + LABEL_H + MARGIN)

    def origin(self, index: int) -> tuple[int, int]:
        row, col = divmod(index, self.cols)
        return MARGIN + col * (self.cell_w + MARGIN), self.header + MARGIN + row * (self.cell_h + LABEL_H + MARGIN)


def sheet_layout(count: int, aspect: float, titled: bool) -> SheetLayout:
    """Up to 4 columns (6 for long films), cells at the film's aspect ratio."""
    cols = max(1, min(count, 4 if count <= 24 else 6))
    rows = max(1, math.ceil(count / cols))
    return SheetLayout(cols, rows, CELL_W, round(CELL_W / aspect), HEADER_H if titled else 0)


def contact_sheet(shots: Sequence[Mapping[str, Any]], thumbs: Mapping[str, Path], aspect: float, title: str,
                  out: Path) -> Path:
    """A grid of every shot's thumbnail with its id and timecode, in film order."""
    from PIL import Image, ImageDraw, ImageOps

    layout = sheet_layout(len(shots), aspect, bool(title))
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((MARGIN, layout.header / 2 + MARGIN / 2), title, font=font(30), fill=(235, 235, 235), anchor="lm")
    label, small = font(16), font(13)
    for index, shot in enumerate(shots):
        path = thumbs.get(shot["id"])
        if path is None or not Path(path).is_file():
            raise BackendError(f"no thumbnail for shot {shot['id']!r}")
        x, y = layout.origin(index)
        with Image.open(path) as thumb:
            # Letterbox into the cell: a shot of another shape keeps its proportions.
            cell = ImageOps.pad(thumb.convert("RGB"), (layout.cell_w, layout.cell_h), color=(0, 0, 0),
                                method=Image.Resampling.LANCZOS)
        sheet.paste(cell, (x, y))
        ty = y + layout.cell_h + LABEL_H / 2
        draw.text((x, ty), _fit(draw, shot["id"], label, layout.cell_w - 70), font=label, fill=(235, 235, 235),
                  anchor="lm")
        draw.text((x + layout.cell_w, ty), _timecode(float(shot["start"])), font=small, fill=(150, 150, 150),
                  anchor="rm")
    sheet.save(out, format="PNG")
    return out


def _fit(draw, text: str, face, width: float) -> str:
    """`text`, ellipsised to fit `width` pixels."""
    if draw.textlength(text, font=face) <= width:
        return text
    while text and draw.textlength(text + "…", font=face) > width:
        text = text[:-1]
    return text + "…"


def _timecode(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:05.2f}"
