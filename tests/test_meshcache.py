"""Parsed meshes kept on disk: the same mesh back, without trimesh, and never stale."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import trimesh

from storybuild.backends.embedded import meshcache
from storybuild.backends.embedded.meshcache import load_model


def _box(path, size=1.0):
    trimesh.creation.box((size, 2 * size, size)).export(path)
    return path


def test_a_cached_model_is_the_same_mesh(tmp_path):
    model = _box(tmp_path / "box.glb")
    made = meshcache.cached_mesh(tmp_path / "cache", meshcache.model_recipe(model),
                                 lambda: load_model(model))
    again = meshcache.cached_mesh(tmp_path / "cache", meshcache.model_recipe(model),
                                  lambda: (_ for _ in ()).throw(AssertionError("parsed again")))
    for field in ("positions", "normals", "colors", "emissive"):
        assert np.array_equal(getattr(made, field), getattr(again, field))
    assert len(list((tmp_path / "cache" / "meshes").iterdir())) == 1


def test_a_changed_file_is_parsed_again(tmp_path):
    model = _box(tmp_path / "box.glb")
    first = load_model(model, tmp_path / "cache")
    _box(model, size=3.0)
    second = meshcache.cached_mesh(tmp_path / "cache", meshcache.model_recipe(model),
                                   lambda: load_model(model))
    assert second.bounds[1][1] > 2 * first.bounds[1][1]
    assert len(list((tmp_path / "cache" / "meshes").iterdir())) == 2


def test_an_unreadable_entry_is_replaced(tmp_path):
    model = _box(tmp_path / "box.glb")
    load_model(model, tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "meshes").iterdir()
    entry.write_bytes(b"not a zip")
    mesh = meshcache.cached_mesh(tmp_path / "cache", meshcache.model_recipe(model), lambda: load_model(model))
    assert mesh.count == 12
    assert np.load(entry)["positions"].shape == (12, 3, 3)


def test_a_worker_with_the_cache_never_imports_trimesh(tmp_path):
    model = _box(tmp_path / "box.glb")
    load_model(model, tmp_path / "cache")
    probe = ("import sys; from storybuild.backends.embedded.meshcache import load_model; "
             f"m = load_model({str(model)!r}, {str(tmp_path / 'cache')!r}); "
             "print(m.count, 'trimesh' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["12", "False"]
