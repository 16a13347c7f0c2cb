"""scene/<scene> and film: shots joined into scenes, scenes joined into the film.

A scene is its shots end to end with the scene's mix underneath. The film is its scenes
joined by their transitions (ffmpeg's xfade: fade, fadeblack, wipeleft), with the sound
laid out by `filmsound` and normalised to the target loudness.

When every input is H.264 with identical codec configuration, the project's size and
frame rate, and nothing needs blending, pictures are stream-copied (no generation loss,
seconds instead of minutes); otherwise they are decoded, conformed and re-encoded.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

from storybuild.backends.base import ActionContext
from storybuild.backends.embedded import audio, ffmpeg, filmsound
from storybuild.backends.embedded.cut import FilmCut, cut_json, plan_cut, read_shot, write_json
from storybuild.errors import BackendError

# Fade through black is built from fade filters (out to black over the first half, in
# from black over the second) dissolved together: xfade's own "fadeblack" never quite
# reaches black at its midpoint, and the sound dips to silence there.
XFADE = {"crossfade": "fade", "fade": "fade", "wipe": "wipeleft"}
# Decoding and filtering on one thread as well: the machine is shared, and a fixed
# thread count keeps every stage reproducible.


def _input(ctx: ActionContext, name: str) -> Path:
    path = ctx.inputs.get(name)
    if path is None:
        raise BackendError(f"{ctx.action_id}: missing input {name!r}")
    return Path(path)


def _avc_config(path: Path) -> bytes | None:
    """The avcC box (SPS/PPS) of an MP4's video track, found by walking boxes; None if absent."""
    try:
        with open(path, "rb") as f:
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                size, kind = struct.unpack(">I4s", header)
                if size == 1:
                    size = struct.unpack(">Q", f.read(8))[0] - 8
                if kind == b"moov":
                    moov = f.read(size - 8) if size else f.read()
                    at = moov.find(b"avcC")
                    if at < 4:
                        return None
                    length = struct.unpack(">I", moov[at - 4:at])[0]
                    return moov[at - 4:at - 4 + length]
                if size == 0:
                    return None
                f.seek(size - 8, 1)
    except OSError:
        return None


def _copyable(paths: Sequence[Path], fps: float, width: int, height: int) -> bool:
    """True when the files can be joined by stream copy into a conforming H.264 stream."""
    configs = set()
    for path in paths:
        info = ffmpeg.probe(path)
        if (info.video != "h264" or (info.width, info.height) != (width, height)
                or info.fps is None or abs(info.fps - fps) > 1e-3):
            return False
        configs.add(_avc_config(path))
    return len(configs) == 1 and None not in configs


def _concat_list(paths: Sequence[Path], where: Path) -> Path:
    """An ffconcat file listing `paths` (quotes escaped the way the demuxer reads them)."""
    lines = ["ffconcat version 1.0"]
    for path in paths:
        lines.append("file '" + str(Path(path).resolve()).replace("'", "'\\''") + "'")
    where.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return where


def _frames_of(path: Path, fps: float) -> int:
    info = ffmpeg.probe(path)
    if info.video is None or info.duration is None:
        raise BackendError(f"{path.name}: no video stream")
    return int(round(info.duration * fps))


def _conform(index: int, fps: float, width: int, height: int) -> str:
    """Filter turning input `index` into the project's frame rate, size and pixel format."""
    return (f"[{index}:v]fps={fps},scale={width}:{height}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p")


def _audio_args(index: int, samples: int) -> list[str]:
    """Map input `index`'s audio, padded or trimmed to exactly `samples`, encoded as AAC."""
    return ["-map", f"{index}:a:0", "-af", f"apad=whole_len={samples},atrim=end_sample={samples}", *ffmpeg.AAC]


def _video_args(fps: float, frames: int) -> list[str]:
    return [*ffmpeg.X264, "-g", str(max(1, int(round(fps)))), "-r", f"{fps}", "-frames:v", str(frames)]


def run_scene(ctx: ActionContext) -> dict[str, Path]:
    """Concatenate the scene's shots by their cuts and mux the scene mix → scene.mp4."""
    import soundfile as sf

    params = ctx.params
    fps, width, height = float(params["fps"]), int(params["width"]), int(params["height"])
    shots = list(params.get("shots", []))
    if not shots:
        raise BackendError(f"{ctx.action_id}: the scene has no shots")
    videos = [_input(ctx, f"shot:{shot}:video") for shot in shots]
    mix = _input(ctx, "mix")
    frames = sum(_frames_of(v, fps) for v in videos)
    rate = sf.info(str(mix)).samplerate
    samples = int(round(frames / fps * rate))
    out = ctx.output("scene.mp4")
    ctx.progress(0.1, "joining shots")
    if _copyable(videos, fps, width, height):
        listing = _concat_list(videos, ctx.out_dir / ".shots.ffconcat")
        try:
            ffmpeg.run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(mix), *ffmpeg.FILTER_THREADS,
                               "-map", "0:v:0", "-c:v", "copy", *_audio_args(1, samples), *ffmpeg.BITEXACT,
                               str(out)], ctx.cancel_event, what=ctx.action_id)
        finally:
            listing.unlink(missing_ok=True)
    else:
        args: list[str] = []
        for video in videos:
            args += ["-i", str(video)]
        graph = ";".join(f"{_conform(i, fps, width, height)}[v{i}]" for i in range(len(videos)))
        graph += ";" + "".join(f"[v{i}]" for i in range(len(videos))) + f"concat=n={len(videos)}:v=1:a=0[v]"
        ffmpeg.run_ffmpeg([*args, "-i", str(mix), *ffmpeg.FILTER_THREADS, "-filter_complex", graph, "-map", "[v]",
                           *_video_args(fps, frames), *_audio_args(len(videos), samples), *ffmpeg.BITEXACT,
                           str(out)], ctx.cancel_event, what=ctx.action_id)
    ctx.progress(1.0, "scene joined")
    return {"scene.mp4": out}


def _film_graph(cut: FilmCut, fps: float, width: int, height: int, frames_in: Sequence[int]) -> str:
    """filter_complex joining the scene inputs through their transitions into [v]."""
    parts = []
    for i, span in enumerate(cut.scenes):
        chain = _conform(i, fps, width, height)
        if frames_in[i] < span.frames:  # a scene a frame short (rounding upstream) holds its last frame
            chain += f",tpad=stop_mode=clone:stop={span.frames - frames_in[i]}"
        chain += f",trim=end_frame={span.frames},setpts=PTS-STARTPTS"
        if cut.transition_before(i) == "fade":
            overlap = cut.overlap_before(i)
            half = min(overlap - 1, overlap // 2)
            chain += f",fade=t=in:start_frame={half}:nb_frames={overlap - half}"
        if span.transition == "fade" and span.overlap:
            chain += f",fade=t=out:start_frame={span.frames - span.overlap}:nb_frames={max(1, span.overlap // 2)}"
        parts.append(f"{chain}[s{i}]")
    current = "[s0]"
    for i in range(1, len(cut.scenes)):
        kind = cut.transition_before(i)
        label = f"[j{i}]"
        if kind == "cut":
            parts.append(f"{current}[s{i}]concat=n=2:v=1:a=0{label}")
        else:
            duration = cut.overlap_before(i) / fps
            offset = cut.scenes[i].start / fps
            parts.append(f"{current}[s{i}]xfade=transition={XFADE[kind]}:duration={duration:.6f}:offset={offset:.6f}"
                         f"{label}")
        current = label
    last = cut.scenes[-1]
    if last.fade_out:
        parts.append(f"{current}fade=t=out:start_frame={cut.frames - last.fade_out}:nb_frames={last.fade_out}[fo]")
        current = "[fo]"
    parts.append(f"{current}null[v]")
    return ";".join(parts)


def _film_video(ctx: ActionContext, cut: FilmCut, scenes: Sequence[Path], master: Path, out: Path,
                rate: int) -> None:
    params = ctx.params
    fps, width, height = float(params["fps"]), int(params["width"]), int(params["height"])
    samples = filmsound.sample_at(cut.frames, cut.fps, rate)
    plain = all(span.transition == "cut" and not span.fade_out for span in cut.scenes)
    frames_in = [_frames_of(path, fps) for path in scenes]
    if plain and frames_in == [span.frames for span in cut.scenes] and _copyable(scenes, fps, width, height):
        listing = _concat_list(scenes, ctx.out_dir / ".scenes.ffconcat")
        try:
            ffmpeg.run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(master), *ffmpeg.FILTER_THREADS,
                               "-map", "0:v:0", "-c:v", "copy", *_audio_args(1, samples), *ffmpeg.BITEXACT,
                               str(out)], ctx.cancel_event, what=ctx.action_id)
        finally:
            listing.unlink(missing_ok=True)
        return
    args: list[str] = []
    for path in scenes:
        args += ["-i", str(path)]
    graph = _film_graph(cut, fps, width, height, frames_in)
    ffmpeg.run_ffmpeg([*args, "-i", str(master), *ffmpeg.FILTER_THREADS, "-filter_complex", graph, "-map", "[v]",
                       *_video_args(fps, cut.frames), *_audio_args(len(scenes), samples), *ffmpeg.BITEXACT,
                       str(out)], ctx.cancel_event, what=ctx.action_id)


def run_film(ctx: ActionContext) -> dict[str, Path]:
    """Join the scenes with their transitions; write film.mp4, master + stems, film.json."""
    params = ctx.params
    fps = params["fps"]
    rate = int(params.get("sample_rate", 48000))
    target = float(params.get("loudness", -16.0))
    scenes = list(params.get("scenes", []))
    shots = {}
    for scene in scenes:
        for shot in scene.get("shots", []):
            shots[shot] = read_shot(_input(ctx, f"shot:{shot}"), shot, fps)
    cut = plan_cut(scenes, shots, fps)
    ctx.check_cancelled()

    ctx.progress(0.05, "laying out sound")
    stem_paths = {(scene["id"], stem): ctx.inputs[f"stems:{scene['id']}:{stem}"]
                  for scene in scenes for stem in filmsound.STEMS if f"stems:{scene['id']}:{stem}" in ctx.inputs}
    for scene in scenes:
        filmsound.require({stem for (sid, stem) in stem_paths if sid == scene["id"]}, scene["id"])

    def load(scene: str, stem: str):
        ctx.check_cancelled()
        return audio.load(Path(stem_paths[(scene, stem)]), rate)

    laid = filmsound.lay_stems(cut, load, rate)
    stems, master, facts = filmsound.normalise(laid, rate, target)
    del laid
    ctx.log(f"{ctx.action_id}: {filmsound.describe(facts)}")
    ctx.extra["loudness"] = facts
    outputs = filmsound.write_stems(ctx.out_dir, stems, master, rate)
    del stems, master
    ctx.check_cancelled()

    ctx.progress(0.3, "joining scenes")
    scene_files = [_input(ctx, f"scene:{scene['id']}") for scene in scenes]
    film = ctx.output("film.mp4")
    _film_video(ctx, cut, scene_files, outputs["master.wav"], film, rate)
    outputs["film.mp4"] = film
    outputs["film.json"] = write_json(ctx.output("film.json"),
                                      cut_json(cut, int(params["width"]), int(params["height"]), rate))
    ctx.progress(1.0, "film assembled")
    return outputs
