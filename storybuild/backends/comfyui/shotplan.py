"""The generative part of a shot's expansion: keyframe → clip → lip-sync on ComfyUI.

The backend's `plan_picture`: the planner (planning/film.py) calls it when a shot's
picture is generative and this backend makes it, handing itself over as `ex` (the
expansion context: the manifest `m`, `id` (action ids), `width`, `height`, `fps`, `add`, `view`,
`asset_input`, `prompt_for` and `problems`). Generated media are not bit-reproducible across servers, so these actions
are pinned: once built, the lock keeps their outputs until their inputs change.
`takes: N` makes N candidates of the first generated stage, each with its own seed;
`take: k` chooses the one the rest of the film uses.
"""

from __future__ import annotations

from typing import Any

from storybuild.backends.comfyui import NAME
from storybuild.errors import ManifestError
from storybuild.model import GENERATIVE_CAPABILITY, Action, ActionInput, Input, PictureSource, Shot

def comfy_params(ex: Any, kind: str, capability: str, workflow_id: str | None, values: dict, loc,
                 seed_key: str) -> dict:
    """Resolve the workflow for a capability (named, or routed by the registry) into params."""
    from storybuild.backends.comfyui.expansion import resolve_workflow

    try:
        return resolve_workflow(ex.m, capability, workflow_id, values, kind=kind, seed_key=seed_key, loc=loc)
    except ManifestError as err:
        ex.problems.extend(err.diagnostics)
        return {"capability": capability, "values": values}


def _take_id(ex: Any, kind: str, shot: Shot, take: int) -> str:
    return ex.id(kind, shot.id, take=None if shot.takes == 1 else take)


def _candidates(ex: Any, kind: str, capability: str, workflow: str | None, shot: Shot,
                values: dict[str, Any], inputs: tuple[Input, ...], output: str, view_dir: str,
                origins: dict[str, str]) -> str:
    """One action per take of a generated stage; returns the chosen take's action id."""
    from storybuild.hashing import stable_seed

    chosen = ""
    for take in range(1, shot.takes + 1):
        seed = int(shot.picture.params.get("seed", stable_seed(ex.m.project.seed, shot.id, take)))
        action_id = _take_id(ex, kind, shot, take)
        suffix = "" if shot.takes == 1 else f".take{take}"
        ex.add(Action(
            id=action_id, kind=kind, backend=NAME,
            params=comfy_params(ex, kind, capability, workflow, {**values, "seed": seed}, shot.picture.loc,
                                f"{shot.id}/take{take}"),
            inputs=inputs, outputs=(output,),
            view={output: ex.view(f"{view_dir}/{shot.id}{suffix}{output[output.rfind('.'):]}")},
            loc=shot.picture.loc, origins=origins, pinned=True))
        if take == shot.take:
            chosen = action_id
    return chosen


def generative_actions(ex: Any, shot: Shot, look, lines: list[dict]) -> list[Input]:
    """Add the ComfyUI actions of a generative shot; return the inputs its render takes from them."""
    picture = shot.picture
    prompt, negative = ex.prompt_for(shot, look)
    values = {"prompt": prompt, "negative": negative, "width": ex.width, "height": ex.height, "fps": ex.fps,
              **({"duration": shot.duration} if shot.duration else {}),
              **{k: v for k, v in picture.params.items() if k != "seed"}}
    origins = {"values": f"{shot.path}.prompt", "workflow": f"{shot.path}.picture.workflow"}
    first_stage_done = False
    image_input: Input | None = None
    if picture.source in (PictureSource.KEYFRAME, PictureSource.IMAGE_TO_VIDEO):
        if picture.image:
            image_input = ex.asset_input("image", picture.image)
        else:
            workflow = picture.workflow if picture.source is PictureSource.KEYFRAME else None
            keyframe = _candidates(ex, "keyframe", "text_to_image", workflow, shot, values, (), "keyframe.png",
                                   "keyframes", origins)
            image_input = Input("image", ActionInput(keyframe, "keyframe.png"))
            first_stage_done = True
    if picture.source is PictureSource.KEYFRAME:
        return [image_input]
    clip_inputs = (image_input,) if image_input else ()
    if first_stage_done:
        from storybuild.hashing import stable_seed

        seed = int(picture.params.get("seed", stable_seed(ex.m.project.seed, shot.id, shot.take)))
        clip = ex.add(Action(
            id=ex.id("clip", shot.id), kind="clip", backend=NAME,
            params=comfy_params(ex, "clip", GENERATIVE_CAPABILITY[picture.source], picture.workflow, {**values, "seed": seed},
                                picture.loc, f"{shot.id}/take{shot.take}"),
            inputs=clip_inputs, outputs=("clip.mp4",), view={"clip.mp4": ex.view(f"clips/{shot.id}.mp4")},
            loc=picture.loc, origins=origins, pinned=True))
    else:
        clip = _candidates(ex, "clip", GENERATIVE_CAPABILITY[picture.source], picture.workflow, shot, values, clip_inputs,
                           "clip.mp4", "clips", origins)
    clip_input = Input("clip", ActionInput(clip, "clip.mp4"))
    if shot.lipsync == NAME and lines:
        audio = [Input(f"line:{line['index']}", ActionInput(line["speech"], "line.wav")) for line in lines]
        timings = [Input(f"timings:{line['index']}", ActionInput(line["speech"], "timings.json")) for line in lines]
        lip_values = {**values, "lines": [{"index": line["index"], "offset": line["offset"]} for line in lines]}
        lipsync = ex.add(Action(
            id=ex.id("lipsync", shot.id), kind="lipsync", backend=NAME,
            params=comfy_params(ex, "lipsync", "lipsync", shot.lipsync_workflow, lip_values, shot.loc, shot.id),
            inputs=(clip_input, *audio, *timings), outputs=("lipsync.mp4",),
            view={"lipsync.mp4": ex.view(f"clips/{shot.id}.lipsync.mp4")},
            loc=shot.loc, origins={"values": f"{shot.path}.dialogue", "workflow": f"{shot.path}.lipsync"},
            pinned=True))
        clip_input = Input("clip", ActionInput(lipsync, "lipsync.mp4"))
    return [clip_input]
