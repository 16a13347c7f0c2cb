"""The film's pictures: scenes joined through their transitions, re-encoding only where they blend.

New pictures are needed only where two scenes overlap (and where the last one fades to
black). Every scene is H.264 whose keyframes sit at each shot's first frame and every
`ffmpeg.keyint(fps)` frames within it (ffmpeg.X264: no scene-cut keyframes), and each
keyframe closes its GOP, so a scene can be cut at a keyframe by stream copy. The film is
then a row of segments, each a stretch of one scene copied as it is, or a window that is
decoded, blended and encoded again:

    scene a  |=====copy=====:~~~~~~~~~~~|
    scene b                      |~~~~~~~~~~~~:=====copy=====|
    film     |=====copy=====|~~~~~window~~~~~~|=====copy=====|
                            ^ a's last keyframe at or before the overlap
                                              ^ b's first keyframe at or after it

The window encode uses the shots' encoder settings, so every segment shares one H.264
configuration and the concat demuxer joins them by stream copy. Anything that breaks the
premise (a scene encoded another way, keyframes not where the shots put them, a window
whose configuration differs) falls back to decoding and encoding the whole film.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from storybuild.backends.embedded import mp4box

from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.cut import FilmCut
from storybuild.errors import BackendError

# Fade through black is built from fade filters (out to black over the first half, in
# from black over the second) dissolved together: xfade's own "fadeblack" never quite
# reaches black at its midpoint, and the sound dips to silence there.
XFADE = {"crossfade": "fade", "fade": "fade", "wipe": "wipeleft"}


def conform(index: int, fps: float, width: int, height: int) -> str:
    """Filter turning input `index` into the project's frame rate, size and pixel format."""
    return (f"[{index}:v]fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p")


def video_args(fps: float, frames: int) -> list[str]:
    """Encode exactly `frames` frames at `fps` with the shots' encoder settings."""
    return [*ffmpeg.X264, "-g", str(ffmpeg.keyint(fps)), "-r", f"{fps}", "-frames:v", str(frames)]


def audio_args(index: int, samples: int) -> list[str]:
    """Map input `index`'s audio, padded or trimmed to exactly `samples`, encoded as AAC."""
    return ["-map", f"{index}:a:0", "-af", f"apad=whole_len={samples},atrim=end_sample={samples}", *ffmpeg.AAC]


def master_args(index: int) -> list[str]:
    """The film's sound from input `index`: the sound action's AAC master, copied as it is."""
    return ["-map", f"{index}:a:0", "-c:a", "copy"]


def concat_list(paths: Sequence[Path], where: Path) -> Path:
    """An ffconcat file listing `paths` (quotes escaped the way the demuxer reads them)."""
    lines = ["ffconcat version 1.0"]
    for path in paths:
        lines.append("file '" + str(Path(path).resolve()).replace("'", "'\\''") + "'")
    where.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return where


def copyable(paths: Sequence[Path], fps: float, width: int, height: int) -> bool:
    """True when the files can be joined by stream copy into a conforming H.264 stream."""
    configs = set()
    for path in paths:
        info = ffmpeg.probe(path)
        # ffmpeg prints rates to two decimals (23.976 as "23.98"): compare at that precision.
        if (info.video != "h264" or (info.width, info.height) != (width, height)
                or info.fps is None or abs(info.fps - fps) > 0.0051):
            return False
        track = mp4box.video_track(path)
        configs.add(track.avc_config if track else None)
    return len(configs) == 1 and None not in configs


def frames_of(path: Path, fps: float) -> int:
    """A video's length in frames at `fps`, from its duration (no decoding)."""
    info = ffmpeg.probe(path)
    if info.video is None or info.duration is None:
        raise BackendError(f"{path.name}: no video stream")
    return int(round(info.duration * fps))


@dataclass(frozen=True)
class Piece:
    """Frames [first, last) of scene `scene` (an index into the cut's scenes)."""

    scene: int
    first: int
    last: int


@dataclass(frozen=True)
class Segment:
    """Film frames [start, end): one piece stream-copied, or (`blend`) pieces blended and encoded."""

    start: int
    end: int
    pieces: tuple[Piece, ...]
    blend: bool


def shot_keyframes(shot_frames: Sequence[int], keyint: int) -> tuple[int, ...]:
    """Where a scene of shots (their frame counts, in order) has keyframes: each shot's
    first frame and every `keyint` frames after it within the shot."""
    keys, at = [], 0
    for frames in shot_frames:
        keys.extend(range(at, at + frames, keyint))
        at += frames
    return tuple(keys)


def plan_segments(cut: FilmCut, keyframes: Sequence[Sequence[int]]) -> list[Segment]:
    """Split the film into copied stretches and blended windows; `keyframes[i]`: scene i's keyframes.

    Each window starts on a keyframe of the scene it starts in and ends on a keyframe (or
    the end) of the scene it ends in, so every piece of a scene starts on a keyframe; the
    pieces of each scene cover it exactly once. Windows that overlap (a scene too short
    for a keyframe between its two transitions) merge into one.
    """
    def at_or_before(i: int, frame: int) -> int:
        return max(k for k in keyframes[i] if k <= frame)  # frame 0 is always a keyframe

    def at_or_after(i: int, frame: int) -> int:
        return min((k for k in keyframes[i] if k >= frame), default=cut.scenes[i].frames)

    windows: list[list[int]] = []
    for i, span in enumerate(cut.scenes):
        if span.overlap:
            following = cut.scenes[i + 1]
            wanted = [span.start + at_or_before(i, span.frames - span.overlap),
                      following.start + at_or_after(i + 1, span.overlap)]
        elif span.fade_out:
            wanted = [span.start + at_or_before(i, span.frames - span.fade_out), span.end]
        else:
            continue
        if windows and wanted[0] < windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], wanted[1])
        else:
            windows.append(wanted)

    segments: list[Segment] = []
    at = 0
    for first, end in [*windows, [cut.frames, cut.frames]]:
        while at < first:  # between windows every frame belongs to exactly one scene
            i = max(k for k, span in enumerate(cut.scenes) if span.start <= at)
            span = cut.scenes[i]
            stop = min(first, span.end)
            segments.append(Segment(at, stop, (Piece(i, at - span.start, stop - span.start),), blend=False))
            at = stop
        if end > first:
            pieces = tuple(Piece(i, max(first, span.start) - span.start, min(end, span.end) - span.start)
                           for i, span in enumerate(cut.scenes) if span.start < end and span.end > first)
            segments.append(Segment(first, end, pieces, blend=True))
            at = end
    return segments


def film_graph(cut: FilmCut, pieces: Sequence[Piece], start: int, sources: Sequence[str]) -> str:
    """filter_complex joining `pieces` (of consecutive scenes) through their transitions into [v].

    `start` is the film frame of the first piece's first frame; `sources[k]` is the chain
    giving piece k's frames (input pads and conforming). Frame numbers in the fades count
    from each piece's first frame, so a window gets exactly the frames the whole film would.
    """
    parts = []
    for k, piece in enumerate(pieces):
        span = cut.scenes[piece.scene]
        chain = sources[k]
        overlap_in = cut.overlap_before(piece.scene)
        if cut.transition_before(piece.scene) == "fade" and piece.first < overlap_in:
            # A piece that reaches into the incoming fade starts at the scene's first frame:
            # the window holding that transition holds the scene's head from frame 0.
            half = min(overlap_in - 1, overlap_in // 2)
            chain += f",fade=t=in:start_frame={half - piece.first}:nb_frames={overlap_in - half}"
        if span.transition == "fade" and span.overlap and piece.last > span.frames - span.overlap:
            chain += (f",fade=t=out:start_frame={span.frames - span.overlap - piece.first}"
                      f":nb_frames={max(1, span.overlap // 2)}")
        parts.append(f"{chain}[s{k}]")
    current = "[s0]"
    for k in range(1, len(pieces)):
        scene = pieces[k].scene
        kind = cut.transition_before(scene)
        label = f"[j{k}]"
        if kind == "cut":
            parts.append(f"{current}[s{k}]concat=n=2:v=1:a=0{label}")
        else:
            duration = cut.overlap_before(scene) / cut.fps
            offset = (cut.scenes[scene].start - start) / cut.fps
            parts.append(f"{current}[s{k}]xfade=transition={XFADE[kind]}:duration={duration:.6f}:offset={offset:.6f}"
                         f"{label}")
        current = label
    last = cut.scenes[-1]
    if last.fade_out and pieces[-1].scene == len(cut.scenes) - 1 and pieces[-1].last == last.frames:
        parts.append(f"{current}fade=t=out:start_frame={cut.frames - last.fade_out - start}"
                     f":nb_frames={last.fade_out}[fo]")
        current = "[fo]"
    parts.append(f"{current}null[v]")
    return ";".join(parts)


@dataclass(frozen=True)
class FilmJob:
    """What writing the film's pictures needs: the cut, the scene files, the sound to mux."""

    cut: FilmCut
    scenes: Sequence[Path]
    master: Path  # the sound action's master.m4a, already the film's length
    width: int
    height: int
    work: Path  # a scratch folder of its own, removed afterwards
    cancel: threading.Event | None = None
    what: str = "film"

    def run(self, args: Sequence[str]) -> None:
        """Run ffmpeg for this job (cancellable, errors named after the action)."""
        ffmpeg.run_ffmpeg(args, self.cancel, what=self.what)


def write_film(job: FilmJob, out: Path, log: Callable[[str], None]) -> dict[str, int]:
    """Write film.mp4 (pictures + the master as AAC); return {"frames", "encoded"} (frames re-encoded)."""
    cut = job.cut
    keys = [shot_keyframes([shot.frames for shot in span.shots], ffmpeg.keyint(cut.fps)) for span in cut.scenes]
    segments = plan_segments(cut, keys)
    why = _why_not_copied(job, keys if any(seg.blend for seg in segments) else None)
    if why is None:
        job.work.mkdir(parents=True, exist_ok=True)
        try:
            why = _join(job, segments, out)
        except BackendError as exc:  # an ffmpeg that cannot cut or join these files: still make the film
            why = f"joining by stream copy failed ({exc})"
        finally:
            shutil.rmtree(job.work, ignore_errors=True)
        if why is None:
            encoded = sum(seg.end - seg.start for seg in segments if seg.blend)
            if encoded:
                log(f"{job.what}: re-encoded {encoded} of {cut.frames} frames around the transitions, "
                    "copied the rest")
            return {"frames": cut.frames, "encoded": encoded}
    log(f"{job.what}: re-encoding the whole film: {why}")
    reencode(job, out)
    return {"frames": cut.frames, "encoded": cut.frames}


def _why_not_copied(job: FilmJob, keys: Sequence[Sequence[int]] | None) -> str | None:
    """Why the scenes cannot be cut (at `keys`, when given) and copied; None when they can."""
    if not copyable(job.scenes, job.cut.fps, job.width, job.height):
        return "the scenes are not all H.264 with one configuration at the film's size and rate"
    for i, (span, path) in enumerate(zip(job.cut.scenes, job.scenes)):
        track = mp4box.video_track(path)
        if track is None or track.samples != span.frames:
            return f"scene {span.id!r} does not hold exactly its shots' {span.frames} frames"
        if keys is not None and track.keyframes is not None and not set(keys[i]) <= set(track.keyframes):
            return f"scene {span.id!r} has no keyframes where its shots put them"
    return None


def _join(job: FilmJob, segments: Sequence[Segment], out: Path) -> str | None:
    """Cut, blend and concatenate `segments` into `out`; None on success, else why it could not."""
    cut = job.cut
    if not any(seg.blend for seg in segments):
        files = list(job.scenes)  # only cuts: the scenes as they are
    else:
        pieces = _split(job, segments)
        config = mp4box.video_track(job.scenes[0]).avc_config
        files = []
        for k, seg in enumerate(segments):
            if not seg.blend:
                files.append(pieces[seg.pieces[0]])
                continue
            window = job.work / f"window-{k:03d}.mp4"
            graph = film_graph(cut, seg.pieces, seg.start,
                               [f"[{n}:v]fps={cut.fps},setpts=PTS-STARTPTS" for n in range(len(seg.pieces))])
            inputs = [arg for piece in seg.pieces for arg in ("-i", str(pieces[piece]))]
            job.run([*inputs, *ffmpeg.FILTER_THREADS, "-filter_complex", graph, "-map", "[v]",
                     *video_args(cut.fps, seg.end - seg.start), "-an", *ffmpeg.BITEXACT, str(window)])
            track = mp4box.video_track(window)
            if track is None or track.avc_config != config or track.samples != seg.end - seg.start:
                return "a re-encoded transition does not match the scenes' H.264 configuration"
            files.append(window)
    listing = concat_list(files, job.work / "film.ffconcat")
    job.run(["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(job.master), *ffmpeg.FILTER_THREADS,
             "-map", "0:v:0", "-c:v", "copy", *master_args(1), *ffmpeg.BITEXACT, str(out)])
    track = mp4box.video_track(out)
    if track is None or track.samples != cut.frames:
        return f"joining by stream copy gave {track.samples if track else 0} frames, not {cut.frames}"
    return None


def _split(job: FilmJob, segments: Sequence[Segment]) -> dict[Piece, Path]:
    """Cut each scene at its pieces' first frames (keyframes) by stream copy: piece → file."""
    by_scene: dict[int, list[Piece]] = {}
    for seg in segments:
        for piece in seg.pieces:
            by_scene.setdefault(piece.scene, []).append(piece)
    files: dict[Piece, Path] = {}
    for scene, pieces in sorted(by_scene.items()):
        pieces.sort(key=lambda piece: piece.first)
        stem = job.work / f"scene-{scene:03d}"
        args = ["-i", str(job.scenes[scene]), "-map", "0:v:0", "-c:v", "copy", *ffmpeg.BITEXACT]
        if len(pieces) == 1:
            job.run([*args, f"{stem}-000.mp4"])
        else:
            # The segment muxer counts packets (decode order) and splits only on keyframes;
            # at a keyframe that closes its GOP the count equals the frame's display number.
            cuts = ",".join(str(piece.first) for piece in pieces[1:])
            job.run([*args, "-f", "segment", "-segment_format", "mp4", "-segment_frames", cuts,
                     "-reset_timestamps", "1", f"{stem}-%03d.mp4"])
        for n, piece in enumerate(pieces):
            files[piece] = Path(f"{stem}-{n:03d}.mp4")
    return files


def reencode(job: FilmJob, out: Path) -> None:
    """The fallback: decode every scene, conform it, blend the transitions and encode the whole film."""
    cut = job.cut
    fps = cut.fps
    sources = []
    for i, (span, path) in enumerate(zip(cut.scenes, job.scenes)):
        chain = conform(i, fps, job.width, job.height)
        have = frames_of(path, fps)
        if have < span.frames:  # a scene a frame short (rounding upstream) holds its last frame
            chain += f",tpad=stop_mode=clone:stop={span.frames - have}"
        sources.append(chain + f",trim=end_frame={span.frames},setpts=PTS-STARTPTS")
    pieces = [Piece(i, 0, span.frames) for i, span in enumerate(cut.scenes)]
    graph = film_graph(cut, pieces, 0, sources)
    inputs = [arg for path in job.scenes for arg in ("-i", str(path))]
    job.run([*inputs, "-i", str(job.master), *ffmpeg.FILTER_THREADS, "-filter_complex", graph, "-map", "[v]",
             *video_args(fps, cut.frames), *master_args(len(job.scenes)), *ffmpeg.BITEXACT, str(out)])
