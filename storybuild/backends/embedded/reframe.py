"""Fitting the film into an export's frame: scale, crop (reframe) or pad, as ffmpeg filters.

A narrower frame (vertical, square) crops the film: on the centre, or following whoever
speaks. A speaker's place in the picture comes from the cut's line `pan` (-1 at the
left edge of the frame, +1 at the right). The crop holds on the last speaker between
lines, frames a shot's first speaker from its first frame, jumps at cuts (a pan across
a cut looks like a mistake) and glides within a shot: the target is smoothed with a
moving average about REFRAME_SMOOTH_S long, applied twice for gentle acceleration.
A wider frame pads (letterbox/pillarbox) rather than cropping heads off.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

REFRAME_SMOOTH_S = 0.8


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


@dataclass(frozen=True)
class Fit:
    """How a source frame maps into an output frame."""

    src_w: int
    src_h: int
    out_w: int
    out_h: int

    @property
    def mode(self) -> str:
        source, target = self.src_w / self.src_h, self.out_w / self.out_h
        if abs(source - target) < 0.01:
            return "scale"
        return "crop" if target < source else "pad"

    @property
    def scaled_w(self) -> int:
        """Width of the source scaled to the output height (crop and pad work at this scale)."""
        return _even(self.out_h * self.src_w / self.src_h)

    def crop_x(self, centre: float) -> int:
        """Left edge of the crop (output pixels, even) for a crop centred at `centre` (0..1 of the width)."""
        x = centre * self.scaled_w - self.out_w / 2
        return int(min(max(0.0, x), self.scaled_w - self.out_w)) // 2 * 2

    def filters(self, centre: float = 0.5, commands: Path | None = None) -> str:
        """The ffmpeg filter chain; `commands` is a sendcmd file moving the crop (speaker reframing)."""
        w, h = self.out_w, self.out_h
        if self.mode == "scale":
            return f"scale={w}:{h}:flags=lanczos,setsar=1"
        if self.mode == "pad":
            return f"scale={self.scaled_w}:{h}:flags=lanczos,pad={w}:{h}:(ow-iw)/2:0:black,setsar=1"
        # Scale first, crop after: a moving crop then steps by output pixels, not by
        # several at once as it would cropping a small source before upscaling.
        chain = f"scale={self.scaled_w}:{h}:flags=lanczos,"
        if commands is not None:
            chain += f"sendcmd=f={_escape(commands)},"
        return chain + f"crop={w}:{h}:{self.crop_x(centre)}:0,setsar=1"


def _escape(path: Path) -> str:
    """A path as a filter option value inside a filtergraph (ffmpeg's two levels of escaping)."""
    value = str(path)
    for ch in "\\':":  # option level
        value = value.replace(ch, "\\" + ch)
    for ch in "\\'[],;=":  # filtergraph level
        value = value.replace(ch, "\\" + ch)
    return value


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(x) < 2:
        return x
    padded = np.pad(x, (width // 2, width - width // 2 - 1), mode="edge")
    total = np.concatenate([[0.0], np.cumsum(padded)])
    return (total[width:] - total[:-width]) / width


def speaker_centres(cut: Mapping[str, Any], frames: int) -> np.ndarray:
    """Per film frame, where the crop should centre (0..1 of the width) to frame the speaker."""
    fps = float(cut["fps"])
    centre = np.full(frames, 0.5)
    lines_by_shot: dict[str, list[Mapping[str, Any]]] = {}
    for line in cut.get("lines", []):
        lines_by_shot.setdefault(line["shot"], []).append(line)
    previous_end = 0
    for shot in cut["shots"]:
        start = int(round(float(shot["start"]) * fps))
        end = min(frames, int(round(float(shot["end"]) * fps)))
        # During a crossfade the incoming shot takes over halfway through the overlap.
        begin = start if start >= previous_end else (start + previous_end) // 2
        previous_end = max(previous_end, end)
        if end <= begin:
            continue
        lines = sorted(lines_by_shot.get(shot["id"], []), key=lambda line: float(line["start"]))
        target = np.full(end - start, 0.5)
        if lines:
            target[:] = (float(lines[0].get("pan", 0.0)) + 1.0) / 2.0
            for line in lines:
                at = int(round(float(line["start"]) * fps)) - start
                if 0 <= at < len(target):
                    target[at:] = (float(line.get("pan", 0.0)) + 1.0) / 2.0  # hold until someone else speaks
        width = max(1, int(round(REFRAME_SMOOTH_S * fps)))
        smooth = _moving_average(_moving_average(target, width), width)
        centre[begin:end] = smooth[begin - start:]
    return np.clip(centre, 0.0, 1.0)


def write_commands(fit: Fit, centres: np.ndarray, fps: float, path: Path) -> Path:
    """A sendcmd script setting the crop's x at each frame where it changes."""
    lines, last = [], None
    for index, centre in enumerate(centres):
        x = fit.crop_x(float(centre))
        if x != last:
            # Half a frame early, so rounding the time can never push it past its frame.
            lines.append(f"{max(0.0, (index - 0.5) / fps):.6f} crop x {x};")
            last = x
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
