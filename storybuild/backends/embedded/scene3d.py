"""3D scenes for shots: models loaded once per process, placed, lit-ready, with a ground.

A Mesh is a model in its own frame (metres, Y up, front towards +Z) as a triangle soup
with per-corner normals and colours. Placing a mesh (position, yaw or XYZ rotation in
degrees, scale) turns it into render3d Geometry in world space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from storybuild.backends.embedded.render3d import CHECKER, EMISSIVE, PLAIN, Geometry

CREASE_DEGREES = 40.0  # faces meeting at a sharper angle keep a hard edge


@dataclass(frozen=True, eq=False)
class Mesh:
    """A model as triangles (F,3,3): corner positions, unit normals and sRGB colours."""

    positions: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    emissive: np.ndarray  # (F,) bool: glowing faces (lamps)
    head: np.ndarray | None = None  # bounds (2,3) of the parts named "head", if any

    @property
    def bounds(self) -> np.ndarray:
        """[[xmin, ymin, zmin], [xmax, ymax, zmax]]."""
        p = self.positions.reshape(-1, 3)
        return np.stack([p.min(axis=0), p.max(axis=0)])

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])


def crease_normals(vertices: np.ndarray, faces: np.ndarray, crease_degrees: float = CREASE_DEGREES) -> np.ndarray:
    """Per-corner normals (F,3,3): smooth across edges flatter than `crease_degrees`, hard elsewhere.

    Vertices are first welded by position, so files split at UV seams still shade smoothly.
    Each corner averages (by area) the normals of the faces around its vertex that lie
    within the crease angle of its own face.
    """
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(cross, axis=1, keepdims=True)
    unit = cross / np.where(length < 1e-20, 1.0, length)
    _, weld = np.unique(np.round(vertices, 6), axis=0, return_inverse=True)
    corner_vertex = weld.reshape(-1)[faces].reshape(-1)
    corner_face = np.repeat(np.arange(len(faces)), 3)
    order = np.argsort(corner_vertex, kind="stable")
    sorted_vertex = corner_vertex[order]
    group_start = np.searchsorted(sorted_vertex, sorted_vertex, side="left")
    group_size = np.searchsorted(sorted_vertex, sorted_vertex, side="right") - group_start
    # Every (corner, neighbour corner at the same vertex) pair, vectorized.
    pair_i = np.repeat(np.arange(order.size), group_size)
    pair_j = group_start[pair_i] + (np.arange(pair_i.size) - np.repeat(np.cumsum(group_size) - group_size, group_size))
    fi, fj = corner_face[order[pair_i]], corner_face[order[pair_j]]
    close = (unit[fi] * unit[fj]).sum(axis=1) >= math.cos(math.radians(crease_degrees))
    acc = np.zeros((order.size, 3))
    np.add.at(acc, pair_i[close], cross[fj[close]])  # area-weighted: |cross| = 2·area
    normals = np.empty((order.size, 3))
    normals[order] = acc
    normals = normals.reshape(-1, 3, 3)
    n = np.linalg.norm(normals, axis=2, keepdims=True)
    flat = np.repeat(unit[:, None, :], 3, axis=1)
    return np.where(n > 1e-20, normals / np.where(n > 1e-20, n, 1.0), flat).astype(np.float32)


def mesh_from_parts(parts: Sequence[Any]) -> Mesh:
    """A Mesh from coloured parts (vertices, faces, per-corner colours)."""
    positions, normals, colors, emissive, heads = [], [], [], [], []
    for part in parts:
        corners = part.vertices[part.faces].astype(np.float32)
        positions.append(corners)
        normals.append(crease_normals(part.vertices, part.faces))
        colors.append(np.asarray(part.colors, np.float32))
        emissive.append(np.full(len(part.faces), bool(getattr(part, "emissive", False))))
        if "head" in getattr(part, "name", "").lower():
            heads.append(corners.reshape(-1, 3))
    head = None
    if heads:
        pts = np.concatenate(heads)
        head = np.stack([pts.min(axis=0), pts.max(axis=0)]).astype(np.float64)
    return Mesh(np.concatenate(positions), np.concatenate(normals), np.concatenate(colors),
                np.concatenate(emissive), head)


def _vec3(value: Any, default: float) -> np.ndarray:
    if value is None:
        return np.full(3, default, dtype=np.float64)
    if isinstance(value, (int, float)):
        return np.full(3, float(value))
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    return arr if arr.shape == (3,) else np.full(3, float(arr[0]) if arr.size else default)


def rotation_matrix(degrees_xyz: Sequence[float]) -> np.ndarray:
    """Rotation about X, then Y, then Z (fixed axes), angles in degrees."""
    ax, ay, az = (math.radians(float(a)) for a in degrees_xyz)
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def placement_matrix(position: Any = None, rotation: Any = None, scale: Any = None, facing: float | None = None) -> np.ndarray:
    """4×4 model → world matrix: scale, then rotate (XYZ degrees, or a yaw `facing`), then move."""
    rot = rotation_matrix(_vec3(rotation, 0.0))
    if facing is not None:
        rot = rotation_matrix((0.0, float(facing), 0.0)) @ rot
    m = np.eye(4)
    m[:3, :3] = rot * _vec3(scale, 1.0)[None, :]
    m[:3, 3] = _vec3(position, 0.0)
    return m


def place(mesh: Mesh, matrix: np.ndarray, object_id: int, pattern: int = PLAIN) -> Geometry:
    """The mesh in world space as render Geometry tagged with `object_id`."""
    lin = matrix[:3, :3]
    positions = (mesh.positions @ lin.T.astype(np.float32)) + matrix[:3, 3].astype(np.float32)
    # Normals transform by the inverse transpose, so non-uniform scale keeps them perpendicular.
    normal_m = np.linalg.inv(lin).T.astype(np.float32)
    normals = mesh.normals @ normal_m.T
    normals /= np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-12)
    if np.linalg.det(lin) < 0:  # a mirroring scale flips the winding
        positions, normals = positions[:, ::-1], normals[:, ::-1]
    patterns = np.where(mesh.emissive, EMISSIVE, pattern).astype(np.uint8)
    return Geometry(positions.astype(np.float32), normals.astype(np.float32), mesh.colors.astype(np.float32),
                    patterns, np.full(mesh.count, object_id, np.int32))


def ground(color: Sequence[float], center: Sequence[float] = (0.0, 0.0), radius: float = 400.0,
           object_id: int = 0) -> Geometry:
    """A flat ground disc at y = 0 (a fan of 32 slices) drawn with a tile pattern."""
    n = 32
    ang = np.linspace(0.0, 2 * math.pi, n + 1)
    rim = np.stack([center[0] + radius * np.cos(ang), np.zeros(n + 1), center[1] + radius * np.sin(ang)], axis=1)
    mid = np.array([center[0], 0.0, center[1]])
    # Winding (centre, next, this) faces up (+Y).
    positions = np.stack([np.broadcast_to(mid, (n, 3)), rim[1:], rim[:-1]], axis=1).astype(np.float32)
    normals = np.broadcast_to(np.array([0.0, 1.0, 0.0], np.float32), positions.shape).copy()
    colors = np.broadcast_to(np.asarray(color, np.float32), positions.shape).copy()
    return Geometry(positions, normals, colors, np.full(n, CHECKER, np.uint8), np.full(n, object_id, np.int32))
