"""Burned-in captions drawn with Pillow, overlaid by ffmpeg.

We draw rather than use ffmpeg's `subtitles` filter: libass finds fonts through
fontconfig, which differs from machine to machine (or is missing), and a different font
means different pixels. Here every distinct caption becomes a full-frame transparent PNG
drawn with the bundled DejaVu Sans; an ffconcat script shows each for its time, and the
export's filter graph overlays that one stream on the picture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from storybuild.backends.embedded import subtitles

FONT = Path(__file__).resolve().parents[2] / "fonts" / "DejaVuSans.ttf"


# Actions run on worker threads, and a FreeType face is not safe to share between
# threads, so each thread keeps its own faces.
_faces = threading.local()


def font(size: int):
    """DejaVu Sans at `size` px (Pillow's built-in font if the bundled file is missing)."""
    from PIL import ImageFont

    cache = _faces.__dict__.setdefault("by_size", {})
    if size not in cache:
        cache[size] = ImageFont.truetype(str(FONT), size) if FONT.is_file() else ImageFont.load_default(size)
    return cache[size]


@dataclass(frozen=True)
class Style:
    """Caption layout for one output size."""

    width: int
    height: int

    @property
    def size(self) -> int:  # ~1/20 of the height on landscape, narrower frames by width
        return max(12, round(min(self.height / 20, self.width / 22)))

    @property
    def chars(self) -> int:  # characters per line that fit in 86% of the width
        return max(16, min(subtitles.LINE_WIDTH, int(0.86 * self.width / (0.55 * self.size))))

    @property
    def bottom(self) -> int:  # vertical video keeps captions clear of app controls at the bottom
        return round(self.height * (0.2 if self.height > self.width else 0.08))


def _render(texts: tuple[str, ...], style: Style, path: Path) -> Path:
    """A transparent frame with `texts` (newest last) stacked above the bottom margin."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (style.width, style.height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    size = style.size
    lines = [line for text in texts for line in subtitles.wrap(text, style.chars)]
    face = font(size)
    # Shrink if a line still overflows (wide glyphs, CJK): captions must stay on screen.
    while lines and size > 10 and max(face.getlength(line) for line in lines) > 0.92 * style.width:
        size -= 2
        face = font(size)
    leading = round(size * 1.25)
    pad = round(size * 0.3)
    y = style.height - style.bottom - leading * len(lines)
    for line in lines:
        width = face.getlength(line)
        x = (style.width - width) / 2
        draw.rectangle([round(x) - pad, y - pad // 2, round(x + width) + pad, y + leading - pad // 2],
                       fill=(0, 0, 0, 150))
        draw.text((style.width / 2, y + leading / 2), line, font=face, fill=(255, 255, 255, 255), anchor="mm",
                  stroke_width=max(1, size // 24), stroke_fill=(0, 0, 0, 255))
        y += leading
    image.save(path, format="PNG")
    return path


def overlay_script(lines: Iterable[Mapping[str, Any]], duration: float, style: Style, folder: Path) -> Path:
    """Render every caption state and write an ffconcat script that shows them in time.

    Overlapping lines (two speakers, or a line running into a crossfade) are shown
    stacked, so each interval between cue boundaries gets the image of what is active.
    """
    cues = subtitles.cues(lines, style.chars)
    edges = sorted({0.0, duration} | {c.start for c in cues} | {c.end for c in cues})
    edges = [t for t in edges if 0.0 <= t <= duration]
    images: dict[tuple[str, ...], Path] = {}
    entries: list[tuple[Path, float]] = []
    for start, end in zip(edges, edges[1:]):
        active = tuple(c.text for c in cues if c.start < end and c.end > start)
        if active not in images:
            images[active] = _render(active, style, folder / f"caption-{len(images):04d}.png")
        if entries and entries[-1][0] == images[active]:
            entries[-1] = (images[active], entries[-1][1] + end - start)
        else:
            entries.append((images[active], end - start))
    if not entries:
        entries.append((_render((), style, folder / "caption-0000.png"), duration))
    script = ["ffconcat version 1.0"]
    for path, seconds in entries:
        script += [f"file '{path.name}'", f"duration {seconds:.6f}"]
    script.append(f"file '{entries[-1][0].name}'")  # the demuxer needs the last image listed twice to hold it
    target = folder / "captions.ffconcat"
    target.write_text("\n".join(script) + "\n", encoding="utf-8")
    return target
