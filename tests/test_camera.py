"""Camera: lens → field of view, look-at, each move, keyframes, easing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from storybuild.backends.embedded.camera import EASINGS, camera_at, ease, fov_from_lens
from storybuild.errors import BackendError

ASPECT = 16 / 9
ORIGIN = np.array([[0.0, 0.0, 0.0]])


def cam(move=None, keyframes=(), lens=35.0, position=(0.0, 0.0, 5.0), look_at=(0.0, 0.0, 0.0)):
    return {"lens": lens, "position": list(position), "look_at": None if look_at is None else list(look_at),
            "move": move, "keyframes": list(keyframes)}


def end_of(params, duration=2.0):
    return camera_at(params, duration, duration, ASPECT)


def test_lens_gives_horizontal_fov_on_full_frame():
    assert math.degrees(fov_from_lens(18.0)) == pytest.approx(90.0)
    assert math.degrees(fov_from_lens(50.0)) == pytest.approx(39.6, abs=0.05)
    with pytest.raises(BackendError):
        fov_from_lens(0.0)


def test_vertical_fov_follows_aspect():
    c = camera_at(cam(), 0.0, 1.0, ASPECT)
    assert math.tan(c.fov_y / 2) == pytest.approx(math.tan(c.fov_x / 2) / ASPECT)


@pytest.mark.parametrize("name", sorted(EASINGS))
def test_easing_endpoints_and_monotony(name):
    assert ease(name, 0.0) == 0.0
    assert ease(name, 1.0) == 1.0
    values = [ease(name, t / 20) for t in range(21)]
    assert values == sorted(values)
    assert ease(name, -1.0) == 0.0 and ease(name, 2.0) == 1.0


def test_easing_shapes_and_unknown_name():
    assert ease("ease-in", 0.5) < 0.5 < ease("ease-out", 0.5)
    assert ease("ease-in-out", 0.5) == pytest.approx(0.5)
    with pytest.raises(BackendError, match="unknown easing"):
        ease("bounce", 0.5)


def test_look_at_centres_the_target():
    c = camera_at(cam(position=(3.0, 2.0, 4.0), look_at=(1.0, 0.5, -1.0)), 0.0, 1.0, ASPECT)
    ndc, depth = c.project([[1.0, 0.5, -1.0]])
    assert ndc[0] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert depth[0] == pytest.approx(math.dist((3, 2, 4), (1, 0.5, -1)))
    right, _ = c.project([c.target + c.right])
    assert right[0, 0] > 0
    behind, d = c.project([c.position - c.forward])
    assert d[0] < 0


def test_static_does_not_move():
    a = camera_at(cam({"type": "static"}), 0.0, 2.0, ASPECT)
    b = end_of(cam({"type": "static"}))
    assert np.allclose(a.view, b.view) and a.lens == b.lens


def test_dolly_moves_along_the_view():
    c = end_of(cam({"type": "dolly", "distance": 2.0, "easing": "linear"}))
    assert c.position == pytest.approx([0.0, 0.0, 3.0])
    assert c.project(ORIGIN)[1][0] == pytest.approx(3.0)


def test_truck_moves_sideways_so_the_scene_slides_left():
    c = end_of(cam({"type": "truck", "distance": 1.0}))
    assert c.position == pytest.approx([1.0, 0.0, 5.0])
    assert c.project(ORIGIN)[0][0, 0] < 0


def test_pedestal_rises_keeping_the_view_level():
    c = end_of(cam({"type": "pedestal", "distance": 1.0}))
    assert c.position[1] == pytest.approx(1.0)
    assert c.forward == pytest.approx([0.0, 0.0, -1.0])
    assert c.project(ORIGIN)[0][0, 1] < 0


def test_crane_rises_keeping_the_target_framed():
    c = end_of(cam({"type": "crane", "distance": 2.0}))
    assert c.position[1] == pytest.approx(2.0)
    assert c.project(ORIGIN)[0][0] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_pan_right_and_tilt_up():
    pan = end_of(cam({"type": "pan", "angle": 20.0}))
    assert pan.position == pytest.approx([0.0, 0.0, 5.0])
    assert pan.forward[0] > 0 and pan.project(ORIGIN)[0][0, 0] < 0
    tilt = end_of(cam({"type": "tilt", "angle": 15.0}))
    assert tilt.forward[1] == pytest.approx(math.sin(math.radians(15.0)))
    assert tilt.project(ORIGIN)[0][0, 1] < 0


def test_tilt_stops_short_of_vertical():
    c = end_of(cam({"type": "tilt", "angle": 170.0}))
    assert math.degrees(math.asin(c.forward[1])) == pytest.approx(85.0)


def test_orbit_circles_the_target():
    c = end_of(cam({"type": "orbit", "angle": 90.0, "easing": "linear"}))
    assert c.position == pytest.approx([5.0, 0.0, 0.0], abs=1e-9)
    assert c.project(ORIGIN)[0][0] == pytest.approx([0.0, 0.0], abs=1e-9)
    half = camera_at(cam({"type": "orbit", "angle": 90.0, "easing": "linear"}), 1.0, 2.0, ASPECT)
    assert np.linalg.norm(half.position) == pytest.approx(5.0)


def test_zoom_changes_the_lens_and_enlarges_the_picture():
    start = camera_at(cam({"type": "zoom", "lens_to": 70.0}), 0.0, 2.0, ASPECT)
    c = end_of(cam({"type": "zoom", "lens_to": 70.0}))
    assert c.lens == pytest.approx(70.0) and c.position == pytest.approx(start.position)
    p = [[0.5, 0.0, 0.0]]
    assert c.project(p)[0][0, 0] == pytest.approx(2 * start.project(p)[0][0, 0])


def test_move_eases_over_the_duration():
    params = cam({"type": "dolly", "distance": 2.0, "easing": "ease-in"})
    quarter = camera_at(params, 0.5, 2.0, ASPECT)
    assert quarter.position[2] == pytest.approx(5.0 - 2.0 * 0.25 ** 2)


def test_unknown_move_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown camera move"):
        end_of(cam({"type": "whip"}))


def test_keyframes_fraction_and_seconds_hold_and_ease():
    keys = [{"at": 0.5, "position": [2.0, 0.0, 5.0], "easing": "linear"},
            {"time": 4.0, "position": [4.0, 0.0, 5.0], "lens": 50.0, "easing": "linear"}]
    params = cam(keyframes=keys, look_at=None)
    at = lambda t: camera_at(params, t, 4.0, ASPECT)  # noqa: E731
    assert at(0.0).position == pytest.approx([0.0, 0.0, 5.0])
    assert at(1.0).position == pytest.approx([1.0, 0.0, 5.0])
    assert at(2.0).position == pytest.approx([2.0, 0.0, 5.0])
    assert at(3.0).position == pytest.approx([3.0, 0.0, 5.0])
    assert at(3.0).lens == pytest.approx(35.0 + 15.0 * 0.75)
    assert at(9.0).position == pytest.approx([4.0, 0.0, 5.0])


def test_unset_look_at_looks_towards_the_stage():
    c = camera_at(cam(position=(0.0, 1.6, 6.0), look_at=None), 0.0, 1.0, ASPECT)
    assert c.project([[0.0, 1.0, 0.0]])[0][0] == pytest.approx([0.0, 0.0], abs=1e-9)
