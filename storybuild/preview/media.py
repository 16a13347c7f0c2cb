"""Reading build/ for the page: which copy of an output is current, waveforms, subtitles.

Under `watch --preview` the same output exists twice: build/<path> (full quality) and
build/preview/<path>. The page shows whichever was written last, so a quick preview of an
edit replaces a stale full-quality film at once, and the full one takes over when it lands.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

WAVE_POINTS = 240  # columns in a waveform: enough for a scene strip, small in JSON
WAVE_HEIGHT = 40

_wave_cache: dict[tuple[str, int, int], dict] = {}
_wave_lock = threading.Lock()


def stamp(path: Path) -> str | None:
    """A short version tag of a file (mtime and size), or None when it does not exist."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def current(build_dir: Path, rel: str) -> str | None:
    """`rel` or `preview/rel` under build_dir, whichever was written last; None if neither."""
    best: tuple[int, str] | None = None
    for candidate in (rel, f"preview/{rel}"):
        try:
            mtime = (build_dir / candidate).stat().st_mtime_ns
        except OSError:
            continue
        if best is None or mtime > best[0]:
            best = (mtime, candidate)
    return best[1] if best else None


def waveform(path: Path, points: int = WAVE_POINTS, height: int = WAVE_HEIGHT) -> dict | None:
    """An SVG path of a sound file's peaks, {"width", "height", "path", "duration"}; cached.

    Computed in blocks so a long scene never sits in memory whole; None if unreadable.
    """
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _wave_lock:
        if key in _wave_cache:
            return _wave_cache[key]
    try:
        result = _compute_waveform(path, points, height)
    except (OSError, RuntimeError, ValueError):
        return None  # a half-written or foreign file: no waveform rather than a broken page
    with _wave_lock:
        # One entry per path: an old version of the file is never asked for again.
        for stale in [k for k in _wave_cache if k[0] == key[0]]:
            del _wave_cache[stale]
        _wave_cache[key] = result
    return result


def _compute_waveform(path: Path, points: int, height: int) -> dict:
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        frames, rate = f.frames, f.samplerate
        per = max(1, -(-frames // points))  # frames per column, rounded up
        lo = np.zeros(points, dtype=np.float32)
        hi = np.zeros(points, dtype=np.float32)
        column = 0
        # Blocks are a whole number of columns, so only the last one can end mid-column.
        for block in f.blocks(blocksize=per * 64, dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            count = -(-len(mono) // per)
            if count * per > len(mono):  # pad with the edge value: min/max stay the same
                mono = np.concatenate([mono, np.full(count * per - len(mono), mono[-1], np.float32)])
            cols = mono.reshape(count, per)
            stop = min(points, column + count)
            lo[column:stop] = cols[: stop - column].min(axis=1)
            hi[column:stop] = cols[: stop - column].max(axis=1)
            column = stop
    peak = float(max(np.abs(lo).max(initial=0.0), np.abs(hi).max(initial=0.0))) or 1.0
    mid = height / 2.0
    scale = (height / 2.0 - 1.0) / peak  # normalised, so quiet scenes are still legible
    top = [f"{x},{mid - max(0.5, float(v) * scale):.1f}" for x, v in enumerate(hi)]
    bottom = [f"{x},{mid - min(-0.5, float(v) * scale):.1f}" for x, v in reversed(list(enumerate(lo)))]
    return {
        "width": points, "height": height,
        "path": "M" + " L".join(top + bottom) + " Z",
        "duration": frames / rate if rate else 0.0,
    }


def load_cut(path: Path) -> dict | None:
    """film.json (the cut, with lines and their times), or None if absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            cut = json.load(f)
    except (OSError, ValueError):
        return None
    return cut if isinstance(cut, dict) else None


def _vtt_time(seconds: float) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "→")


def webvtt(cut: dict, names: dict[str, str] | None = None) -> str:
    """WebVTT subtitles for the cut's lines, each voiced by its character's name."""
    names = names or {}
    out = ["WEBVTT", ""]
    for index, line in enumerate(cut.get("lines") or [], 1):
        try:
            start, end = float(line["start"]), float(line["end"])
        except (KeyError, TypeError, ValueError):
            continue
        who = str(line.get("character", ""))
        speaker = _vtt_escape(names.get(who, who))
        text = _vtt_escape(" ".join(str(line.get("text", "")).split()))
        out += [str(index), f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.001))}",
                f"<v {speaker}>{text}" if speaker else text, ""]
    return "\n".join(out)

