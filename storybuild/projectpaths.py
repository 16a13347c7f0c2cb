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
    if not path or not path.strip():
        raise PathProblem("empty path")
    if "\\" in path:
        raise PathProblem(f"path '{path}' uses '\\'", "write paths with '/', they work on every system")
    if path.startswith("/") or _DRIVE.match(path) or path.startswith("~"):
        raise PathProblem(f"absolute path '{path}' is not allowed", "write it relative to the project folder")
    joined = posixpath.normpath(posixpath.join(base, path))
    if joined == ".." or joined.startswith("../"):
        raise PathProblem(f"path '{path}' escapes the project folder", "keep the file inside the project")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, joined))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise PathProblem(f"path '{path}' leads outside the project through a symlink",
                          "copy the file into the project instead of linking to it")
    return "." if joined in ("", ".") else joined


def is_inside(root: str, path: str) -> bool:
    """Whether the project-relative `path` is acceptable (see `confine`)."""
    try:
        confine(root, path)
    except PathProblem:
        return False
    return True
