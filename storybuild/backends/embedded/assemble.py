"""scene/<scene>, sound and film: shots joined into scenes, scenes joined into the film.

A scene is its shots end to end with the scene's mix underneath. The film's sound is the
scenes' stems laid out on the cut by `filmsound`, crossfaded like the pictures and
normalised to the target loudness (its own action, `sound`: it needs no pictures, so it
runs while shots render, and a change to pictures alone leaves it cached). The film is
the scenes joined by their transitions (ffmpeg's xfade: fade, fadeblack, wipeleft) with
that master muxed in.

When every input is H.264 with identical codec configuration, the project's size and
frame rate, pictures are stream-copied (no generation loss, seconds instead of minutes);
the film re-encodes only the windows around its transitions (`filmvideo`). Otherwise
they are decoded, conformed and re-encoded.
"""

from __future__ import annotations

from pathlib import Path

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import filmsound
from storybuild.backends.shared import audio
from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.cut import cut_json, plan_cut, read_shot, write_json
from storybuild.backends.embedded.filmvideo import (FilmJob, audio_args, concat_list, conform, copyable, frames_of,
                                                    video_args, write_film)
from storybuild.errors import BackendError
from storybuild.model import STEMS


def _input(ctx: ActionContext, name: str) -> Path:
    path = ctx.inputs.get(name)
    if path is None:
        raise BackendError(f"{ctx.action_id}: missing input {name!r}")
    return Path(path)


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
    lengths = [frames_of(v, fps) for v in videos]
    frames = sum(lengths)
    rate = sf.info(str(mix)).samplerate
    samples = int(round(frames / fps * rate))
    out = ctx.output("scene.mp4")
    ctx.progress(0.1, "joining shots")
    if copyable(videos, fps, width, height):
        listing = concat_list(videos, ctx.out_dir / ".shots.ffconcat")
        try:
            ffmpeg.run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(mix), *ffmpeg.FILTER_THREADS,
                               "-map", "0:v:0", "-c:v", "copy", *audio_args(1, samples), *ffmpeg.BITEXACT,
                               str(out)], ctx.cancel_event, what=ctx.action_id)
        finally:
            listing.unlink(missing_ok=True)
    else:
        args: list[str] = []
        for video in videos:
            args += ["-i", str(video)]
        graph = ";".join(f"{conform(i, fps, width, height)}[v{i}]" for i in range(len(videos)))
        graph += ";" + "".join(f"[v{i}]" for i in range(len(videos))) + f"concat=n={len(videos)}:v=1:a=0[v]"
        # Keyframes at each shot's first frame, as the shots themselves have them: the film
        # cuts scenes at the keyframes their shots imply (a forced keyframe restarts x264's
        # count, so the ones within each shot follow every keyint frames as well).
        starts = [sum(lengths[:k]) for k in range(1, len(lengths))]
        forced = ["-force_key_frames", ",".join(f"{(start - 0.5) / fps:.6f}" for start in starts)] if starts else []
        ffmpeg.run_ffmpeg([*args, "-i", str(mix), *ffmpeg.FILTER_THREADS, "-filter_complex", graph, "-map", "[v]",
                           *video_args(fps, frames), *forced, *audio_args(len(videos), samples), *ffmpeg.BITEXACT,
                           str(out)], ctx.cancel_event, what=ctx.action_id)
    ctx.progress(1.0, "scene joined")
    return {"scene.mp4": out}


def _film_cut(ctx: ActionContext):
    """The film's cut, from its scenes (params) and each shot's layout (shot.json inputs)."""
    params = ctx.params
    fps = params["fps"]
    shots = {}
    for scene in params.get("scenes", []):
        for shot in scene.get("shots", []):
            shots[shot] = read_shot(_input(ctx, f"shot:{shot}"), shot, fps)
    return plan_cut(list(params.get("scenes", [])), shots, fps)


def run_sound(ctx: ActionContext) -> dict[str, Path]:
    """Lay the scenes' stems out on the cut, crossfaded; normalise → master.wav and the stems."""
    params = ctx.params
    rate = int(params.get("sample_rate", 48000))
    target = float(params.get("loudness", -16.0))
    scenes = list(params.get("scenes", []))
    cut = _film_cut(ctx)
    ctx.check_cancelled()

    ctx.progress(0.05, "laying out sound")
    stem_paths = {(scene["id"], stem): ctx.inputs[f"stems:{scene['id']}:{stem}"]
                  for scene in scenes for stem in STEMS if f"stems:{scene['id']}:{stem}" in ctx.inputs}
    for scene in scenes:
        filmsound.require({stem for (sid, stem) in stem_paths if sid == scene["id"]}, scene["id"])

    def load(scene: str, stem: str):
        ctx.check_cancelled()
        return audio.load(Path(stem_paths[(scene, stem)]), rate)

    laid = filmsound.lay_stems(cut, load, rate)
    ctx.progress(0.4, "normalising loudness")
    stems, master, facts = filmsound.normalise(laid, rate, target)
    del laid
    ctx.log(f"{ctx.action_id}: {filmsound.describe(facts)}")
    ctx.extra["loudness"] = facts
    outputs = filmsound.write_stems(ctx.out_dir, stems, master, rate)
    del stems, master
    # The film's AAC is encoded here, while pictures are still being made; the film copies it.
    ctx.progress(0.8, "encoding AAC")
    outputs["master.m4a"] = ctx.output("master.m4a")
    ffmpeg.run_ffmpeg(["-i", str(outputs["master.wav"]), "-map", "0:a:0", *ffmpeg.AAC, *ffmpeg.BITEXACT,
                       str(outputs["master.m4a"])], ctx.cancel_event, what=ctx.action_id)
    ctx.progress(1.0, "sound mastered")
    return outputs


def run_film(ctx: ActionContext) -> dict[str, Path]:
    """Join the scenes with their transitions and mux the film's master → film.mp4, film.json."""
    params = ctx.params
    rate = int(params.get("sample_rate", 48000))
    scenes = list(params.get("scenes", []))
    cut = _film_cut(ctx)
    ctx.check_cancelled()
    ctx.progress(0.05, "joining scenes")
    scene_files = [_input(ctx, f"scene:{scene['id']}") for scene in scenes]
    film = ctx.output("film.mp4")
    job = FilmJob(cut, scene_files, _input(ctx, "master"), int(params["width"]), int(params["height"]),
                  ctx.out_dir / ".film-pieces", ctx.cancel_event, ctx.action_id)
    ctx.extra["pictures"] = write_film(job, film, ctx.log)
    outputs = {"film.mp4": film,
               "film.json": write_json(ctx.output("film.json"),
                                       cut_json(cut, int(params["width"]), int(params["height"]), rate))}
    ctx.progress(1.0, "film assembled")
    return outputs
