"""Paths written in a manifest, confined to the project.

A manifest may come from someone else's repository, so every path it names must resolve
inside the project directory: no absolute paths, no `..` that climbs out, no symlink that
points outside. Paths are posix (`/`) and project-relative in the model.
"""

from __future__ import annotations

import os
import posixpath
import re

_DRIVE = re.compile(r"^[A-Za-z]:")

BUILD_DIR = "build"  # the project's human view of what a build made (film.mp4, shots/, ...)
STORE_DIR = ".storybuild"  # the project's cache and state (CAS, action cache, state DB)


class PathProblem(ValueError):
    """Why a manifest path is not acceptable; str() is the message, `hint` a suggestion."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


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
        self._prefix = self.real_root.rstrip(os.sep) + os.sep
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
        if joined == ".." or joined.startswith("../"):
            raise PathProblem(f"path '{path}' escapes the project folder", "keep the file inside the project")
        real = self._resolve(joined)
        if real != self.real_root and not real.startswith(self._prefix):
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
