"""Content hashing: blake3 digests, canonical JSON, stat-trusted file digests, action keys.

Digests are lowercase hex blake3 (256 bits). A source file is hashed once and then
trusted by its (mtime_ns, size, inode) until one of those changes (doit's rule), so an
unchanged project reads no media bytes and a `touch` costs one re-hash, not a rebuild.

This module stays light on purpose (no model import): the no-op fast path uses it.
"""

from __future__ import annotations

import hashlib

import json
import os
import posixpath
import time
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from blake3 import blake3

# Bump when the layout of the hashed documents below changes: every key changes with it.
KEY_SCHEMA = 1

# Files above this size are hashed through mmap, which lets blake3 use several threads
# and never holds the whole file in Python memory.
_MMAP_THRESHOLD = 1 << 20

# A file modified this recently before it was hashed may change again within the same
# timestamp tick without its stat changing (git's "racily clean" problem): its digest is
# used for this build but not trusted by stat afterwards.
RACY_NS = 1_000_000_000


class FileStat(NamedTuple):
    """The stat fields that decide whether a file's recorded digest can be trusted."""

    mtime_ns: int
    size: int
    ino: int


def stat_of(path: str | os.PathLike) -> FileStat | None:
    """The FileStat of a regular file (following symlinks), or None if there is none."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not (st.st_mode & 0o170000) == 0o100000:  # S_ISREG without importing stat
        return None
    return FileStat(st.st_mtime_ns, st.st_size, st.st_ino)


def jsonable(value: Any) -> Any:
    """The JSON form of a value json cannot encode itself (json's `default=` hook): an Enum
    by its value, a Mapping as a dict, a set sorted, a path as its string; TypeError else."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot hash a value of type {type(value).__name__}: {value!r}")


# One encoder for every key: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=jsonable)


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return _ENCODER.encode(value).encode("utf-8")


def plain(value: Any) -> Any:
    """A copy of `value` as plain JSON data (dicts, lists, str, numbers, bool, None), each
    value converted as canonical_json converts it (`jsonable`); tuples become lists."""
    return json.loads(json.dumps(value, default=jsonable))


def digest_bytes(data: bytes) -> str:
    """The hex blake3 digest of `data`."""
    return blake3(data).hexdigest()


def digest_file(path: str | os.PathLike) -> str:
    """The hex blake3 digest of a file's bytes."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size >= _MMAP_THRESHOLD:
            hasher = blake3(max_threads=blake3.AUTO)
            hasher.update_mmap(path)  # returns None in blake3 0.4.0 (our minimum): no chaining
            return hasher.hexdigest()
        return blake3(f.read()).hexdigest()


def static_digest(kind: str, backend: str, version: str, config: Any, params: Mapping[str, Any]) -> str:
    """The digest of everything in an action's key that does not depend on its inputs.

    Computed once when the manifest is planned and cached with the plan, so a build whose
    manifest did not change never calls a backend's `config_key` nor imports its module.
    """
    doc = {"schema": KEY_SCHEMA, "kind": kind, "backend": backend, "version": version,
           "config": config, "params": params}
    return digest_bytes(canonical_json(doc))


def action_key(static: str, inputs: Mapping[str, str]) -> str:
    """An action's key: blake3 of the canonical JSON of its static digest and input digests."""
    return digest_bytes(canonical_json({"static": static, "inputs": inputs}))


class Hashed(NamedTuple):
    """A file's digest and the stat it was taken at; `racy` ones must not be trusted later."""

    digest: str
    stat: FileStat
    racy: bool = False


class FileHasher:
    """Digests project files, trusting a recorded digest while the file's stat is unchanged.

    `known` maps a project-relative path to its last (FileStat, digest); `fresh` collects the
    entries that had to be (re)hashed so the caller can persist them in one transaction.
    `read_digest` is the seam that reads bytes (tests count its calls).
    """

    def __init__(self, root: str | os.PathLike, known: Mapping[str, Hashed] | None = None,
                 read_digest: Callable[[str], str] = digest_file):
        self.root = os.fspath(root)
        self.known: Mapping[str, Hashed] = known if known is not None else {}
        self.fresh: dict[str, Hashed] = {}
        # Folder inputs (a mouths set): folder → (every folder under it, itself included; every
        # file in them). The folders' own stats are what the stamp watches for a file added or
        # removed inside; the files are watched like any source.
        self.folders: dict[str, tuple[list[str], list[str]]] = {}
        self._read_digest = read_digest

    def digest(self, rel: str) -> str | None:
        """The digest of project file `rel` (or of a folder's files), or None when it does not exist."""
        done = self.fresh.get(rel)
        path = os.path.join(self.root, rel)
        st = stat_of(path)
        if st is None:
            return self._folder_digest(rel) if os.path.isdir(path) and not os.path.islink(path) else None
        if done is not None and done.stat == st:
            return done.digest
        old = self.known.get(rel)
        if old is not None and old.stat == st:
            return old.digest
        digest = self._read_digest(path)
        # Re-stat after reading: a file written while we hashed must not be trusted later.
        racy = stat_of(path) != st or st.mtime_ns > time.time_ns() - RACY_NS
        self.fresh[rel] = Hashed(digest, st, racy)
        return digest

    def _folder_digest(self, rel: str) -> str:
        """A folder's digest: its files' relative names and digests, each file trusted by its
        stat like any other (links are not followed: a folder input stays in the project)."""
        lines, folders, children = [], [rel], []
        top = os.path.join(self.root, rel)
        for here, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(here, d)))
            folders += [posixpath.join(rel, os.path.relpath(os.path.join(here, d), top).replace(os.sep, "/"))
                        for d in dirs]
            for name in sorted(files):
                child = posixpath.join(rel, os.path.relpath(os.path.join(here, name), top).replace(os.sep, "/"))
                digest = None if os.path.islink(os.path.join(here, name)) else self.digest(child)
                if digest is not None:
                    lines.append(f"{child[len(rel) + 1:]}\0{digest}\n")
                    children.append(child)
        self.folders[rel] = (folders, children)
        return digest_bytes("".join(sorted(lines)).encode())

    def trusted(self) -> dict[str, Hashed]:
        """The freshly hashed entries that may be trusted by stat in later builds."""
        return {rel: h for rel, h in self.fresh.items() if not h.racy}

    def digests(self, paths: Iterable[str]) -> dict[str, str | None]:
        """Digests of many project files (None for missing ones)."""
        return {rel: self.digest(rel) for rel in paths}


def stable_seed(*parts: object) -> int:
    """A seed derived from ids, stable across machines and Python runs."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)
