"""What an MP4's video track holds, read from its boxes without decoding anything.

Joining H.264 files by stream copy needs three facts ffmpeg's stream summary does not
give: the codec configuration (avcC: SPS and PPS, which must be identical across the
files), which samples are keyframes (stss), and how many samples there are (stsz).
Only the `moov` box is read; the media data is skipped with a seek.

    moov ─ trak ─ mdia ─┬─ hdlr            ("vide" for the video track)
                        └─ minf ─ stbl ─┬─ stsd ─ avc1 ─ avcC
                                        ├─ stss   (sync samples; absent: all are)
                                        └─ stsz   (sample count)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class VideoTrack:
    """The first video track's codec configuration, sync samples and sample count."""

    avc_config: bytes | None  # the whole avcC box, header included; None if not H.264
    keyframes: tuple[int, ...] | None  # 0-based sample numbers (decode order); None: every sample
    samples: int


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        header = 8
        if size == 1:
            if at + 16 > end:
                return
            size, header = struct.unpack(">Q", data[at + 8:at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return  # a damaged box: stop rather than read garbage
        yield kind, at + header, at + size
        at += size


def _find(data: bytes, path: tuple[bytes, ...], start: int, end: int) -> tuple[int, int] | None:
    """(payload start, end) of the first box along `path` below data[start:end]."""
    for kind, first, last in _children(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return first, last
            found = _find(data, path[1:], first, last)
            if found is not None:
                return found
    return None


def _moov(path: Path) -> bytes | None:
    """The payload of the file's top-level moov box, skipping everything else by seeking."""
    try:
        with open(path, "rb") as f:
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                size, kind = struct.unpack(">I4s", header)
                header_size = 8
                if size == 1:
                    size, header_size = struct.unpack(">Q", f.read(8))[0], 16
                if kind == b"moov":
                    return f.read(size - header_size) if size else f.read()
                if size == 0 or size < header_size:
                    return None
                f.seek(size - header_size, 1)
    except OSError:
        return None


def video_track(path: Path) -> VideoTrack | None:
    """The first video track of an MP4, or None when there is none (or the file is no MP4)."""
    moov = _moov(Path(path))
    if moov is None:
        return None
    for kind, first, last in _children(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        hdlr = _find(moov, (b"mdia", b"hdlr"), first, last)
        if hdlr is None or moov[hdlr[0] + 8:hdlr[0] + 12] != b"vide":  # version+flags, pre_defined, handler
            continue
        stbl = _find(moov, (b"mdia", b"minf", b"stbl"), first, last)
        if stbl is None:
            return None
        return VideoTrack(_avc_config(moov, *stbl), _sync_samples(moov, *stbl), _sample_count(moov, *stbl))
    return None


def _avc_config(moov: bytes, start: int, end: int) -> bytes | None:
    stsd = _find(moov, (b"stsd",), start, end)
    if stsd is None:
        return None
    # stsd: version+flags (4), entry count (4), then sample entries; avc1's own fields take
    # 78 bytes before its child boxes (ISO 14496-12 VisualSampleEntry).
    for kind, first, last in _children(moov, stsd[0] + 8, stsd[1]):
        if kind == b"avc1":
            avcc = _find(moov, (b"avcC",), first + 78, last)
            if avcc is not None:
                return moov[avcc[0] - 8:avcc[1]]
    return None


def _sync_samples(moov: bytes, start: int, end: int) -> tuple[int, ...] | None:
    stss = _find(moov, (b"stss",), start, end)
    if stss is None:
        return None
    count = struct.unpack(">I", moov[stss[0] + 4:stss[0] + 8])[0]
    numbers = struct.unpack(f">{count}I", moov[stss[0] + 8:stss[0] + 8 + 4 * count])
    return tuple(n - 1 for n in numbers)  # stss counts from 1


def _sample_count(moov: bytes, start: int, end: int) -> int:
    stsz = _find(moov, (b"stsz",), start, end)
    if stsz is None:
        return 0
    return struct.unpack(">I", moov[stsz[0] + 8:stsz[0] + 12])[0]  # after version+flags and sample_size
