"""Which files a watch follows, whether a file system event matters, and whether it changed.

The set comes from the last manifest that loaded: its files (root and includes), every
asset's path, every workflow file, custom steps' inputs and the files backends' settings name,
plus the project's templates/ folder. It is recomputed after each load, so a file the
manifest starts referring to is followed from the next rebuild on.

inotify watches folders, not files: each watched file's folder is watched (or, while it
is missing, its nearest existing ancestor, so that re-creating it is noticed).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from storybuild.model import Manifest
from storybuild.projectpaths import within

DIGEST_LIMIT = 16 * 1024 * 1024  # larger files are compared by (mtime, size, inode) only
MANIFEST_SUFFIXES = (".yaml", ".yml")


def referenced_files(manifest: Manifest) -> set[str]:
    """Every project-relative path the manifest depends on (files may not exist)."""
    rels: set[str] = set(manifest.files)
    rels.update(asset.path for asset in manifest.assets.values())
    rels.update(wf.file for wf in manifest.workflows.values() if not wf.file.startswith("builtin:"))
    produced: set[str] = set()
    for step in manifest.steps:
        rels.update(step.inputs)
        produced.update(step.outputs)
    # A step's outputs are written by the build itself: following them would make every
    # build that runs a step look like an edit.
    rels -= produced
    from storybuild.backends.contract import setting_files

    rels.update(rel for _, rel in setting_files(manifest.backends.settings))
    return {rel for rel in rels if rel}


@dataclass(frozen=True)
class WatchSet:
    """Absolute files and folders to follow; folders are followed with everything inside.

    `include_dirs` hold manifest files: a YAML file appearing there may be a new match of
    an `include: [scenes/*.yaml]` glob, so it counts even before any manifest names it.
    """

    root: str
    files: frozenset[str]
    trees: frozenset[str]
    include_dirs: frozenset[str] = frozenset()

    @classmethod
    def of(cls, manifest: Manifest, extra: Iterable[str] = ()) -> "WatchSet":
        """The watch set of a loaded manifest (plus `extra` project-relative paths)."""
        root = os.path.abspath(manifest.root)
        files: set[str] = set()
        trees: set[str] = set()
        for rel in referenced_files(manifest) | set(extra):
            path = os.path.normpath(os.path.join(root, rel))
            (trees if os.path.isdir(path) else files).add(path)
        templates = os.path.join(root, "templates")
        if os.path.isdir(templates):
            trees.add(templates)
        include_dirs = {os.path.dirname(os.path.join(root, f)) for f in manifest.files}
        for pattern in manifest.raw.get("include") or ():
            include_dirs.add(os.path.dirname(os.path.normpath(os.path.join(root, str(pattern)))))
        return cls(root, frozenset(files), frozenset(trees), frozenset(os.path.normpath(d) for d in include_dirs))

    def widened(self, paths: Iterable[str]) -> "WatchSet":
        """This set plus more files (absolute or relative to the root)."""
        more = {os.path.normpath(os.path.join(self.root, p)) for p in paths}
        return WatchSet(self.root, self.files | frozenset(more), self.trees, self.include_dirs)

    def matches(self, path: str) -> bool:
        """Whether an event on `path` can change the build.

        A watched file itself; anything inside a watched tree; or a folder on the way to
        a watched file (created, removed or renamed: the file appears or goes with it).
        """
        path = os.path.normpath(path)
        if path in self.files or any(within(path, tree) for tree in self.trees):
            return True
        return any(within(f, path) for f in self.files)

    def appears(self, path: str) -> bool:
        """Whether a file created, deleted or renamed at `path` may change what is included."""
        path = os.path.normpath(path)
        return path.endswith(MANIFEST_SUFFIXES) and os.path.dirname(path) in self.include_dirs

    def folders(self) -> dict[str, bool]:
        """Folder → recursive?, the inotify watches that cover this set."""
        out: dict[str, bool] = {}
        for tree in self.trees:
            out[_existing(tree)] = os.path.isdir(tree)
        for folder in [os.path.dirname(f) for f in self.files] + list(self.include_dirs):
            out.setdefault(_existing(folder), False)
        # A tree that contains another watch already covers it.
        recursive = [f for f, rec in out.items() if rec]
        return {f: rec for f, rec in out.items()
                if rec or not any(within(f, r) for r in recursive)}

    def relative(self, path: str) -> str:
        """A path as the user wrote it in the manifest: relative to the root, posix."""
        try:
            return Path(os.path.relpath(path, self.root)).as_posix()
        except ValueError:
            return path


def _existing(path: str) -> str:
    """`path` or its nearest existing ancestor."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


class Fingerprints:
    """Content fingerprints of watched files, so an event that changed nothing is ignored.

    Editors save untouched buffers and tools `touch` files; both fire inotify events with
    the same bytes. Re-hashing happens only when (mtime, size, inode) moved.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int], str]] = {}

    def of(self, path: str) -> str | None:
        """A fingerprint of the file's content, or None when it is missing."""
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            return None
        if not os.path.isfile(path):
            return "dir"
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache.get(path)
        if cached and cached[0] == sig:
            return cached[1]
        if st.st_size > DIGEST_LIMIT:
            digest = f"stat:{sig}"
        else:
            try:
                with open(path, "rb") as f:
                    digest = hashlib.blake2b(f.read(), digest_size=16).hexdigest()
            except OSError:
                return None
        self._cache[path] = (sig, digest)
        return digest
