"""Paths written in a manifest, confined to the project.

A manifest may come from someone else's repository, so every path it names must resolve
inside the project directory: no absolute paths, no `..` that climbs out, no symlink that
points outside. Paths are posix (`/`) and project-relative in the model.

This is the one place that says whether a path is inside a folder: `confine` for what a
manifest names, `inside_lexically` for paths the build writes itself, `within` for
absolute paths (the preview's media, a backend's scratch folder, watched trees).
"""

from __future__ import annotations

import os
import posixpath
import re

_DRIVE = re.compile(r"^[A-Za-z]:")

MANIFEST_NAME = "storybuild.yaml"  # the film's manifest, at the project's root
BUILD_DIR = "build"  # the project's human view of what a build made (film.mp4, shots/, ...)
LOCK_NAME = "storybuild.lock"  # the committed record of what each target was built from
STORE_DIR = ".storybuild"  # the project's cache and state (CAS, action cache, state DB)


class PathProblem(ValueError):
    """Why a manifest path is not acceptable; str() is the message, `hint` a suggestion."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def climbs_out(norm: str) -> bool:
    """Whether the normalised relative posix path `norm` leaves its folder through `..`."""
    return norm == ".." or norm.startswith("../")


def inside_lexically(rel: str) -> str | None:
    """`rel` normalised (posix), or None if it is absolute or climbs out with `..`.

    Lexical only, no symlink followed: for paths the build itself writes (views, a step's
    declared outputs). A path a manifest names goes through `confine`.
    """
    norm = posixpath.normpath(rel)
    if posixpath.isabs(rel) or climbs_out(norm):
        return None
    return norm


def within(path: str, folder: str) -> bool:
    """Whether the absolute, normalised `path` is `folder` itself or below it.

    A string test on whole components ("build2" is not within "build"); pass real paths
    (os.path.realpath) where a symlink must not lead out.
    """
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def confine(root: str, path: str, base: str = "") -> str:
    """`path` (relative to the project folder `base`) as a normalised project-relative path.

    `root` is the absolute project directory. Raises PathProblem if the path is empty,
    absolute, uses backslashes, climbs out with `..`, or resolves (through symlinks) to
    somewhere outside the project. The file need not exist.
    """
    return Confiner(root)(path, base)


class Confiner:
    """`confine` for many paths of one project: folders are resolved once and remembered.

    A film with thousands of steps names the same folders over and over; resolving each
    path with os.path.realpath would cost a system call per component every time.
    """

    def __init__(self, root: str):
        self.real_root = os.path.realpath(root)
        self._real: dict[str, str] = {".": self.real_root}
        self._done: dict[tuple[str, str], str | PathProblem] = {}

    def __call__(self, path: str, base: str = "") -> str:
        """See `confine`."""
        key = (path, base)
        result = self._done.get(key)
        if result is None:
            try:
                result = self._confine(path, base)
            except PathProblem as problem:
                result = problem
            self._done[key] = result
        if isinstance(result, PathProblem):
            raise result
        return result

    def _confine(self, path: str, base: str) -> str:
        if not path or not path.strip():
            raise PathProblem("empty path")
        if "\\" in path:
            raise PathProblem(f"path '{path}' uses '\\'", "write paths with '/', they work on every system")
        if path.startswith("/") or _DRIVE.match(path) or path.startswith("~"):
            raise PathProblem(f"absolute path '{path}' is not allowed", "write it relative to the project folder")
        joined = posixpath.normpath(posixpath.join(base, path))
        if climbs_out(joined):
            raise PathProblem(f"path '{path}' escapes the project folder", "keep the file inside the project")
        real = self._resolve(joined)
        if not within(real, self.real_root):
            raise PathProblem(f"path '{path}' leads outside the project through a symlink",
                              "copy the file into the project instead of linking to it")
        return joined

    def _resolve(self, rel: str) -> str:
        """The real path of the project-relative `rel`, resolving symlinks folder by folder."""
        real = self._real.get(rel)
        if real is None:
            parent, name = posixpath.split(rel)
            full = os.path.join(self._resolve(parent or "."), name)
            real = os.path.realpath(full) if os.path.islink(full) else full
            self._real[rel] = real
        return real


def own_folders_problem(root: str) -> str | None:
    """Why storybuild cannot use its folders in `root` (build/, .storybuild/), or None.

    Each must be a real folder inside the project (or not exist yet): a link would take the
    film, or the cache, wherever it points, and a file where a folder belongs stops a build
    half-way.
    """
    for name, holds in ((STORE_DIR, "its cache and state"), (BUILD_DIR, "the film it builds")):
        path = os.path.join(root, name)
        if os.path.islink(path):
            return f"{name} is a symbolic link: storybuild keeps {holds} in {name}/ inside the project"
        if os.path.exists(path) and not os.path.isdir(path):
            return f"{name} is a file: storybuild keeps {holds} in a folder of that name"
    return None
