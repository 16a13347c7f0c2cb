"""Turn what a workflow produced into the files an action promises, with fixed encoder settings.

    still image                    → keyframe.png (re-encoded: no server metadata chunks)
    frames (PNG stills, in order)  → clip.mp4 via encode_frames (+ matte.mp4 from an alpha channel)
    one animated WebP / GIF        → decoded with Pillow, encoded the same way
    a video file (mp4, webm, …)    → transcoded to H.264, video only
    audio                          → speechfiles.py

Frames are streamed, never all held in memory; odd sizes are cropped to even ones
(H.264 with 4:2:0 chroma needs even sizes).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Iterator

from storybuild.backends.comfyui.jobrunner import Fetched
from storybuild.backends.shared.ffmpeg import BITEXACT, X264, encode_frames, run_ffmpeg
from storybuild.errors import BackendError

DEFAULT_FPS = 24.0


def write_keyframe(fetched: Fetched, out: Path, what: str) -> Path:
    """The first still image as a metadata-free RGB PNG."""
    from PIL import Image

    images = fetched.of_kind("image")
    if not images:
        raise BackendError(f"{what}: expected an image, the workflow produced {_describe(fetched)}")
    with Image.open(images[0]) as image:
        image.convert("RGB").save(out, "PNG", optimize=False)
    return out


def _frames(paths: Iterable[Path]) -> Iterator["object"]:
    """Every frame of the given images (an animated image yields each of its frames)."""
    from PIL import Image, ImageSequence

    for path in paths:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                yield frame.convert("RGBA")


def _animated_fps(path: Path) -> float | None:
    from PIL import Image

    with Image.open(path) as image:
        duration = image.info.get("duration")
        return 1000.0 / float(duration) if duration else None


def _encode(frames: Iterator, out: Path, fps: float, cancel: threading.Event | None, alpha: bool = False) -> int:
    """Encode frames (their colour, or with `alpha` their alpha channel as grey) to H.264."""
    first = next(frames, None)
    if first is None:
        raise BackendError("the workflow produced no frames")
    width, height = first.size[0] // 2 * 2, first.size[1] // 2 * 2
    if width == 0 or height == 0:
        raise BackendError(f"frames of {first.size[0]}x{first.size[1]} are too small for a video")

    def raw() -> Iterator[bytes]:
        for frame in _chain(first, frames):
            if frame.size != first.size:
                raise BackendError(f"frame sizes differ ({frame.size} after {first.size}); cannot make a clip")
            frame = frame.crop((0, 0, width, height))
            yield (frame.getchannel("A").convert("RGB") if alpha else frame.convert("RGB")).tobytes()

    return encode_frames(raw(), out, fps, width, height, cancel)


def _chain(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def _has_alpha(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        return "A" in image.getbands() or "transparency" in image.info


def write_clip(fetched: Fetched, out: Path, fps: float | None, what: str, *,
               cancel: threading.Event | None = None, matte: Path | None = None) -> dict[str, Path]:
    """clip.mp4 (and matte.mp4 when asked and the frames carry alpha) from a workflow's outputs."""
    videos = fetched.of_kind("video")
    images = fetched.of_kind("image")
    written: dict[str, Path] = {}
    if videos:
        run_ffmpeg(["-i", str(videos[0]), "-map", "0:v:0", "-an", *X264, *BITEXACT, str(out)], cancel,
                   what=f"{what}: converting the server's video")
        written[out.name] = out
    elif images:
        rate = fps or (_animated_fps(images[0]) if len(images) == 1 else None) or DEFAULT_FPS
        _encode(_frames(images), out, rate, cancel)
        written[out.name] = out
        if matte is not None and _has_alpha(images[0]):
            _encode(_frames(images), matte, rate, cancel, alpha=True)  # a second pass: frames stay streamed
            written[matte.name] = matte
    else:
        raise BackendError(f"{what}: expected a video or frames, the workflow produced {_describe(fetched)}")
    return written


def _describe(fetched: Fetched) -> str:
    kinds = sorted({kind for _, kind, _ in fetched.files})
    if not kinds:
        return "text only" if fetched.texts else "nothing"
    return ", ".join(f"{len(fetched.of_kind(k))} {k} file(s)" for k in kinds)
