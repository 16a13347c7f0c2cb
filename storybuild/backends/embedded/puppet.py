"""Characters in 3D: a generated puppet for characters without a model, and where mouths go.

A puppet stands on y = 0, faces +Z at facing 0, and is about 1.7 m tall with its head
centre at 1.55 m (a cast member's `scale` resizes it). Every character, puppet or model,
gets a FaceAnchor: the point on the front of its head where the mouth is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from storybuild.backends.embedded.model_io import Part
from storybuild.backends.embedded.scene3d import Mesh, mesh_from_parts

HEAD_CENTER = 1.55  # metres, of the unscaled puppet
HEAD_RADIUS = 0.15
SKIN_MIX = 0.55  # how far the head colour moves from the character colour towards white


@dataclass(frozen=True)
class FaceAnchor:
    """Where a character's mouth sits, in the model's own frame."""

    mouth: tuple[float, float, float]  # a point on the front of the head, at mouth height
    forward: tuple[float, float, float]  # the way the face looks
    head_radius: float  # metres; mouths are drawn in proportion to it


def _part(mesh, color, transform=None, name: str = "") -> Part:
    if transform is not None:
        mesh = mesh.copy()
        mesh.apply_transform(transform)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    colors = np.broadcast_to(np.asarray(color, np.float32), (len(faces), 3, 3)).copy()
    return Part(np.asarray(mesh.vertices, dtype=np.float64), faces, colors, name)


def _shade(color, factor: float) -> tuple[float, float, float]:
    """Mix towards white (factor > 0) or black (factor < 0)."""
    c = np.asarray(color, dtype=np.float64)
    c = c + (1.0 - c) * factor if factor >= 0 else c * (1.0 + factor)
    return tuple(float(x) for x in np.clip(c, 0.0, 1.0))  # type: ignore[return-value]


def _upright(length: float, radius: float, x: float, y0: float, z: float = 0.0, count: int = 10):
    """A capsule standing from y0 to y0 + length (ends included) at (x, z)."""
    import trimesh

    capsule = trimesh.creation.capsule(height=max(length - 2 * radius, 1e-3), radius=radius, count=[count, count])
    # trimesh builds it along Z, centred; stand it up on Y.
    m = trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0))
    m[:3, 3] = (x, y0 + length / 2.0, z)
    return capsule, m


@lru_cache(maxsize=64)
def puppet_mesh(color: tuple[float, float, float]) -> Mesh:
    """A simple figure in `color`: legs, torso, arms, a lighter head with eyes looking +Z."""
    import trimesh

    body = tuple(color)
    legs = _shade(color, -0.35)
    skin = _shade(color, SKIN_MIX)
    parts = []
    for side in (-1, 1):
        leg, m = _upright(0.82, 0.075, side * 0.1, 0.0)
        parts.append(_part(leg, legs, m))
        # Arms hang from the shoulders, a little apart from the body.
        parts.append(_part(_limb((side * 0.23, 1.26, 0.0), (side * 0.29, 0.80, 0.04), 0.055), body))
        parts.append(_part(trimesh.creation.icosphere(subdivisions=1, radius=0.06), skin, _at(side * 0.295, 0.75, 0.045)))
    torso, m = _upright(0.68, 0.2, 0.0, 0.72)
    m = m @ np.diag([1.0, 0.72, 1.0, 1.0])  # flatten front-to-back (Y before the stand-up turn)
    parts.append(_part(torso, body, m))
    neck = trimesh.creation.cylinder(radius=0.06, height=0.12, sections=12)
    parts.append(_part(neck, skin, _at(0.0, 1.38, 0.0) @ trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0))))
    head = trimesh.creation.icosphere(subdivisions=2, radius=HEAD_RADIUS)
    parts.append(_part(head, skin, _at(0.0, HEAD_CENTER, 0.0), name="head"))
    for side in (-1, 1):
        eye = _at(side * 0.052, HEAD_CENTER + 0.035, HEAD_RADIUS * 0.86)
        parts.append(_part(trimesh.creation.icosphere(subdivisions=1, radius=0.03), (0.97, 0.97, 0.95), eye))
        pupil = _at(side * 0.052, HEAD_CENTER + 0.035, HEAD_RADIUS * 0.86 + 0.022)
        parts.append(_part(trimesh.creation.icosphere(subdivisions=1, radius=0.014), (0.05, 0.05, 0.07), pupil))
    return mesh_from_parts(parts)


def _limb(p0, p1, radius: float):
    """A capsule from point p0 to p1."""
    import trimesh

    a, b = np.asarray(p0, float), np.asarray(p1, float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    limb = trimesh.creation.capsule(height=length, radius=radius, count=[8, 8])
    limb.apply_transform(trimesh.geometry.align_vectors([0.0, 0.0, 1.0], axis / length))
    limb.apply_translation((a + b) / 2.0)
    return limb


def _at(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def model_anchor(mesh: Mesh, head_height: float | None = None) -> FaceAnchor:
    """Where the mouth of a character model is, in its own frame (the model faces +Z).

    A part named "head" gives it exactly: a little below the middle of its front. Without
    one, the head is guessed as the model's top around `head_height` (a hint, ignored when
    it is off the model) and its front as the furthest +Z point there, near the middle.
    """
    if mesh.head is not None:
        lo, hi = mesh.head
        r = float(max(hi[0] - lo[0], 1e-3)) / 2.0
        half_h = float(max(hi[1] - lo[1], 1e-3)) / 2.0
        cx, cy = float(lo[0] + hi[0]) / 2.0, float(lo[1] + hi[1]) / 2.0
        return FaceAnchor((cx, cy - 0.42 * half_h, float(hi[2]) - 0.08 * r), (0.0, 0.0, 1.0), r)
    points = mesh.positions.reshape(-1, 3).astype(np.float64)
    lo, hi = points.min(axis=0), points.max(axis=0)
    height = max(hi[1] - lo[1], 1e-6)
    head_r = float(np.clip(0.075 * height, 0.04, 0.3))
    if not head_height or not (lo[1] + 0.5 * height <= head_height <= hi[1] - 0.5 * head_r):
        head_height = hi[1] - head_r
    band = points[np.abs(points[:, 1] - head_height) < head_r]
    if band.size == 0:
        band = points[points[:, 1] >= head_height - head_r]
    cx = float(np.median(band[:, 0]))
    middle = band[np.abs(band[:, 0] - cx) < 0.6 * head_r]
    front = float((middle if middle.size else band)[:, 2].max())
    return FaceAnchor((cx, head_height - 0.42 * head_r, front), (0.0, 0.0, 1.0), head_r)
