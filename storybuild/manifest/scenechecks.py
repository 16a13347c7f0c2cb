"""Cross-reference checks of scenes and shots (see checks.py for the rules of the game).

A shot may only look at what is placed in it (its cast and props, or its scene's set),
because the camera needs a position. A line by a character outside the cast is a warning
(an off-screen voice), and so is an emotion the character's voice does not define (it is
spoken neutrally).
"""

from __future__ import annotations

from typing import Any

from storybuild.backends.contract import (
    DEFAULT_MOUTHS, DEFAULT_PICTURE, generative_backend, is_installed, with_capability,
)
from storybuild.errors import Diagnostic
from storybuild.manifest.checks import CrossChecker, as_dict, as_list, as_str, did_you_mean
from storybuild.manifest.locations import Path
from storybuild.model import GENERATIVE_CAPABILITY

_AUDIO_KINDS = {"ambience": ("ambience", "audio"), "music": ("music", "audio")}


def check_scenes(c: CrossChecker) -> None:
    """Check every scene and shot of the document."""
    scene_ids: dict[str, Any] = {}
    shot_ids: dict[str, Any] = {}
    sections = as_dict(c.doc.get("backends"))
    for index, scene in enumerate(as_list(c.doc.get("scenes"))):
        scene = as_dict(scene)
        path: Path = ("scenes", index)
        c.unique_id(scene_ids, path, scene, "scene")
        c.check_look(path + ("look",))
        for cue, kinds in _AUDIO_KINDS.items():
            if isinstance(scene.get(cue), dict) and "asset" in scene[cue]:
                c.asset_ref(path + (cue, "asset"), scene[cue]["asset"], f"scene {cue}", kinds)
        set_refs = _placements(c, path + ("set",), scene.get("set"), "props")
        for n, shot in enumerate(as_list(scene.get("shots"))):
            shot_path = path + ("shots", n)
            c.unique_id(shot_ids, shot_path, as_dict(shot), "shot")
            _shot(c, shot_path, as_dict(shot), set_refs, sections)


def _placements(c: CrossChecker, path: Path, items: Any, role: str) -> set[str]:
    """Check a cast (`role` "cast": characters) or set/props (model assets); returns the refs."""
    refs: set[str] = set()
    for index, item in enumerate(as_list(items)):
        ref = as_str(as_dict(item).get("ref"))
        if ref is None:
            continue
        where = path + (index, "ref")
        if ref in refs:
            c.error(where, f"'{ref}' is placed twice in this {role == 'cast' and 'shot' or 'list'}",
                    "place each character or prop once", "duplicate-placement")
        refs.add(ref)
        if role == "cast":
            if ref not in c.characters and ref in c.assets:
                c.error(where, f"'{ref}' is an asset, not a character", "put models under `props:`")
            else:
                c.ref(where, ref, c.characters, "character")
        elif ref in c.characters and ref not in c.assets:
            c.error(where, f"'{ref}' is a character; characters go in a shot's `cast:`", None)
        else:
            c.asset_ref(where, ref, "a placed prop", ("model",))
    return refs


def _shot(c: CrossChecker, path: Path, shot: dict, set_refs: set[str], sections: dict) -> None:
    c.check_look(path + ("look",))
    cast = _placements(c, path + ("cast",), shot.get("cast"), "cast")
    props = _placements(c, path + ("props",), shot.get("props"), "props")
    _camera(c, path + ("camera",), as_dict(shot.get("camera")), cast | props | set_refs)
    picture = as_dict(shot.get("picture"))
    maker = _picture(c, path + ("picture",), picture, sections)
    lipsync = shot.get("lipsync")
    if isinstance(lipsync, dict) and "workflow" in lipsync:
        c.ref(path + ("lipsync", "workflow"), lipsync["workflow"], c.workflows, "workflow")
    _lipsync(c, path + ("lipsync",), lipsync, str(picture.get("source", "render3d")), maker)
    takes, take = shot.get("takes", 1), shot.get("take", 1)
    if isinstance(takes, int) and isinstance(take, int) and take > takes:
        c.error(path + ("take",), f"take {take} chosen, but the shot has {takes} take{'s' if takes != 1 else ''}",
                f"set takes: {take} or choose a take from 1 to {takes}", "take")
    for n, line in enumerate(as_list(shot.get("dialogue"))):
        _line(c, path + ("dialogue", n), as_dict(line), cast)
    for n, cue in enumerate(as_list(shot.get("sfx"))):
        if isinstance(cue, dict) and "asset" in cue:
            c.asset_ref(path + ("sfx", n, "asset"), cue["asset"], "a sound effect", ("sfx", "audio"))


def _camera(c: CrossChecker, path: Path, camera: dict, placed: set[str]) -> None:
    _look_at(c, path + ("look_at",), camera.get("look_at"), placed)
    keys = as_list(camera.get("keyframes"))
    move = as_dict(camera.get("move"))
    if keys and move and move.get("type", "static") != "static":
        c.error(path + ("move",), "a camera takes either a move or keyframes, not both",
                "express the move as keyframes, or remove them", "camera")
    last = -1.0
    for n, key in enumerate(keys):
        key = as_dict(key)
        _look_at(c, path + ("keyframes", n, "look_at"), key.get("look_at"), placed)
        at = key.get("at")
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            if at < last:
                c.error(path + ("keyframes", n, "at"), f"keyframe at {at} comes after one at {last}",
                        "list keyframes in order of `at`", "camera")
            last = max(last, at)


def _look_at(c: CrossChecker, path: Path, target: Any, placed: set[str]) -> None:
    if not isinstance(target, str) or target in placed:
        return
    if target in c.characters or target in c.assets:
        c.error(path, f"the camera looks at '{target}', who is not in this shot",
                "add them to the shot's cast (or props), or look at a point [x, y, z]", "look-at")
    else:
        c.error(path, f"unknown look-at target '{target}'",
                did_you_mean(target, placed) or "look at someone in the shot, or at a point [x, y, z]", "look-at")


def _picture(c: CrossChecker, path: Path, picture: dict, sections: dict) -> str | None:
    """Check a shot's picture; return the backend that makes it (None when it cannot be told)."""
    source = picture.get("source", "render3d")
    if "workflow" in picture:
        c.ref(path + ("workflow",), picture["workflow"], c.workflows, "workflow")
    if "image" in picture:
        kinds = ("video",) if source == "file" else ("image",)
        c.asset_ref(path + ("image",), picture["image"], f"a {source} picture", kinds)
    params = as_dict(picture.get("params"))
    control = as_dict(params.get("controlnet"))
    if "image" in control:
        c.asset_ref(path + ("params", "controlnet", "image"), control["image"], "a ControlNet image", ("image",))
    adapter = as_dict(params.get("ipadapter"))
    if "image" in adapter:
        c.asset_ref(path + ("params", "ipadapter", "image"), adapter["image"], "an IP-Adapter image", ("image",))
    if "character" in adapter and c.ref(path + ("params", "ipadapter", "character"), adapter["character"],
                                         c.characters, "character"):
        if not as_list(as_dict(c.characters[adapter["character"]]).get("references")):
            c.error(path + ("params", "ipadapter", "character"),
                    f"character '{adapter['character']}' has no reference images for IP-Adapter",
                    "add `references:` (image assets) to the character", "reference")
    # `auto` falls back to the animatic when no backend can make the picture; a backend
    # named outright that cannot, or is not set up, would fail at build time: say so now.
    backend = picture.get("backend", "auto")
    if not isinstance(backend, str) or not isinstance(source, str) or (backend != "auto" and not is_installed(backend)):
        return None  # the schema has reported it
    chosen = generative_backend(sections, source, backend)
    if isinstance(chosen, Diagnostic):
        c.error(path + ("backend",), chosen.message, chosen.hint, chosen.code)
        return None
    if chosen == DEFAULT_PICTURE:
        _unused_generation(c, path, picture, source)
    return chosen


def _unused_generation(c: CrossChecker, path: Path, picture: dict, source: str) -> None:
    """A picture the animatic draws: what only a generative backend reads must not pass in silence."""
    unused = [key for key in ("workflow",) if key in picture]
    unused += ["params." + key for key in sorted(as_dict(picture.get("params"))) if key != "seed"]
    if not unused:
        return
    where = path + (("workflow",) if "workflow" in picture else ("params",))
    if source in GENERATIVE_CAPABILITY:  # no backend set up to generate it: a fallback by design
        capability = GENERATIVE_CAPABILITY[source]
        c.warning(where, f"no backend is set up to generate this {source} picture, so the animatic is drawn "
                  f"and its {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used", f"set up a backend with the {capability} capability "
                  f"({', '.join(with_capability(capability)) or 'none installed'})", "unused")
    else:
        c.error(where, f"a {source} picture is drawn by the animatic, which uses no {', '.join(unused)}",
                "remove them, or make the picture generated (source: keyframe, image_to_video or text_to_video)",
                "unused")


def _lipsync(c: CrossChecker, path: Path, lipsync: Any, source: str, maker: str | None) -> None:
    """A lip-sync method must be one that this shot's picture can have."""
    if lipsync is None:
        return
    method = lipsync.get("method") if isinstance(lipsync, dict) else lipsync
    if not isinstance(method, str) or not is_installed(method):
        return  # none, or reported by the schema
    workflow = isinstance(lipsync, dict) and "workflow" in lipsync
    if method in (DEFAULT_MOUTHS,) and workflow:
        c.error(path + ("workflow",), f"lip-sync by {method} mouth shapes runs no workflow",
                "remove the workflow, or name the backend that runs it as the method", "unused")
    if method == DEFAULT_MOUTHS or maker is None:
        return
    if maker != method or source not in ("image_to_video", "text_to_video"):
        message = (f"lip-sync by {method} works on the clips it generates, and this shot's {source} picture is "
                   + ("a still" if source == "keyframe" else f"made by {maker}" if maker != DEFAULT_PICTURE
                      else "drawn by the animatic"))
        if maker == DEFAULT_PICTURE and source in ("image_to_video", "text_to_video"):
            c.warning(path, message + " (no backend is set up to generate it): mouth shapes are drawn instead",
                      f"set up {method} to generate the clip", "unused")
        else:
            c.error(path, message, f"use lipsync: {DEFAULT_MOUTHS} (mouth shapes), or generate a clip with {method}",
                    "unused")


def _line(c: CrossChecker, path: Path, line: dict, cast: set[str]) -> None:
    who = as_str(line.get("character"))
    if who is None:
        return
    if not c.ref(path + ("character",), who, c.characters, "character"):
        return
    if who not in cast:
        c.warning(path + ("character",), f"'{who}' speaks but is not in the shot's cast (heard off screen)",
                  "add them to `cast:` to see them speak", "off-screen")
    emotion = as_str(line.get("emotion"))
    emotions = as_dict(as_dict(as_dict(c.characters[who]).get("voice")).get("emotions"))
    if emotion is not None and emotion != "neutral" and emotion not in emotions:
        c.warning(path + ("emotion",), f"'{who}' has no '{emotion}' voice; the line is spoken neutrally",
                  did_you_mean(emotion, emotions) or f"add it under characters.{who}.voice.emotions", "emotion")
    if "lipsync" in line:
        c.asset_ref(path + ("lipsync",), line["lipsync"], "a line's lip-sync", ("lipsync",))
