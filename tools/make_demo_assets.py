#!/usr/bin/env python3
"""Write the demo film's 3D models (assets/models/*.glb) from code, deterministically.

    python tools/make_demo_assets.py [--out assets/models]

Every model is metres, Y up, standing on y = 0, its front towards +Z. Colours are glTF
PBR base colours per part; lamps and lit windows carry an emissive factor so the
embedded renderer draws them glowing. Characters name their head part "head": the
renderer draws the talking mouth on the front of that part.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import trimesh
from trimesh.visual.material import PBRMaterial

ROOT = Path(__file__).resolve().parents[1]
UP = trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0))  # trimesh's Z axis → our Y axis


def rgb(hex_color: str) -> list[int]:
    h = hex_color.lstrip("#")
    return [int(h[i:i + 2], 16) for i in (0, 2, 4)] + [255]


def at(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    return trimesh.transformations.translation_matrix((x, y, z))


def yaw(degrees: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(math.radians(degrees), (0, 1, 0))


def roll(degrees: float) -> np.ndarray:
    return trimesh.transformations.rotation_matrix(math.radians(degrees), (0, 0, 1))


def frustum(r0: float, r1: float, y0: float, y1: float, sections: int = 20, cap: bool = True) -> trimesh.Trimesh:
    """A (truncated) cone standing on Y from radius r0 at y0 to r1 at y1."""
    profile = [[r0, y0], [r1, y1]]
    if cap:
        profile = [[0.0, y0]] + profile + [[0.0, y1]]
    mesh = trimesh.creation.revolve(np.array(profile), sections=sections)
    mesh.apply_transform(UP)
    if mesh.volume < 0:  # keep outward-facing winding whichever way the profile ran
        mesh.invert()
    return mesh


def cylinder(radius: float, y0: float, y1: float, sections: int = 16) -> trimesh.Trimesh:
    return frustum(radius, radius, y0, y1, sections)


def box(sx: float, sy: float, sz: float, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> trimesh.Trimesh:
    """A box of size (sx, sy, sz) whose bottom centre is at (x, y, z)."""
    return trimesh.creation.box((sx, sy, sz), transform=at(x, y + sy / 2.0, z))


def sphere(radius: float, x: float = 0.0, y: float = 0.0, z: float = 0.0, subdivisions: int = 2) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius).apply_transform(at(x, y, z))


def capsule(p0, p1, radius: float, count: int = 8) -> trimesh.Trimesh:
    """A capsule whose axis runs from point p0 to p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    length = float(np.linalg.norm(axis))
    mesh = trimesh.creation.capsule(height=max(length, 1e-3), radius=radius, count=[count, count])
    align = trimesh.geometry.align_vectors([0, 0, 1], axis / length)
    mesh.apply_transform(align)
    mesh.apply_translation((p0 + p1) / 2.0)
    return mesh


class Model:
    """Named, coloured parts collected into one glTF scene."""

    def __init__(self) -> None:
        self.scene = trimesh.Scene()
        self.count: dict[str, int] = {}

    def add(self, name: str, mesh: trimesh.Trimesh, color: str, glow: float = 0.0) -> None:
        n = self.count.get(name, 0)
        self.count[name] = n + 1
        node = name if n == 0 else f"{name}_{n}"
        c = rgb(color)
        material = PBRMaterial(name=node, baseColorFactor=c, metallicFactor=0.0, roughnessFactor=0.85,
                               emissiveFactor=[v / 255.0 * glow for v in c[:3]] if glow else None)
        mesh = mesh.copy()
        mesh.visual = trimesh.visual.TextureVisuals(material=material)
        self.scene.add_geometry(mesh, node_name=node, geom_name=node)

    def save(self, path: Path) -> tuple[int, int]:
        data = self.scene.export(file_type="glb")
        path.write_bytes(data)
        faces = sum(len(g.faces) for g in self.scene.geometry.values())
        return len(data), faces


# --------------------------------------------------------------------------- set pieces


def lighthouse() -> Model:
    m = Model()
    m.add("plinth", cylinder(1.8, 0.0, 0.5, 20), "#8a8478")
    bands = 6
    height, r_base, r_top = 8.0, 1.4, 0.95
    for i in range(bands):
        y0 = 0.5 + height * i / bands
        y1 = 0.5 + height * (i + 1) / bands
        r0 = r_base + (r_top - r_base) * i / bands
        r1 = r_base + (r_top - r_base) * (i + 1) / bands
        m.add("band", frustum(r0, r1, y0, y1, 20, cap=False), "#f4f1ea" if i % 2 == 0 else "#c8262c")
    m.add("door", box(0.7, 1.3, 0.12, 0.0, 0.5, r_base - 0.02), "#3c2a20")
    for y in (3.6, 6.2):
        m.add("window", box(0.35, 0.55, 0.1, 0.0, y, r_base + (r_top - r_base) * (y - 0.5) / height - 0.02),
              "#ffd27a", glow=0.9)
    top = 0.5 + height
    m.add("gallery", cylinder(1.45, top, top + 0.18, 20), "#2e2e33")
    for k in range(12):
        a = 2 * math.pi * k / 12
        m.add("rail", cylinder(0.03, top + 0.18, top + 0.8, 6).apply_transform(at(1.35 * math.cos(a), 0, 1.35 * math.sin(a))),
              "#2e2e33")
    m.add("railtop", frustum(1.4, 1.4, top + 0.78, top + 0.84, 20, cap=False), "#2e2e33")
    m.add("lantern", cylinder(0.75, top + 0.18, top + 1.35, 16), "#fff2b0", glow=1.0)
    m.add("roof", frustum(0.95, 0.05, top + 1.35, top + 2.0, 16), "#b02028")
    m.add("vane", cylinder(0.04, top + 2.0, top + 2.5, 6), "#2e2e33")
    return m


def cottage() -> Model:
    m = Model()
    w, d, h = 5.0, 4.0, 2.6
    m.add("walls", box(w, h, d), "#efe6d2")
    # A gable roof: a triangular prism, ridge along X.
    ridge = h + 1.6
    v = np.array([[-w / 2 - 0.3, h - 0.05, -d / 2 - 0.35], [w / 2 + 0.3, h - 0.05, -d / 2 - 0.35],
                  [w / 2 + 0.3, h - 0.05, d / 2 + 0.35], [-w / 2 - 0.3, h - 0.05, d / 2 + 0.35],
                  [-w / 2 - 0.3, ridge, 0.0], [w / 2 + 0.3, ridge, 0.0]])
    f = np.array([[0, 4, 5], [0, 5, 1], [3, 2, 5], [3, 5, 4], [0, 3, 4], [1, 5, 2], [0, 1, 2], [0, 2, 3]])
    roof = trimesh.Trimesh(v, f, process=False)
    roof.fix_normals()
    m.add("roof", roof, "#8c3b2e")
    m.add("chimney", box(0.5, 1.4, 0.5, 1.5, h + 0.7, -0.6), "#7a6f66")
    m.add("door", box(0.9, 1.9, 0.1, -1.2, 0.0, d / 2), "#5a3a24")
    for x in (0.4, 1.6):
        m.add("window", box(0.8, 0.7, 0.08, x, 1.1, d / 2 + 0.01), "#ffcf6a", glow=0.8)
        m.add("sill", box(1.0, 0.08, 0.2, x, 1.02, d / 2 + 0.02), "#ffffff")
    m.add("window", box(0.08, 0.7, 0.8, w / 2 + 0.01, 1.1, 0.0), "#ffcf6a", glow=0.8)
    m.add("step", box(1.2, 0.15, 0.5, -1.2, 0.0, d / 2 + 0.25), "#8a8478")
    return m


def boat() -> Model:
    """A small sailing dinghy about 3.6 m long, bow towards +Z."""
    m = Model()
    length, beam, depth = 3.6, 1.3, 0.55
    n_sec, n_pts = 13, 9
    rings = []
    for i in range(n_sec):
        z = -length / 2 + length * i / (n_sec - 1)
        s = z / (length / 2)
        half = beam / 2 * math.sqrt(max(0.0, 1 - (s if s > 0 else s * 0.55) ** 2)) + 0.02
        keel = depth * (1.0 - 0.35 * s * s)
        ring = []
        for k in range(n_pts):
            a = math.pi * k / (n_pts - 1)  # 0 → starboard rim, π → port rim, through the keel
            ring.append([half * math.cos(a), 0.75 - keel * math.sin(a), z])
        rings.append(ring)
    v = np.array(rings, float).reshape(-1, 3)
    faces = []
    for i in range(n_sec - 1):
        for k in range(n_pts - 1):
            a, b = i * n_pts + k, i * n_pts + k + 1
            c, d = (i + 1) * n_pts + k + 1, (i + 1) * n_pts + k
            faces += [[a, b, c], [a, c, d]]
    hull = trimesh.Trimesh(v, np.array(faces), process=False)
    m.add("hull", hull, "#2f5f8f")
    inner = hull.copy()
    inner.apply_transform(trimesh.transformations.scale_matrix(0.97, origin=(0, 0.75, 0)))
    inner.invert()
    m.add("inside", inner, "#b48a5a")
    m.add("stripe", box(0.04, 0.08, length * 0.8, beam / 2 - 0.02, 0.67, 0), "#f2f2f2")
    m.add("stripe", box(0.04, 0.08, length * 0.8, -beam / 2 + 0.02, 0.67, 0), "#f2f2f2")
    for z in (-0.7, 0.5):
        m.add("bench", box(beam * 0.9, 0.05, 0.3, 0, 0.55, z), "#c89a64")
    m.add("mast", cylinder(0.045, 0.3, 4.0, 8).apply_transform(at(0, 0, 0.6)), "#a87b4f")
    sail = trimesh.Trimesh([[0, 0.9, 0.55], [0, 3.8, 0.55], [0, 0.95, -1.3]], [[0, 1, 2], [0, 2, 1]], process=False)
    m.add("sail", sail, "#f3eee0")
    return m


def rock() -> Model:
    m = Model()
    rng = np.random.default_rng(7)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    v = mesh.vertices * (1.0 + rng.uniform(-0.18, 0.18, size=(len(mesh.vertices), 1)))
    v *= np.array([1.4, 0.9, 1.1])
    v[:, 1] = np.maximum(v[:, 1], -0.2) + 0.2
    m.add("rock", trimesh.Trimesh(v, mesh.faces, process=False), "#75706a")
    moss = trimesh.creation.icosphere(subdivisions=1, radius=0.5)
    m.add("moss", moss.apply_transform(at(0.3, 0.95, 0.1) @ np.diag([1.6, 0.35, 1.4, 1.0])), "#5d7048")
    return m


def pier() -> Model:
    """Wooden planks running back from z = +2 to z = -6, 3 m wide, deck top at 4 cm."""
    m = Model()
    z = 2.0
    i = 0
    while z > -6.0:
        colour = ("#9a6b42", "#8a5e39", "#a77749")[i % 3]
        m.add("plank", box(3.0, 0.04, 0.26, 0.0, 0.0, z - 0.13), colour)
        z -= 0.29
        i += 1
    for x in (-1.45, 1.45):
        m.add("beam", box(0.14, 0.06, 8.0, x, 0.0, -2.0), "#6e4a2c")
        for zz in (1.8, -1.0, -3.8):
            m.add("post", cylinder(0.11, 0.0, 0.9, 10).apply_transform(at(x, 0, zz)), "#6b4a30")
            m.add("cap", sphere(0.12, x, 0.9, zz, 1), "#6b4a30")
    m.add("rope", capsule((1.45, 0.7, 1.8), (1.45, 0.7, -1.0), 0.025, 6), "#d8c8a0")
    m.add("rope", capsule((-1.45, 0.7, 1.8), (-1.45, 0.7, -1.0), 0.025, 6), "#d8c8a0")
    return m


def table() -> Model:
    m = Model()
    m.add("top", box(1.3, 0.05, 0.8, 0, 0.70, 0), "#8b5a33")
    for x in (-0.58, 0.58):
        for z in (-0.33, 0.33):
            m.add("leg", box(0.06, 0.70, 0.06, x, 0.0, z), "#6f4527")
    return m


def lamp() -> Model:
    m = Model()
    m.add("base", cylinder(0.1, 0.0, 0.03, 16), "#b08a3a")
    m.add("stem", cylinder(0.015, 0.03, 0.32, 8), "#b08a3a")
    m.add("bulb", sphere(0.045, 0.0, 0.31, 0.0, 1), "#fff6c8", glow=1.0)
    m.add("shade", frustum(0.16, 0.09, 0.24, 0.42, 16, cap=False), "#f0d9a0", glow=0.55)
    return m


def tree() -> Model:
    m = Model()
    m.add("trunk", frustum(0.22, 0.12, 0.0, 2.4, 10), "#6b4a2e")
    m.add("branch", capsule((0.0, 1.8, 0.0), (0.7, 2.5, 0.2), 0.07, 6), "#6b4a2e")
    for (x, y, z, r) in ((0.0, 3.1, 0.0, 1.3), (0.7, 2.7, 0.3, 0.9), (-0.6, 2.8, -0.2, 0.95), (0.1, 3.9, 0.1, 0.85)):
        m.add("leaves", sphere(r, x, y, z, 2), "#3f6e36")
    return m


# --------------------------------------------------------------------------- characters


def eyes(m: Model, head_y: float, head_r: float, spread: float = 0.36, size: float = 0.2) -> None:
    for side in (-1, 1):
        x = side * spread * head_r
        z = head_r * 0.87
        m.add("eye", sphere(head_r * size, x, head_y + head_r * 0.18, z, 1), "#f7f7f2")
        m.add("pupil", sphere(head_r * size * 0.5, x, head_y + head_r * 0.18, z + head_r * size * 0.75, 1), "#14141a")


def person(m: Model, height: float, coat: str, legs: str, skin: str, shoes: str, coat_flare: float) -> tuple[float, float]:
    """A figure `height` tall; returns (head centre y, head radius)."""
    s = height / 1.7
    hip, shoulder = 0.82 * s, 1.36 * s
    head_r = 0.13 * s
    head_y = shoulder + 0.06 * s + head_r * 1.05
    for side in (-1, 1):
        x = side * 0.1 * s
        m.add("leg", capsule((x, 0.1 * s, 0), (x, hip, 0), 0.07 * s), legs)
        m.add("shoe", box(0.13 * s, 0.08 * s, 0.26 * s, x, 0.0, 0.04 * s), shoes)
        m.add("arm", capsule((side * 0.26 * s, shoulder - 0.04 * s, 0), (side * 0.31 * s, hip - 0.02 * s, 0.05 * s),
                             0.055 * s), coat)
        m.add("hand", sphere(0.055 * s, side * 0.31 * s, hip - 0.08 * s, 0.05 * s, 1), skin)
    m.add("coat", frustum(0.2 * s + coat_flare, 0.19 * s, hip - coat_flare * 1.8, shoulder, 16), coat)
    m.add("shoulders", sphere(1.0, 0, 0, 0, 2).apply_transform(at(0, shoulder, 0) @ np.diag([0.25 * s, 0.09 * s, 0.17 * s, 1])),
          coat)
    m.add("neck", cylinder(0.05 * s, shoulder, shoulder + 0.1 * s, 10), skin)
    m.add("head", sphere(head_r, 0, head_y, 0, 2), skin)
    m.add("nose", sphere(head_r * 0.14, 0, head_y - head_r * 0.02, head_r * 0.98, 1), skin)
    eyes(m, head_y, head_r)
    return head_y, head_r


def mara() -> Model:
    m = Model()
    head_y, r = person(m, 1.72, "#e8b820", "#3b3f4a", "#e9c4a0", "#2a2522", 0.12)
    m.add("braid", capsule((0, head_y, -r * 0.9), (0.02, head_y - 0.45, -r * 1.3), 0.04, 6), "#9a9a9a")
    m.add("hair", sphere(r * 1.04, 0, head_y + r * 0.12, -r * 0.1, 2), "#a8a8a8")
    m.add("brim", frustum(r * 1.9, r * 1.5, head_y + r * 0.55, head_y + r * 0.75, 18), "#e8b820")
    m.add("hat", frustum(r * 1.05, r * 0.8, head_y + r * 0.7, head_y + r * 1.35, 14), "#e8b820")
    for k in range(3):
        m.add("button", sphere(0.02, 0, 1.0 + 0.13 * k, 0.2, 1), "#3a3024")
    return m


def theo() -> Model:
    m = Model()
    head_y, r = person(m, 1.38, "#3a6ee0", "#4a4030", "#f0cca8", "#803a2a", 0.0)
    m.add("hair", sphere(r * 1.06, 0, head_y + r * 0.18, -r * 0.12, 2), "#6a4426")
    m.add("collar", frustum(r * 0.85, r * 0.6, head_y - r * 1.6, head_y - r * 1.35, 12), "#f2f2f2")
    return m


def pip() -> Model:
    """A small orange lamp-robot on a wheel: boxy body, round head with a lamp on top."""
    m = Model()
    m.add("wheel", trimesh.creation.cylinder(radius=0.16, height=0.12, sections=16).apply_transform(
        at(0, 0.16, 0) @ trimesh.transformations.rotation_matrix(math.pi / 2, (0, 1, 0))), "#2c2c30")
    m.add("fork", box(0.08, 0.25, 0.08, 0, 0.12, 0), "#6b6b70")
    m.add("body", box(0.46, 0.42, 0.34, 0, 0.32, 0), "#f07820")
    m.add("panel", box(0.26, 0.18, 0.02, 0, 0.42, 0.17), "#ffd9a8")
    m.add("neck", cylinder(0.05, 0.74, 0.84, 10), "#6b6b70")
    for side in (-1, 1):
        m.add("arm", capsule((side * 0.26, 0.68, 0), (side * 0.36, 0.45, 0.08), 0.04, 6), "#6b6b70")
        m.add("claw", sphere(0.055, side * 0.37, 0.42, 0.09, 1), "#f07820")
    head_y, r = 1.0, 0.18
    m.add("head", sphere(r, 0, head_y, 0, 2), "#ffb066")
    m.add("visor", sphere(1.0, 0, 0, 0, 2).apply_transform(at(0, head_y + 0.05, r * 0.55) @ np.diag([r * 0.8, r * 0.32, r * 0.5, 1])),
          "#1d2230")
    for side in (-1, 1):
        m.add("eye", sphere(r * 0.12, side * r * 0.35, head_y + 0.06, r * 0.98, 1), "#9ff0ff", glow=0.9)
    m.add("antenna", cylinder(0.015, head_y + r * 0.9, head_y + r * 0.9 + 0.14, 6), "#6b6b70")
    m.add("lamp", sphere(0.05, 0, head_y + r * 0.9 + 0.17, 0, 1), "#fff1a0", glow=1.0)
    return m


MODELS = {
    "lighthouse": lighthouse, "cottage": cottage, "boat": boat, "rock": rock, "pier": pier, "lamp": lamp,
    "table": table, "tree": tree, "mara": mara, "theo": theo, "pip": pip,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "models")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        size, faces = build().save(args.out / f"{name}.glb")
        print(f"{name}.glb: {faces} triangles, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
