"""Triangle rasterization with numpy: near-plane clipping, spans, and a packed z-buffer.

The z-buffer holds one int64 per pixel: the float32 bits of 1/w (larger is nearer; the
bit patterns of positive floats sort like the floats) in the high half and the triangle
index + 1 in the low half. `np.maximum.at` over all fragments then resolves depth and
visibility in one pass, and ties break the same way every run, so frames are bit-exact.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 3_000_000  # fragments per pass: bounds memory for screen-filling triangles
_EPS = 1e-7  # pixels: inclusive edges, so shared edges never leave cracks


def clip_near(view: np.ndarray, attrs: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip triangles against the plane z = -near (view space, camera looks down -Z).

    view (T,3,3) view-space corners; attrs (T,3,K) per-corner attributes interpolated along.
    Returns (view', attrs', source) where source maps each output triangle to its input.
    """
    inside = view[:, :, 2] < -near
    count = inside.sum(axis=1)
    keep_all = np.flatnonzero(count == 3)
    out_view, out_attrs, out_src = [view[keep_all]], [attrs[keep_all]], [keep_all]
    for n_in in (1, 2):
        sel = np.flatnonzero(count == n_in)
        if sel.size == 0:
            continue
        # Rotate corners so the odd one out (the lone inside or lone outside corner) comes
        # first; cyclic rotation keeps the winding.
        odd = inside[sel] if n_in == 1 else ~inside[sel]
        first = np.argmax(odd, axis=1)
        order = (first[:, None] + np.arange(3)[None, :]) % 3
        v = np.take_along_axis(view[sel], order[:, :, None], axis=1)
        a = np.take_along_axis(attrs[sel], order[:, :, None], axis=1)

        def cut(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
            zi, zj = v[:, i, 2], v[:, j, 2]
            t = ((-near - zi) / (zj - zi))[:, None]
            return v[:, i] + (v[:, j] - v[:, i]) * t, a[:, i] + (a[:, j] - a[:, i]) * t

        v01, a01 = cut(0, 1)
        v02, a02 = cut(0, 2)
        if n_in == 1:  # corner 0 inside: one smaller triangle
            out_view.append(np.stack([v[:, 0], v01, v02], axis=1))
            out_attrs.append(np.stack([a[:, 0], a01, a02], axis=1))
            out_src.append(sel)
        else:  # corner 0 outside: the remaining quad as two triangles
            out_view += [np.stack([v01, v[:, 1], v[:, 2]], axis=1), np.stack([v01, v[:, 2], v02], axis=1)]
            out_attrs += [np.stack([a01, a[:, 1], a[:, 2]], axis=1), np.stack([a01, a[:, 2], a02], axis=1)]
            out_src += [sel, sel]
    return np.concatenate(out_view), np.concatenate(out_attrs), np.concatenate(out_src)


def edge_setup(sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Edge functions of screen triangles (T,3): A, B, C (T,3) and |2·area| (T,).

    E_i(x, y) = A_i x + B_i y + C_i is the edge opposite corner i, oriented so it is
    positive inside whatever the winding; E_i / |2·area| is corner i's barycentric weight.
    """
    area = (sx[:, 1] - sx[:, 0]) * (sy[:, 2] - sy[:, 0]) - (sx[:, 2] - sx[:, 0]) * (sy[:, 1] - sy[:, 0])
    sign = np.where(area < 0, -1.0, 1.0)
    xa, ya = np.roll(sx, -1, axis=1), np.roll(sy, -1, axis=1)  # edge i runs corner i+1 → i+2
    xb, yb = np.roll(sx, -2, axis=1), np.roll(sy, -2, axis=1)
    a = -(yb - ya) * sign[:, None]
    b = (xb - xa) * sign[:, None]
    c = -(a * xa + b * ya)
    return a, b, c, np.abs(area)


def rasterize(sx: np.ndarray, sy: np.ndarray, invw: np.ndarray, width: int, height: int,
              edges: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Z-buffer (height*width int64 keys, 0 = empty) of screen triangles (T,3) with 1/w per corner.

    `edges` is edge_setup(sx, sy) when the caller has it already.
    """
    zkey = np.zeros(width * height, dtype=np.int64)
    a, b, c, area = edges if edges is not None else edge_setup(sx, sy)
    ymin = np.maximum(np.ceil(sy.min(axis=1) - 0.5 - _EPS), 0).astype(np.int64)
    ymax = np.minimum(np.floor(sy.max(axis=1) - 0.5 + _EPS), height - 1).astype(np.int64)
    xlo, xhi = sx.min(axis=1), sx.max(axis=1)
    ok = (area > 1e-9) & (ymax >= ymin) & (xhi >= -0.5) & (xlo <= width - 0.5)
    tris = np.flatnonzero(ok)
    if tris.size == 0:
        return zkey
    inv_area = 1.0 / area[tris]
    a, b, c = a[tris], b[tris], c[tris]
    w = invw[tris]
    # 1/w is affine in screen space: its plane is the barycentric blend of the corners' 1/w.
    pa = (a * w).sum(axis=1) * inv_area
    pb = (b * w).sum(axis=1) * inv_area
    pc = (c * w).sum(axis=1) * inv_area

    rows = ymax[tris] - ymin[tris] + 1
    pair_tri = np.repeat(np.arange(tris.size), rows)
    row = np.arange(pair_tri.size) - np.repeat(np.cumsum(rows) - rows, rows) + ymin[tris][pair_tri]
    yc = row + 0.5
    lo = np.full(pair_tri.size, -np.inf)
    hi = np.full(pair_tri.size, np.inf)
    empty = np.zeros(pair_tri.size, dtype=bool)
    for i in range(3):
        ai = a[pair_tri, i]
        val = b[pair_tri, i] * yc + c[pair_tri, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -val / ai
        lo = np.where(ai > 1e-12, np.maximum(lo, bound), lo)
        hi = np.where(ai < -1e-12, np.minimum(hi, bound), hi)
        empty |= (np.abs(ai) <= 1e-12) & (val < -_EPS)
    c0 = np.maximum(np.ceil(np.maximum(lo, -1.0) - 0.5 - _EPS), 0).astype(np.int64)
    c1 = np.minimum(np.floor(np.minimum(hi, width + 1.0) - 0.5 + _EPS), width - 1).astype(np.int64)
    count = np.where(empty, 0, np.maximum(c1 - c0 + 1, 0))
    start = pa[pair_tri] * (c0 + 0.5) + pb[pair_tri] * yc + pc[pair_tri]
    step = pa[pair_tri]
    label = (tris[pair_tri] + 1).astype(np.int64)
    base = row * width + c0
    _fill_spans(zkey, base, count, start, step, label)
    return zkey


def _fill_spans(zkey: np.ndarray, base: np.ndarray, count: np.ndarray, start: np.ndarray, step: np.ndarray,
                label: np.ndarray) -> None:
    """Write spans (first pixel, pixel count, 1/w there, its step, label) into `zkey`: the nearest wins."""
    # In chunks of whole spans, so a screen-filling triangle never needs all its fragments at once.
    ends = np.cumsum(count)
    bounds = np.searchsorted(ends, np.arange(_CHUNK, int(ends[-1]) + _CHUNK, _CHUNK), side="right")
    lo_pair = 0
    for hi_pair in list(bounds) + [count.size]:
        if hi_pair <= lo_pair:
            continue
        seg = slice(lo_pair, hi_pair)
        n = count[seg]
        total = int(n.sum())
        if total:
            offs = np.cumsum(n) - n
            j = np.arange(total, dtype=np.int64)
            k = j - np.repeat(offs, n)
            pix = np.repeat(base[seg], n) + k
            depth = (np.repeat(start[seg], n) + np.repeat(step[seg], n) * k).astype(np.float32)
            np.maximum(depth, np.float32(1e-30), out=depth)  # keep the key's sign bit clear
            key = (depth.view(np.uint32).astype(np.int64) << 32) | np.repeat(label[seg], n)
            np.maximum.at(zkey, pix, key)
        lo_pair = hi_pair


def decode(zkey: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered pixel indices, their triangle indices and their 1/w from a z-buffer."""
    idx = np.flatnonzero(zkey)
    keys = zkey[idx]
    tri = (keys & 0xFFFFFFFF).astype(np.int64) - 1
    invw = (keys >> 32).astype(np.uint32).view(np.float32)
    return idx, tri, invw
