"""shot/<shot>: a shot's picture → shot.mp4 (exactly `frames` frames), thumb.png; and
layout/<shot>: its timing and speakers' places → shot.json, worked out without drawing.

    params + line timings/visemes ──► ShotSpec (timing from storybuild.backends.embedded.shottiming)
        │   render3d │ card │ title │ still/keyframe (Ken Burns) │ clip/file (conformed)
        ▼
    frames painted in worker processes (chunks, in order) ──► ffmpeg.encode_frames

Generative sources without a generated input (no backend set up to make it) fall back to the 3D animatic
of the shot. Frame i depends only on the spec and i, so the video is the same bytes for
any number of jobs.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded.painters import (
    CARD, CLIP, KEN_BURNS, RENDER3D, TITLE, LineTrack, ShotSpec, painter_for,
)
from storybuild.errors import BackendError
from storybuild.hashing import plain
from storybuild.model import GENERATIVE_CAPABILITY

MIN_PARALLEL_FRAMES = 24  # below this, starting worker processes costs more than it saves
CHUNK_FRAMES = 8



def picture_kind(source: str, inputs: Mapping[str, Any]) -> str:
    """How a shot's `source` is pictured given its inputs (generative without inputs → 3D)."""
    if source == "render3d":
        return RENDER3D
    if source == "card":
        return CARD
    if source == "title":
        return TITLE
    if source == "still":
        if "image" not in inputs:
            raise BackendError("a still shot needs an image", hint="set picture.image to an image asset")
        return KEN_BURNS
    if source == "file":
        if "clip" not in inputs:
            raise BackendError("a file shot needs a video", hint="set picture.image to a video asset")
        return CLIP
    if source in GENERATIVE_CAPABILITY:
        if source != "keyframe" and "clip" in inputs:
            return CLIP
        return KEN_BURNS if "image" in inputs else RENDER3D
    raise BackendError(f"unknown picture source {source!r}",
                       hint="use render3d, card, still, title, keyframe, image_to_video, text_to_video or file")


def _input(inputs: Mapping[str, Path], name: str | None, what: str) -> Path:
    path = inputs.get(name) if name else None
    if path is None:
        raise BackendError(f"{what}: the shot has no input {name!r}")
    return Path(path)


def _line_duration(path: Path) -> float:
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["duration"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"cannot read the duration of speech timings {path.name}: {exc}") from exc


def build_spec(params: Mapping[str, Any], inputs: Mapping[str, Path], cache: Path | None = None,
               with_cues: bool = True) -> ShotSpec:
    """The shot's timing, lines (with mouth cues unless `with_cues` is off) and picture kind."""
    from storybuild.backends.embedded.shottiming import shot_timing
    from storybuild.backends.embedded.visemes import load_cues

    fps = float(params["fps"])
    if fps <= 0 or int(params["width"]) < 2 or int(params["height"]) < 2:
        raise BackendError(f"a shot needs fps > 0 and a size of at least 2×2, got {fps} fps "
                           f"{params['width']}×{params['height']}")
    raw_lines = list(params.get("lines") or [])
    durations, offsets, cues = [], [], []
    for line in raw_lines:
        durations.append(_line_duration(_input(inputs, line.get("timings"), f"line {line.get('index')}")))
        offsets.append(float(line.get("offset") or 0.0))
        if line.get("visemes") and with_cues:
            path = _input(inputs, line["visemes"], f"line {line.get('index')}")
            try:
                cues.append(tuple((c.start, c.end, c.value) for c in load_cues(path)))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise BackendError(f"cannot read mouth cues {path.name}: {exc}") from exc
        else:
            cues.append(())  # lip-sync off (or done by the generating backend): mouths rest
    duration = params.get("duration")
    try:
        timing = shot_timing(durations, offsets, None if duration is None else float(duration),
                             float(params.get("padding") or 0.0))
    except ValueError as exc:
        raise BackendError(f"shot timing: {exc}") from exc
    frames = max(1, int(round(timing.duration * fps)))
    tracks = tuple(LineTrack(int(line.get("index", i)), str(line.get("character") or ""), str(line.get("text") or ""),
                             span.start, span.end, cues[i])
                   for i, (line, span) in enumerate(zip(raw_lines, timing.lines)))
    # plain dicts/lists: picklable, no mapping proxies
    return ShotSpec(plain(params), {k: str(v) for k, v in inputs.items()},
                    picture_kind(str(params.get("source") or "render3d"), inputs),
                    frames / fps, frames, fps, tracks, None if cache is None else str(cache))


def _painted(spec: ShotSpec, ctx: ActionContext) -> Iterator[bytes]:
    """Frames in order, painted here (one job, or a short shot) or by the shared frame pool.

    Workers that die or get stuck cost seconds, not the build: the frames still owed are
    asked of a fresh pool, and if that fails too, painted here (the same bytes, slower).
    """
    jobs = max(1, int(ctx.jobs or 1))
    done = 0
    if jobs > 1 and spec.frames >= MIN_PARALLEL_FRAMES:
        from storybuild.backends.embedded.framepool import WorkersLost

        for attempt in (1, 2):
            try:
                for frame in _pooled(spec, ctx, jobs, done):
                    done += 1
                    yield frame
                return
            except WorkersLost as lost:
                then = "asking fresh workers" if attempt == 1 else "painting the rest in one process"
                ctx.log(f"{ctx.action_id}: {lost}; {then}")
    painter = painter_for(spec)
    for i in range(done, spec.frames):
        ctx.check_cancelled()
        yield painter.frame(i).tobytes()


def _pooled(spec: ShotSpec, ctx: ActionContext, jobs: int, first: int) -> Iterator[bytes]:
    """Frames first.. painted by the shared pool in chunks; WorkersLost if its workers die or stall."""
    import uuid
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    from storybuild.backends.embedded import framepool
    from storybuild.backends.shared.liveness import StallWatch

    key = uuid.uuid4().hex  # this run of this shot: workers cache its painter under it
    pending: deque = deque()
    watch = StallWatch(framepool.STALL_S)
    try:
        chunks = deque((s, min(s + CHUNK_FRAMES, spec.frames)) for s in range(first, spec.frames, CHUNK_FRAMES))
        ahead = 2 * framepool.workers(jobs)  # bounded read-ahead keeps memory flat and leaves room for other shots
        while chunks or pending:
            while chunks and len(pending) < ahead:
                pending.append(framepool.submit(key, spec, *chunks.popleft(), jobs))
            frames = _awaited(pending[0], ctx, watch, framepool)
            pending.popleft()
            watch.progressed()
            for frame in frames:
                ctx.check_cancelled()
                yield frame
    except BrokenProcessPool:
        # A worker died (or could not start: a host script without a __main__ guard).
        framepool.discard()
        raise framepool.WorkersLost("a frame worker died") from None
    except CancelledError:
        # Another shot found the shared pool broken or stuck and replaced it, cancelling
        # what was queued on it (ours included): ask the new one.
        raise framepool.WorkersLost("the frame pool was restarted") from None
    finally:
        for future in pending:
            future.cancel()


def _awaited(future, ctx: ActionContext, watch, framepool) -> list[bytes]:
    """The chunk's frames; the pool is killed (→ WorkersLost) when its workers use no CPU for STALL_S."""
    while True:
        try:
            return future.result(timeout=0.25)
        except TimeoutError:
            ctx.check_cancelled()
            if watch.stalled(framepool.pids()):
                framepool.discard(kill=True)
                raise framepool.WorkersLost(f"the frame workers used no CPU for {framepool.STALL_S:.0f} s") from None


def _conformed(spec: ShotSpec, ctx: ActionContext) -> Iterator[bytes]:
    from storybuild.backends.embedded.conform import conformed_frames

    p = spec.params
    overlay = painter_for(spec)
    frames = conformed_frames(Path(spec.inputs["clip"]), spec.fps, int(p["width"]), int(p["height"]),
                              spec.frames, ctx.cancel_event)
    for i, frame in enumerate(frames):
        yield overlay.finish(i, frame).tobytes()


def pans(spec: ShotSpec) -> list[float]:
    """Each line's speaker position on screen at the line's midpoint, -1..1."""
    if not spec.lines:
        return []
    # Cards know where they drew each character; everything else is staged in 3D.
    overlay = painter_for(spec) if spec.picture == CARD else painter_for(_as_clip(spec))
    out = []
    for line in spec.lines:
        mid = min((line.start + line.end) / 2.0, spec.duration)
        out.append(round(float(np.clip(overlay.pan(line.character, mid), -1.0, 1.0)), 4))
    return out


def _as_clip(spec: ShotSpec) -> ShotSpec:
    """The same shot seen as a bare overlay (no picture to build), for staging questions."""
    return ShotSpec(spec.params, spec.inputs, CLIP, spec.duration, spec.frames, spec.fps, spec.lines, spec.cache)


def shot_json(spec: ShotSpec) -> dict[str, Any]:
    """The shot.json document (docs/pipeline.md)."""
    p = spec.params
    return {
        "duration": round(spec.duration, 6), "fps": spec.fps if not float(spec.fps).is_integer() else int(spec.fps),
        "frames": spec.frames, "width": int(p["width"]), "height": int(p["height"]), "source": spec.picture,
        "lines": [{"index": line.index, "character": line.character, "text": line.text,
                   "start": round(line.start, 6), "end": round(line.end, 6), "pan": pan}
                  for line, pan in zip(spec.lines, pans(spec))],
    }


def run_layout(ctx: ActionContext) -> dict[str, Path]:
    """Work out the shot's timing and where its speakers stand → shot.json (no frames drawn)."""
    inputs: dict[str, Path] = {name: Path(path) for name, path in ctx.inputs.items()}
    for name in ctx.params.get("generated") or []:
        # Made by other actions (a generative backend): only their presence decides the picture kind.
        inputs.setdefault(name, Path(os.devnull))
    spec = build_spec(ctx.params, inputs, with_cues=False)
    info_path = ctx.output("shot.json")
    info_path.write_text(json.dumps(shot_json(spec), sort_keys=True, indent=1, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    return {"shot.json": info_path}


def run_shot(ctx: ActionContext) -> dict[str, Path]:
    """Render the shot's picture into shot.mp4 and thumb.png (its layout is layout/<shot>'s)."""
    from PIL import Image

    from storybuild.backends.shared.ffmpeg import encode_frames

    spec = build_spec(ctx.params, ctx.inputs, ctx.cache_dir)
    width, height = int(spec.params["width"]), int(spec.params["height"])
    ctx.progress(0.0, f"{spec.frames} frames ({spec.picture})")
    source = _conformed(spec, ctx) if spec.picture == CLIP else _painted(spec, ctx)
    middle = spec.frames // 2
    thumb: list[bytes] = []
    step = max(1, spec.frames // 20)

    def stream() -> Iterator[bytes]:
        for i, frame in enumerate(source):
            if i == middle:
                thumb.append(frame)
            if i % step == 0:
                ctx.progress(i / spec.frames, f"frame {i}/{spec.frames}")
            yield frame

    video = ctx.output("shot.mp4")
    count = encode_frames(stream(), video, spec.fps, width, height, ctx.cancel_event)
    ctx.check_cancelled()
    if count != spec.frames or not thumb:
        raise BackendError(f"{ctx.action_id}: rendered {count} frames, expected {spec.frames}")
    thumb_path = ctx.output("thumb.png")
    Image.frombytes("RGB", (width, height), thumb[0]).save(thumb_path, optimize=False)
    ctx.progress(1.0, f"{spec.frames} frames")
    return {"shot.mp4": video, "thumb.png": thumb_path}

