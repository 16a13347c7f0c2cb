"""The software renderer: depth order, near-plane clipping, looks, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from storybuild.backends.embedded.camera import NEAR, camera_at
from storybuild.backends.embedded.lighting import lighting_for
from storybuild.backends.embedded.raster import clip_near
from storybuild.backends.embedded.render3d import Geometry, Renderer, RenderOptions
from storybuild.backends.embedded.scene3d import ground

W, H = 96, 54
RED, BLUE = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9)


def geometry(mesh: trimesh.Trimesh, color, object_id: int) -> Geometry:
    n = len(mesh.faces)
    return Geometry(mesh.vertices[mesh.faces].astype(np.float32),
                    np.repeat(mesh.face_normals[:, None, :], 3, axis=1).astype(np.float32),
                    np.broadcast_to(np.asarray(color, np.float32), (n, 3, 3)).copy(),
                    np.zeros(n, np.uint8), np.full(n, object_id, np.int32))


def cube(center, color, object_id, size=1.0) -> Geometry:
    return geometry(trimesh.creation.box((size, size, size), transform=trimesh.transformations.translation_matrix(center)),
                    color, object_id)


def two_cubes() -> Geometry:
    return Geometry.concat([cube((0, 0.5, 1.0), RED, 1), cube((0, 0.5, -1.0), BLUE, 2)])


def view(position, look_at=(0.0, 0.5, 0.0), lens=35.0):
    return camera_at({"lens": lens, "position": list(position), "look_at": list(look_at)}, 0.0, 1.0, W / H)


def renderer(geom, look="shaded", **kw) -> Renderer:
    return Renderer(geom, lighting_for("day"), RenderOptions(W, H, look, **kw))


def centre(frame):
    return frame.rgb[H // 2, W // 2].astype(int)


def test_nearer_surface_wins_from_either_side():
    r = renderer(two_cubes())
    front = r.render(view((0.0, 0.5, 6.0)))
    back = r.render(view((0.0, 0.5, -6.0)))
    assert centre(front)[0] > 2 * centre(front)[2]  # red cube in front
    assert centre(back)[2] > 2 * centre(back)[0]  # blue cube in front
    assert front.objects[H // 2, W // 2] == 1 and back.objects[H // 2, W // 2] == 2
    assert front.depth[H // 2, W // 2] == pytest.approx(6.0 - 1.5, abs=0.05)


def test_sky_where_nothing_is_drawn_and_infinite_depth():
    frame = renderer(two_cubes()).render(view((0.0, 0.5, 6.0)))
    assert frame.objects[0, 0] == -1 and np.isinf(frame.depth[0, 0])
    top = frame.rgb[0, 0].astype(int)
    assert top[2] > top[0]  # a day sky is blue


def test_ten_frame_orbit_is_deterministic():
    r = renderer(two_cubes())
    params = {"lens": 35, "position": [0, 1.5, 5], "look_at": [0, 0.5, 0], "move": {"type": "orbit", "angle": 90}}
    first = [r.render(camera_at(params, t / 9, 1.0, W / H)).rgb.tobytes() for t in range(10)]
    again = [renderer(two_cubes()).render(camera_at(params, t / 9, 1.0, W / H)).rgb.tobytes() for t in range(10)]
    assert first == again
    assert len(set(first)) == 10  # the camera moves, so every frame differs


def test_clip_near_splits_triangles_by_corners_inside():
    view_tris = np.array([
        [[0, 0, -2], [1, 0, -2], [0, 1, -2]],  # all in front: kept
        [[0, 0, -2], [1, 0, 1], [0, 1, 1]],  # one corner in front: one triangle
        [[0, 0, -2], [1, 0, -2], [0, 1, 1]],  # two in front: a quad, two triangles
        [[0, 0, 1], [1, 0, 1], [0, 1, 1]],  # behind: dropped
    ], np.float32)
    attrs = np.arange(4 * 3, dtype=np.float32).reshape(4, 3, 1)
    out, out_attrs, src = clip_near(view_tris, attrs, NEAR)
    assert sorted(src.tolist()) == [0, 1, 2, 2]
    assert (out[:, :, 2] <= -NEAR + 1e-6).all()
    assert np.isfinite(out_attrs).all()
    # Winding is kept: every clipped triangle faces the same way as its source.
    normal = lambda t: np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])[:, 2]  # noqa: E731
    assert (np.sign(normal(out)) == np.sign(normal(view_tris[src]))).all()


def test_ground_through_the_camera_plane_is_clipped_not_garbled():
    geom = Geometry.concat([ground((0.4, 0.6, 0.3)), cube((0, 0.5, 0), RED, 1)])
    frame = renderer(geom).render(view((0.0, 1.0, 4.0), look_at=(0.0, 0.5, 0.0)))
    assert np.isfinite(frame.depth[frame.objects >= 0]).all()
    assert (frame.objects[-1] == 0).all()  # the ground fills the bottom row, right under the camera
    assert frame.depth[-1].max() < 3.0
    assert (frame.objects[0] == -1).all()  # sky at the top
    assert frame.objects[H // 2, W // 2] == 1


def test_triangle_straddling_the_camera_renders_its_visible_part():
    big = Geometry(np.array([[[-5, 0, 5], [5, 0, 5], [0, 0, -5]]], np.float32),
                   np.tile(np.array([0, 1, 0], np.float32), (1, 3, 1)),
                   np.full((1, 3, 3), 0.5, np.float32), np.zeros(1, np.uint8), np.zeros(1, np.int32))
    frame = renderer(big).render(view((0.0, 0.5, 0.0), look_at=(0.0, 0.3, -2.0)))
    covered = frame.objects == 0
    assert covered[-1].any() and not covered[0].any()
    assert np.isfinite(frame.depth[covered]).all() and (frame.depth[covered] > 0).all()


def test_toon_draws_outlines_around_shapes():
    shaded = renderer(two_cubes()).render(view((2.0, 2.0, 5.0)))
    toon = renderer(two_cubes(), look="toon").render(view((2.0, 2.0, 5.0)))
    dark = lambda f: (f.rgb.max(axis=2) < 40).sum()  # noqa: E731
    assert dark(toon) > dark(shaded) + 20
    silhouette = np.argwhere(toon.objects[H // 2] == 1)[0][0]
    assert toon.rgb[H // 2, silhouette].max() < 40


def test_supersampling_keeps_size_and_softens_edges():
    plain = renderer(two_cubes()).render(view((2.0, 2.0, 5.0)))
    smooth = renderer(two_cubes(), supersample=2).render(view((2.0, 2.0, 5.0)))
    assert smooth.rgb.shape == plain.rgb.shape == (H, W, 3)
    distinct = lambda f: len(np.unique(f.rgb.reshape(-1, 3), axis=0))  # noqa: E731
    assert distinct(smooth) > distinct(plain)


def test_backface_culling_changes_nothing_on_closed_meshes():
    a = renderer(two_cubes()).render(view((2.0, 2.0, 5.0)))
    b = renderer(two_cubes(), cull_backfaces=True).render(view((2.0, 2.0, 5.0)))
    assert np.array_equal(a.objects, b.objects)
    assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).max() <= 1


def test_night_is_darker_than_day():
    geom = two_cubes()
    day = Renderer(geom, lighting_for("day"), RenderOptions(W, H)).render(view((0, 0.5, 6)))
    night = Renderer(geom, lighting_for("night"), RenderOptions(W, H)).render(view((0, 0.5, 6)))
    assert night.rgb.mean() < day.rgb.mean() * 0.5


def test_toon_faces_turned_from_the_sun_are_darker():
    sun = lighting_for("day").sun_direction

    def lit_quad(normal):
        quad = trimesh.creation.box((2.0, 2.0, 0.01))
        align = trimesh.geometry.align_vectors([0, 0, 1], normal)
        quad.apply_transform(align)
        r = renderer(geometry(quad, (0.8, 0.8, 0.8), 1), look="toon")
        return int(centre(r.render(view(tuple(np.asarray(normal) * 4.0), look_at=(0.0, 0.0, 0.0)))).sum())

    assert lit_quad(-sun) < lit_quad(sun) * 0.6


def test_ground_tiles_sit_where_the_view_ray_meets_the_ground():
    # Tile parity of each ground pixel, from an independent ray-plane intersection.
    camera = view((1.3, 2.0, 5.0), look_at=(0.4, 0.0, 0.0))
    frame = Renderer(ground((0.5, 0.5, 0.5)), lighting_for("day"), RenderOptions(W, H)).render(camera)
    rows, cols = np.mgrid[0:H, 0:W]
    up = np.cross(camera.right, camera.forward)
    tx, ty = np.tan(camera.fov_x / 2), np.tan(camera.fov_y / 2)
    rays = (camera.forward + ((cols + 0.5) / W * 2 - 1)[..., None] * tx * camera.right
            + (1 - (rows + 0.5) / H * 2)[..., None] * ty * up)
    hit = camera.position - rays * (camera.position[1] / rays[..., 1])[..., None]
    cell = np.floor(hit[..., [0, 2]] / 2.0).astype(int)
    odd = (cell.sum(axis=-1) & 1) == 1
    # Keep pixels clear of tile edges, where a sub-pixel difference may flip the parity.
    frac = hit[..., [0, 2]] / 2.0 - np.floor(hit[..., [0, 2]] / 2.0)
    inner = (frame.objects == 0) & np.all((frac > 0.05) & (frac < 0.95), axis=-1)
    brightness = frame.rgb.astype(int).sum(axis=-1)
    assert inner.sum() > 500
    # A level camera sees the ground at one depth along each row: within a row, haze and
    # the tiles' fading are the same, so odd tiles are the darker ones.
    compared = 0
    for row in range(H):
        dark, light = brightness[row][inner[row] & odd[row]], brightness[row][inner[row] & ~odd[row]]
        if dark.size and light.size:
            assert dark.max() < light.min(), row
            compared += 1
    assert compared > H // 3
