"""Asset files on disk: present, of a format their kind supports.

Formats per kind (docs/manifest.md, "Assets"): model glb gltf obj ply stl off, and usd
usda usdc fbx when the optional importer is installed; image png jpg jpeg webp bmp tif
tiff; video mp4 mov webm mkv m4v avi; audio kinds (music, sfx, ambience, audio) wav ogg oga
flac mp3 aif aiff opus; lipsync json (Rhubarb); mouths a folder holding one image per
mouth shape A-H and X.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import posixpath

_AUDIO = ("wav", "ogg", "oga", "flac", "mp3", "aif", "aiff", "opus")
_IMAGE = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff")
FORMATS: dict[str, tuple[str, ...]] = {
    "model": ("glb", "gltf", "obj", "ply", "stl", "off"),
    "image": _IMAGE,
    "video": ("mp4", "mov", "webm", "mkv", "m4v", "avi"),
    "music": _AUDIO,
    "sfx": _AUDIO,
    "ambience": _AUDIO,
    "audio": _AUDIO,
    "lipsync": ("json",),
}
# Model formats that need an importer storybuild does not depend on:
# extension → (modules, any of which reads it; install hint), as model_io imports them.
_USD = (("pxr",), "pip install usd-core (the 'usd' extra)")
OPTIONAL_MODELS = {
    "usd": _USD,
    "usda": _USD,
    "usdc": _USD,
    "fbx": (("pyassimp", "impasse"), "pip install pyassimp (the 'fbx' extra) plus the assimp library "
                                     "(e.g. apt-get install libassimp5), or pip install impasse; or convert the "
                                     "model to .glb"),
}
MOUTH_SHAPES = ("A", "B", "C", "D", "E", "F", "G", "H", "X")

Problem = tuple[str, str, str | None]  # (severity "error" | "warning", message, hint)


def missing(root: str, rel: str, directory: bool = False) -> tuple[str, str | None] | None:
    """(message, hint) if the project file `rel` is absent (or not a folder, for `directory`)."""
    full = os.path.join(root, rel)
    if directory:
        if os.path.isdir(full):
            return None
        if os.path.exists(full):
            return f"'{rel}' is a file; a mouth set is a folder of images", None
    elif os.path.isfile(full):
        return None
    elif os.path.isdir(full):
        return f"'{rel}' is a folder, not a file", None
    return f"file '{rel}' does not exist", _nearby(root, rel)


def format_problems(root: str, rel: str, kind: str, check_files: bool = True) -> list[Problem]:
    """What is wrong with the format of the asset file `rel` of `kind`."""
    if kind == "mouths":
        return _mouth_problems(root, rel) if check_files else []
    ext = posixpath.splitext(rel)[1].lower().lstrip(".")
    supported = FORMATS.get(kind, ())
    if ext in supported:
        return []
    if kind == "model" and ext in OPTIONAL_MODELS:
        modules, how = OPTIONAL_MODELS[ext]
        if all(importlib.util.find_spec(module) is None for module in modules):
            named = "' or '".join(modules)
            return [("warning", f".{ext} models need an optional importer ('{named}' is not installed)", how)]
        return []
    known = ", ".join(supported + (tuple(OPTIONAL_MODELS) if kind == "model" else ()))
    shown = f".{ext}" if ext else "a file without an extension"
    return [("error", f"{shown} is not a supported {kind} format", f"{kind} formats: {known}")]


def _mouth_problems(root: str, rel: str) -> list[Problem]:
    try:
        names = os.listdir(os.path.join(root, rel))
    except OSError:
        return []  # reported as missing
    shapes = {posixpath.splitext(n)[0].upper() for n in names if posixpath.splitext(n)[1].lower().lstrip(".") in _IMAGE}
    absent = [s for s in MOUTH_SHAPES if s not in shapes]
    if absent:
        return [("error", f"mouth set '{rel}' lacks shape{'s' if len(absent) > 1 else ''} {', '.join(absent)}",
                 "a mouth set has one image per shape: A.png ... H.png and X.png")]
    return []


def _nearby(root: str, rel: str) -> str | None:
    folder = posixpath.dirname(rel)
    try:
        names = os.listdir(os.path.join(root, folder))
    except OSError:
        return f"the folder '{folder}' does not exist either" if folder else None
    close = difflib.get_close_matches(posixpath.basename(rel), names, n=1, cutoff=0.6)
    return f"did you mean '{posixpath.join(folder, close[0])}'?" if close else None
