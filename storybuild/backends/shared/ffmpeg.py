"""ffmpeg from the imageio-ffmpeg wheel: run it, pipe frames into it, read what a file holds.

There is no ffprobe in the wheel, so `probe` reads `ffmpeg -i`'s stream summary.
Every encode uses fixed settings (bit-exact flags, no metadata, fixed thread count) so
that the same frames give the same bytes.
"""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from storybuild.errors import BackendError, Cancelled

# Flags that keep outputs byte-identical across runs: no encoder/creation-time metadata and
# a FIXED thread count (x264's output depends on its thread count, not on the machine's
# cores, so two threads everywhere gives the same bytes everywhere, ~1.6x faster than one).
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]
# scenecut=0: keyframes exactly every `keyint(fps)` frames from the start of each encode,
# so where a shot's keyframes sit follows from its frame count alone; the film relies on
# that to stream-copy scenes between keyframes (filmvideo). With scene-cut detection x264
# adds IDR frames at picture changes and counts on from there, and even put its regular
# ones a frame early (every 23 frames at 24 fps). Its IDR frames close their GOPs (no
# open-gop), so every keyframe is a clean cut point.
# sync-lookahead=0: x264's lookahead (frame types, MB-tree) runs in the encoding thread,
# not in a thread of its own (the default once threads > 1). In its own thread the MB-tree
# pass for each keyframe races the frame threads already encoding the frames just before
# it: frame types stay put, but a block's quantiser there depends on which thread wins, and
# the difference runs on to the keyframe (export/vertical: 5 digests in 6 builds; a raw
# 360x640 encode: 1 run in 3). Frame threads stay at two; the CPU time is the same.
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "2",
        "-x264-params", "threads=2:sliced-threads=0:sync-lookahead=0:scenecut=0"]
FILTER_THREADS = ["-filter_threads", "1", "-filter_complex_threads", "1"]
# The "fast" coder: 2.4x quicker than the default twoloop on a film-length master, as
# deterministic, and at 192 kb/s no audible difference for dialogue, music and effects.
AAC = ["-c:a", "aac", "-b:a", "192k", "-aac_coder", "fast"]


def keyint(fps: float) -> int:
    """Frames between keyframes of every H.264 encode: one second's worth."""
    return max(1, int(round(fps)))


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: Sequence[str], cancel: threading.Event | None = None, what: str = "ffmpeg") -> None:
    """Run ffmpeg with `args` (no shell); raise BackendError with its last lines on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        try:
            _, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                proc.kill()
                proc.wait()
                raise Cancelled(f"{what}: cancelled")
    if proc.returncode != 0:
        tail = "\n".join(err.decode("utf-8", "replace").strip().splitlines()[-5:])
        raise BackendError(f"{what} failed (ffmpeg exit {proc.returncode}): {tail}")


def encode_frames(frames: Iterable[bytes], out: Path, fps: float, width: int, height: int,
                  cancel: threading.Event | None = None) -> int:
    """Encode raw RGB24 frames (bytes of width*height*3) into an H.264 MP4; return the frame count."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "-",
           "-an", *X264, "-g", str(keyint(fps)), *BITEXACT, str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    count = 0
    try:
        for frame in frames:
            if cancel is not None and cancel.is_set():
                raise Cancelled("encoding cancelled")
            proc.stdin.write(frame)
            count += 1
        proc.stdin.close()
        err = proc.stderr.read()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise BackendError(f"ffmpeg could not encode {out.name}: {err.decode('utf-8', 'replace').strip()[-500:]}")
    return count


@dataclass(frozen=True)
class MediaInfo:
    """What `ffmpeg -i` says about a file."""

    duration: float | None
    video: str | None  # codec name
    audio: str | None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: str | None = None


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
# The fps group ends in "|$" (multiline): a bare optional group after a lazy run never matched.
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+)[^\n]*?, (\d{2,5})x(\d{2,5})[^\n]*?(?:, ([\d.]+) fps|$)",
                    re.MULTILINE)
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)[^\n]*?, (\d+) Hz, ([\w.]+)")


def probe(path: Path) -> MediaInfo:
    """Streams and duration of a media file, read from `ffmpeg -i` (no ffprobe here)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    text = proc.stderr.decode("utf-8", "replace")
    if "Invalid data found" in text or "No such file" in text:
        raise BackendError(f"ffmpeg cannot read {path}: {text.strip().splitlines()[-1]}")
    duration = None
    if m := _DURATION.search(text):
        duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    video = audio = None
    width = height = None
    fps = None
    rate = None
    channels = None
    if m := _VIDEO.search(text):
        video, width, height = m[1], int(m[2]), int(m[3])
        fps = float(m[4]) if m[4] else None
    if m := _AUDIO.search(text):
        audio, rate, channels = m[1], int(m[2]), m[3]
    return MediaInfo(duration, video, audio, width, height, fps, rate, channels)


def count_frames(path: Path) -> int:
    """Decode a video and count its frames (exact; slower than probe)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
                           "-f", "null", "-"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    found = re.findall(r"frame=\s*(\d+)", proc.stderr.decode("utf-8", "replace"))
    if proc.returncode != 0 or not found:
        raise BackendError(f"ffmpeg cannot decode {path}")
    return int(found[-1])
