"""export/<id>: the film for a destination: sized, reframed, captioned, with its side files.

    film.mp4 ──► fit (scale | crop on centre or speaker | pad) ──► captions overlay ──► <id>.mp4
    film.json ─► <id>.srt / <id>.vtt, timelines (.otio, .xml, .fcpxml, .edl), poster.png
    thumbs ────► contact_sheet.png

The picture is re-encoded once at the preset's size (the "source" preset without captions
is a stream copy); the film's AAC sound is copied, never re-encoded. With `stems` the
film's loudness-normalised master and stems are delivered beside it as stems/<stem>.wav.
Timelines point at the shots as the build view shows them: build/<shots_dir>/<id>.mp4.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import captions, reframe, sheets, subtitles, timeline
from storybuild.backends.shared import ffmpeg
from storybuild.backends.embedded.cut import load_cut
from storybuild.errors import BackendError
from storybuild.model import STEMS as SCENE_STEMS

if TYPE_CHECKING:
    import numpy as np

PRESETS: dict[str, tuple[int, int] | None] = {
    "landscape": (1920, 1080),
    "vertical": (1080, 1920),
    "square": (1080, 1080),
    "source": None,  # the film's own size
}
STEMS = (*SCENE_STEMS, "master")


def _input(ctx: ActionContext, name: str) -> Path:
    path = ctx.inputs.get(name)
    if path is None:
        raise BackendError(f"{ctx.action_id}: missing input {name!r}")
    return Path(path)


def preset_size(preset: str, width: int, height: int, resolution: list[int] | None = None) -> tuple[int, int]:
    """Output size of `preset` (or the export's own `resolution`) for a film of width x height."""
    if resolution:
        return int(resolution[0]), int(resolution[1])
    if preset not in PRESETS:
        raise BackendError(f"unknown export preset {preset!r}", hint=f"use one of: {', '.join(PRESETS)}")
    return PRESETS[preset] or (width, height)


def _video(ctx: ActionContext, film: Path, out: Path, fit: reframe.Fit, frames: int, fps: float,
           commands: Path | None, caption_script: Path | None) -> None:
    """Encode <id>.mp4: the fitted picture with captions burned in, and the film's sound."""
    args = ["-i", str(film)]
    if caption_script is not None:
        args += ["-f", "concat", "-safe", "0", "-i", str(caption_script)]
    copy_picture = fit.mode == "scale" and (fit.src_w, fit.src_h) == (fit.out_w, fit.out_h) and caption_script is None
    if copy_picture:
        video = ["-map", "0:v:0", "-c:v", "copy"]
    else:
        graph = f"[0:v]{fit.filters(0.5, commands)}[base]"
        if caption_script is not None:
            # Blend in the picture's own yuv420 (captions converted once per caption, not every
            # frame to RGB and back, which cost four times the rest of the filtering).
            graph += (";[1:v]format=yuva420p[cap];[base][cap]overlay=0:0:eof_action=repeat:format=yuv420,"
                      "format=yuv420p[v]")
        else:
            graph += ";[base]format=yuv420p[v]"
        video = ["-filter_complex", graph, "-map", "[v]", *ffmpeg.X264, "-g", str(max(1, round(fps))),
                 "-frames:v", str(frames)]
    sound = ["-map", "0:a:0?", "-c:a", "copy"]  # "?": a silent film has no audio stream to copy
    ffmpeg.run_ffmpeg([*args, *ffmpeg.FILTER_THREADS, *video, *sound, *ffmpeg.BITEXACT, "-movflags", "+faststart", str(out)],
                      ctx.cancel_event, what=ctx.action_id)


def _encode(ctx: ActionContext, film: Path, cut: dict, export_id: str, fit: reframe.Fit, frames: int, fps: float,
            centres: np.ndarray | None) -> Path:
    """Write <id>.mp4 (reframe commands and caption overlays made in a scratch folder beside it)."""
    params = ctx.params
    with tempfile.TemporaryDirectory(prefix=".export-", dir=ctx.out_dir) as scratch:
        work = Path(scratch)
        commands = reframe.write_commands(fit, centres, fps, work / "crop.cmd") if centres is not None else None
        script = None
        if params.get("burn_captions") and cut["lines"]:
            style = captions.Style(fit.out_w, fit.out_h)
            script = captions.overlay_script(cut["lines"], float(cut["duration"]), style, work)
        ctx.progress(0.05, f"encoding {fit.out_w}x{fit.out_h}")
        video = ctx.output(f"{export_id}.mp4")
        _video(ctx, film, video, fit, frames, fps, commands, script)
    return video


def _stems(ctx: ActionContext, outputs: dict[str, Path]) -> None:
    """Copy the film's master and stems to stems/<stem>.wav."""
    ctx.output("stems").mkdir(exist_ok=True)
    for name in STEMS:
        target = ctx.output(f"stems/{name}.wav")
        shutil.copyfile(_input(ctx, f"stems:{name}"), target)
        outputs[f"stems/{name}.wav"] = target


def _subtitles(ctx: ActionContext, cut: dict, export_id: str, outputs: dict[str, Path]) -> None:
    """Write <id>.srt / <id>.vtt for each subtitle format the params ask for."""
    for fmt in ctx.params.get("subtitles") or ():
        writer = {"srt": subtitles.srt, "vtt": subtitles.vtt}.get(str(fmt))
        if writer is None:
            raise BackendError(f"unknown subtitle format {fmt!r}", hint="use srt or vtt")
        path = ctx.output(f"{export_id}.{fmt}")
        path.write_text(writer(cut["lines"]), encoding="utf-8")
        outputs[path.name] = path


def _timelines(ctx: ActionContext, cut: dict, export_id: str, title: str, outputs: dict[str, Path]) -> None:
    """Write the edit as each timeline format the params ask for, pointing at the build's shots."""
    params = ctx.params
    formats = [str(f) for f in params.get("timeline") or ()]
    if not formats:
        return
    media = f"build/{str(params.get('shots_dir') or 'shots').strip('/')}/{{id}}.mp4"
    edit = timeline.build(cut, title or export_id, media=media, log=ctx.log)
    for fmt in formats:
        if fmt not in timeline.FORMATS:
            raise BackendError(f"unknown timeline format {fmt!r}",
                               hint=f"use one of: {', '.join(sorted(timeline.FORMATS))}")
        path = timeline.write(edit, ctx.output(f"{export_id}.{timeline.FORMATS[fmt][1]}"), fmt)
        outputs[path.name] = path


def run_export(ctx: ActionContext) -> dict[str, Path]:
    """Write <id>.mp4 and, as the params ask, subtitles, timelines, poster and contact sheet."""
    params = ctx.params
    export_id = str(params.get("id") or ctx.action_id.split("/", 1)[-1])
    film = _input(ctx, "film")
    cut = load_cut(_input(ctx, "cut"))
    info = ffmpeg.probe(film)
    if info.video is None or not info.width or not info.height:
        raise BackendError(f"{ctx.action_id}: {film.name} has no video stream")
    fps = float(cut["fps"])
    frames = int(cut.get("frames") or round(float(cut["duration"]) * fps))
    fit = reframe.Fit(info.width, info.height, *preset_size(str(params.get("preset", "landscape")),
                                                            info.width, info.height, params.get("resolution")))
    speaker = str(params.get("reframe", "center")) == "speaker" and fit.mode == "crop"
    centres = reframe.speaker_centres(cut, frames) if speaker else None
    title = str(params.get("title") or "")

    video = _encode(ctx, film, cut, export_id, fit, frames, fps, centres)
    outputs: dict[str, Path] = {video.name: video}
    ctx.check_cancelled()
    if params.get("stems"):
        _stems(ctx, outputs)
    ctx.progress(0.8, "side files")
    _subtitles(ctx, cut, export_id, outputs)
    _timelines(ctx, cut, export_id, title, outputs)
    if params.get("poster"):
        at = sheets.poster_time(cut)
        centre = float(centres[min(frames - 1, int(at * fps))]) if centres is not None else 0.5
        outputs["poster.png"] = sheets.grab_frame(film, at, fit.filters(centre), fit.out_w, fit.out_h,
                                                  ctx.output("poster.png"))
    if params.get("contact_sheet"):
        thumbs = {shot["id"]: _input(ctx, f"thumb:{shot['id']}") for shot in cut["shots"]}
        outputs["contact_sheet.png"] = sheets.contact_sheet(cut["shots"], thumbs, info.width / info.height, title,
                                                            ctx.output("contact_sheet.png"))
    ctx.progress(1.0, "exported")
    return outputs
