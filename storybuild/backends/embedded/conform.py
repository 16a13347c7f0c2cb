"""Conform a video to a shot: its frame rate, its size (cover + centre crop), its length.

ffmpeg decodes and scales; the frames come back as RGB so captions can be burned in and
the shot encodes through the same path as rendered pictures. A clip shorter than the
shot holds its last frame; a longer one is cut.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from storybuild.backends.shared.ffmpeg import ffmpeg_exe
from storybuild.errors import BackendError, Cancelled


def conformed_frames(path: Path, fps: float, width: int, height: int, frames: int,
                     cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
    """Exactly `frames` RGB frames (H, W, 3) of the video at `path`, conformed to the shot."""
    vf = (f"fps={fps},scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
          f"crop={width}:{height},setsar=1")
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
           "-an", "-vf", vf, "-frames:v", str(frames), "-threads", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    size = width * height * 3
    last: np.ndarray | None = None
    count = 0
    try:
        while count < frames:
            if cancel is not None and cancel.is_set():
                raise Cancelled("conforming a clip: cancelled")
            data = _read_exact(proc.stdout, size)
            if data is None:
                break
            last = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()
            count += 1
            yield last
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if last is None:
        detail = err.splitlines()[-1] if err else "no video frames"
        raise BackendError(f"cannot use video {path.name} as a shot picture: {detail}")
    for _ in range(frames - count):  # hold the last frame to the end of the shot
        yield last


def _read_exact(stream, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
