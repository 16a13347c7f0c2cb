"""Parsed meshes kept on disk between builds, so frame workers need not import trimesh.

Importing trimesh costs ~0.6 s per process and parsing a model tens of milliseconds; a
frame worker rendering the one shot of an edited line paid both before its first frame.
A mesh is stored as .npz in the store's cache folder, named by a digest of what it was
made from (a model file's bytes, or a puppet's colour), the embedded backend's version
(bumped whenever outputs change, so a change to parsing or to puppets is never served
stale) and FORMAT. Entries are written atomically and never change, so builds and
workers can share them; deleting the folder is always safe: the next build parses again.
"""

from __future__ import annotations

import os
import tempfile
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from storybuild.backends.embedded.scene3d import Mesh, mesh_from_parts

FORMAT = 1  # bump when the file layout below changes
_FIELDS = ("positions", "normals", "colors", "emissive")
_CACHE_SIZE = 32  # meshes kept per process


_cache: OrderedDict[tuple, Mesh] = OrderedDict()
_cache_lock = threading.Lock()


def load_model(path: Path | str, cache: Path | str | None = None) -> Mesh:
    """A model file as a Mesh, cached per process by path, size and modification time.

    With a `cache` folder, parsed meshes are also kept there between processes.
    """
    from storybuild.backends.embedded.model_io import read_parts

    p = Path(path)
    st = os.stat(p)
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    mesh = cached_mesh(cache, model_recipe(p), lambda: mesh_from_parts(read_parts(p)))
    with _cache_lock:
        _cache[key] = mesh
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return mesh


def cached_mesh(folder: Path | str | None, recipe: str, make: Callable[[], Mesh]) -> Mesh:
    """The mesh made from `recipe`, read from `folder`, or made by `make()` and stored there."""
    if folder is None:
        return make()
    from storybuild.backends.embedded import VERSION
    from storybuild.hashing import digest_bytes

    name = digest_bytes(f"{recipe}\0{VERSION}\0{FORMAT}".encode())
    path = Path(folder) / "meshes" / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            head = data["head"] if "head" in data.files else None
            return Mesh(*(data[field] for field in _FIELDS), head)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # absent or unreadable
        pass
    mesh = make()
    _store(path, mesh)
    return mesh


def model_recipe(path: Path | str) -> str:
    """The recipe of a model file: its bytes' digest."""
    from storybuild.hashing import digest_file

    return "model:" + digest_file(path)


def _store(path: Path, mesh: Mesh) -> None:
    arrays = {field: getattr(mesh, field) for field in _FIELDS}
    if mesh.head is not None:
        arrays["head"] = mesh.head
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:  # a read-only or full store: the cache only saves time, it never fails a build
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
