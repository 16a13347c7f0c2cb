"""A deterministic CPU renderer for animatics: lit triangles, sky, haze, and a toon look.

Lighting is computed once per shot in linear light, per triangle corner, for both sides
of every face (the scene does not move; only the camera does). Each frame then picks the
side facing the camera, clips against the near plane, rasterizes (raster.py) and shades
the visible pixels with perspective-correct interpolation. The toon look quantizes the
light into bands and draws black outlines where depth, object or surface angle break.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from storybuild.backends.embedded.camera import NEAR, FAR, CameraState
from storybuild.backends.embedded.lighting import Lighting, sky_colors
from storybuild.backends.embedded.raster import clip_near, decode, edge_setup, rasterize

PLAIN, CHECKER, EMISSIVE = 0, 1, 2  # surface patterns: plain, ground tiles, glowing
OUTLINE = np.array([0.06, 0.05, 0.05], np.float32)
_TOON_BANDS = np.array([0.0, 0.12, 0.55], np.float32)  # n·l thresholds for 3 flat light levels
_TOON_LEVELS = np.array([0.0, 0.5, 1.0], np.float32)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


# linear light → sRGB byte through a table: a pow per pixel would cost more than the raster.
_LUT_SIZE = 4096
_TO_SRGB = np.clip(np.round(255.0 * np.where(
    (x := np.linspace(0.0, 1.0, _LUT_SIZE)) <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)), 0, 255
).astype(np.uint8)


def linear_to_srgb8(c: np.ndarray) -> np.ndarray:
    """Linear colours 0..1 (any shape) → sRGB uint8."""
    index = np.multiply(c, np.float32(_LUT_SIZE - 1), dtype=np.float32)
    index += np.float32(0.5)
    np.clip(index, 0, _LUT_SIZE - 1, out=index)
    return np.take(_TO_SRGB, index.astype(np.uint16))


@dataclass
class Geometry:
    """World-space triangles with per-corner normals and sRGB albedo (0..1)."""

    positions: np.ndarray  # (T,3,3) float32
    normals: np.ndarray  # (T,3,3) float32 unit normals
    colors: np.ndarray  # (T,3,3) float32 sRGB albedo
    pattern: np.ndarray  # (T,) uint8: PLAIN, CHECKER or EMISSIVE
    objects: np.ndarray  # (T,) int32: which placed object a triangle belongs to

    @staticmethod
    def concat(parts: list["Geometry"]) -> "Geometry":
        """All parts in one triangle list (in order, so the result is deterministic)."""
        if not parts:
            z = np.zeros((0, 3, 3), np.float32)
            return Geometry(z, z.copy(), z.copy(), np.zeros(0, np.uint8), np.zeros(0, np.int32))
        return Geometry(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("positions", "normals", "colors", "pattern", "objects")))

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])


@dataclass(frozen=True)
class RenderOptions:
    """How frames look: size, shaded or toon, supersampling, back faces."""

    width: int
    height: int
    look: str = "shaded"  # shaded | toon
    supersample: int = 1  # render at N× and average down (anti-aliasing)
    cull_backfaces: bool = False  # only for models whose winding is consistent
    checker_size: float = 2.0  # metres per ground tile


@dataclass
class Frame:
    """A rendered frame: sRGB pixels plus what the z-buffer knew (for mouths and pans)."""

    rgb: np.ndarray  # (H,W,3) uint8
    depth: np.ndarray  # (H,W) float32 view depth in metres, inf where sky
    objects: np.ndarray  # (H,W) int32 object id, -1 where sky


@dataclass
class Renderer:
    """Renders one static scene from any camera."""

    geometry: Geometry
    lighting: Lighting
    options: RenderOptions

    def __post_init__(self) -> None:
        g, light = self.geometry, self.lighting
        albedo = srgb_to_linear(g.colors)
        n = g.normals.astype(np.float32)
        self._face_n = _unit(n.sum(axis=1))
        e1 = g.positions[:, 1] - g.positions[:, 0]
        e2 = g.positions[:, 2] - g.positions[:, 0]
        self._winding_n = np.cross(e1, e2).astype(np.float32)
        self._centroid = g.positions.mean(axis=1).astype(np.float32)
        self._toon = self.options.look == "toon"
        self._sun_dir = light.sun_direction.astype(np.float32)
        self._sun = srgb_to_linear(np.array(light.sun_color, np.float32))
        self._amb_sky = srgb_to_linear(np.array(light.ambient_sky, np.float32))
        self._amb_ground = srgb_to_linear(np.array(light.ambient_ground, np.float32))
        glow = (g.pattern == EMISSIVE)[:, None, None]
        self._checker = (g.pattern == CHECKER).astype(np.float32)
        self._front = self._corners(albedo, n, glow)
        self._back = self._corners(albedo, -n, glow)
        self._haze_color = srgb_to_linear(np.array(light.sky_horizon, np.float32))

    def _corners(self, albedo: np.ndarray, n: np.ndarray, glow: np.ndarray) -> np.ndarray:
        """Per-corner shading inputs for faces seen from the side their normals point to.

        Shaded: the lit linear colour (3 channels), smooth across corners (Gouraud).
        Toon: albedo, n·l, how far the normal points up, and glow (6 channels), so the
        light can be snapped into bands per pixel, where the band edges come out curved.
        """
        ndl = (n @ self._sun_dir)[..., None]
        up = np.clip(n[..., 1:2] * 0.5 + 0.5, 0.0, 1.0)  # hemisphere fill: sky above, bounce below
        if self._toon:
            return np.concatenate([albedo, ndl, up, np.broadcast_to(glow, ndl.shape)], axis=2).astype(np.float32)
        lit = albedo * self._light(np.clip(ndl, 0.0, 1.0), up)
        return np.where(glow, albedo, lit).astype(np.float32)  # lamps shine whatever the light

    def _light(self, ndl: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Linear light arriving at a surface: hemisphere ambient plus the sun."""
        return self._amb_ground + (self._amb_sky - self._amb_ground) * up + ndl * self._sun

    def render(self, camera: CameraState) -> Frame:
        """One frame seen from `camera`."""
        opt = self.options
        ss = max(1, int(opt.supersample))
        w, h = opt.width * ss, opt.height * ss
        g = self.geometry
        eye = camera.position.astype(np.float32)
        facing = np.einsum("ij,ij->i", self._face_n, eye - self._centroid) >= 0
        keep = np.ones(g.count, bool)
        if opt.cull_backfaces:
            keep &= np.einsum("ij,ij->i", self._winding_n, eye - self._centroid) > 0
        view_m = camera.view.astype(np.float32)
        pv = g.positions @ view_m[:3, :3].T + view_m[:3, 3]
        tx, ty = np.tan(camera.fov_x / 2.0), np.tan(camera.fov_y / 2.0)
        z = pv[:, :, 2]
        depth = -z
        # Drop triangles wholly behind the near plane, beyond the far plane, or outside a side.
        keep &= ~(depth <= NEAR).all(axis=1) & ~(depth > FAR).all(axis=1)
        keep &= ~(pv[:, :, 0] > depth * tx * 1.02 + 0.01).all(axis=1)
        keep &= ~(pv[:, :, 0] < -depth * tx * 1.02 - 0.01).all(axis=1)
        keep &= ~(pv[:, :, 1] > depth * ty * 1.02 + 0.01).all(axis=1)
        keep &= ~(pv[:, :, 1] < -depth * ty * 1.02 - 0.01).all(axis=1)
        sel = np.flatnonzero(keep)
        color = np.where(facing[sel, None, None], self._front[sel], self._back[sel])
        pv, attrs, src = clip_near(pv[sel], color, NEAR)
        src = sel[src]
        inv = 1.0 / (-pv[:, :, 2].astype(np.float64))
        sx = (pv[:, :, 0] * inv / tx + 1.0) * (w / 2.0)
        sy = (1.0 - pv[:, :, 1] * inv / ty) * (h / 2.0)
        edges = edge_setup(sx, sy)  # shared by the z-buffer and the shading planes
        zkey = rasterize(sx, sy, inv, w, h, edges)
        idx, tri, invw = decode(zkey)

        objects = np.full(h * w, -1, np.int32)
        objects[idx] = g.objects[src[tri]]
        lit = self._shade_pixels(idx, tri, invw, edges, inv, attrs, src, w, h, view_m, tx, ty)
        up = np.cross(camera.right, camera.forward)
        out = np.empty((h * w, 3), np.uint8)
        out[idx] = linear_to_srgb8(lit)
        empty = np.flatnonzero(zkey == 0)
        out[empty] = sky_colors(self.lighting, camera.forward, camera.right, up, tx, ty, w, h, empty)
        invw_img = np.zeros(h * w, np.float32)
        invw_img[idx] = invw
        out = out.reshape(h, w, 3)
        if opt.look == "toon":
            tri_img = np.full(h * w, -1, np.int64)
            tri_img[idx] = src[tri]
            edges = _outlines(objects.reshape(h, w), tri_img.reshape(h, w), invw_img.reshape(h, w), self._face_n)
            out[edges] = np.round(OUTLINE * 255).astype(np.uint8)
        return _downsample(out, invw_img.reshape(h, w), objects.reshape(h, w), ss)

    def _shade_pixels(self, idx, tri, invw, edges, inv, attrs, src, w, h, view, tan_x, tan_y) -> np.ndarray:
        """Linear colour of each covered pixel: perspective-correct corners, ground pattern, haze.

        Everything here runs once per pixel, so it avoids strided views and scattered
        writes: each operation streams over contiguous (N,) or (N, C) arrays.
        """
        # An attribute divided by w is affine in screen space, so each triangle gets one
        # plane per channel and a pixel's value is (plane at x, y) / (1/w at x, y).
        row, column = np.divmod(idx, w)
        x = column.astype(np.float32)
        x += np.float32(0.5 - w / 2.0)
        y = row.astype(np.float32)
        y += np.float32(0.5 - h / 2.0)
        depth = 1.0 / invw
        pa, pb, pc = _attribute_planes(edges, w, h, inv, attrs)
        col = np.take(pa, tri, axis=0)
        col *= x[:, None]
        col += np.take(pb, tri, axis=0) * y[:, None]
        col += np.take(pc, tri, axis=0)
        col *= depth[:, None]
        if self._toon:
            band = np.maximum(np.searchsorted(_TOON_BANDS, col[:, 3], side="right") - 1, 0)  # n·l < 0: darkest
            level = _TOON_LEVELS[band]
            lit = col[:, :3] * self._light(level[:, None], np.clip(col[:, 4:5], 0.0, 1.0))
            glow = col[:, 5:6] > 0.5
            col = np.where(glow, col[:, :3], lit)
        ground = np.take(self._checker, np.take(src, tri))
        if ground.any():
            col *= self._tile_shade(x, y, depth, ground, view, tan_x / (w / 2.0), tan_y / (h / 2.0))[:, None]
        haze = self.lighting.haze
        if haze > 0:
            f = np.exp(np.float32(-haze) * depth)  # how much of the surface survives the haze
            col -= self._haze_color
            col *= f[:, None]
            col += self._haze_color
        return col

    def _tile_shade(self, x, y, depth, ground, view, px_x, px_y) -> np.ndarray:
        """Per pixel, 1 off the ground and the checker's darkening on it (faded with distance)."""
        # A pixel's world point is eye + depth·(x·X + y·Y + forward), X and Y the right and
        # up axes scaled to one pixel at unit depth: no per-triangle planes needed.
        cam = np.asarray(view, np.float64)
        right, up, forward = cam[0, :3], cam[1, :3], -cam[2, :3]
        eye = -cam[:3, :3].T @ cam[:3, 3]
        size = float(self.options.checker_size)
        cells = []
        for axis in (0, 2):
            a, b, c = right[axis] * px_x, -up[axis] * px_y, forward[axis]
            world = x * np.float32(a / size)
            world += y * np.float32(b / size)
            world += np.float32(c / size)
            world *= depth
            world += np.float32(eye[axis] / size)
            cells.append(np.floor(world, out=world).astype(np.int32))
        cells[0] += cells[1]
        cells[0] &= 1
        odd = cells[0].astype(np.float32)
        # Fade the tiles out with distance, where they would only alias into moiré.
        contrast = np.clip(np.float32(1.0) - depth / np.float32(60.0), 0.0, 1.0)
        contrast *= np.float32(0.12)
        contrast *= odd
        contrast *= ground
        return np.float32(1.0) - contrast


def _attribute_planes(edges: tuple[np.ndarray, ...], w: int, h: int, inv: np.ndarray, values: np.ndarray):
    """Per triangle, the planes value/w = A·x + B·y + C over the screen, x and y measured from its
    centre (small numbers keep float32 exact enough): A, B, C each (T, C) float32."""
    a, b, c, area = edges
    c = c + a * (w / 2.0) + b * (h / 2.0)  # the edge functions moved to centred coordinates
    weight = values.astype(np.float64) * (inv / area[:, None])[:, :, None]  # (T,3 corners,C)
    return tuple(np.einsum("tk,tkc->tc", e, weight).astype(np.float32) for e in (a, b, c))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.where(n < 1e-12, 1.0, n)).astype(np.float32)


def _outlines(objects: np.ndarray, tris: np.ndarray, invw: np.ndarray, face_n: np.ndarray) -> np.ndarray:
    """Pixels on a silhouette, an object boundary, a depth break or a crease (> ~45°)."""
    normal = np.where((tris >= 0)[..., None], face_n[np.maximum(tris, 0)], 0.0)
    covered = objects >= 0
    edge = np.zeros(objects.shape, bool)
    for axis in (0, 1):
        a, b = (slice(None, -1), slice(1, None))
        first = (a, slice(None)) if axis == 0 else (slice(None), a)
        second = (b, slice(None)) if axis == 0 else (slice(None), b)
        brk = objects[first] != objects[second]  # silhouettes and object boundaries
        both = (tris[first] >= 0) & (tris[second] >= 0)
        brk |= both & ((normal[first] * normal[second]).sum(axis=-1) < 0.7)  # creases
        # 1/w is linear across a plane, so its second difference is ~0 except at depth breaks.
        mid = (slice(1, -1), slice(None)) if axis == 0 else (slice(None), slice(1, -1))
        lo = (slice(None, -2), slice(None)) if axis == 0 else (slice(None), slice(None, -2))
        hi = (slice(2, None), slice(None)) if axis == 0 else (slice(None), slice(2, None))
        jump = (np.abs(invw[lo] + invw[hi] - 2 * invw[mid]) > 0.06 * invw[mid]) & covered[mid]
        if axis == 0:
            brk[:-1] |= jump
        else:
            brk[:, :-1] |= jump
        edge[first] |= brk  # mark both sides: lines two pixels wide read at small sizes
        edge[second] |= brk
    return edge


def _downsample(out: np.ndarray, invw: np.ndarray, objects: np.ndarray, ss: int) -> Frame:
    """Average ss×ss blocks into final pixels; keep the nearest depth and its object per block."""
    h, w = out.shape[0] // ss, out.shape[1] // ss
    if ss > 1:
        out = (out.reshape(h, ss, w, ss, 3).astype(np.float32).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
        blocks = invw.reshape(h, ss, w, ss).transpose(0, 2, 1, 3).reshape(h, w, ss * ss)
        pick = blocks.argmax(axis=2)
        invw = np.take_along_axis(blocks, pick[..., None], axis=2)[..., 0]
        ob = objects.reshape(h, ss, w, ss).transpose(0, 2, 1, 3).reshape(h, w, ss * ss)
        objects = np.take_along_axis(ob, pick[..., None], axis=2)[..., 0]
    with np.errstate(divide="ignore"):
        depth = np.where(invw > 0, 1.0 / np.maximum(invw, 1e-30), np.inf).astype(np.float32)
    return Frame(np.ascontiguousarray(out), depth, objects)
