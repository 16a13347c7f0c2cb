"""Mouth shapes: drawn at any size, read from a folder with Rhubarb's fallbacks, placed on 3D faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from storybuild.backends.embedded.camera import camera_at
from storybuild.backends.embedded.mouths import ASPECT, SHAPES, MouthSet, draw_mouth, mouth_set_for, overlay_3d, paste
from storybuild.errors import BackendError


def opening(shape: str, width: int = 80) -> int:
    """How many pixels of a drawn shape are opaque."""
    return int((np.asarray(draw_mouth(shape, width))[:, :, 3] > 128).sum())


@pytest.mark.parametrize("width", [6, 24, 120])
def test_every_shape_draws_at_any_size(width):
    for shape in SHAPES:
        img = draw_mouth(shape, width)
        assert img.mode == "RGBA" and img.size == (width, round(width * ASPECT))
        assert np.asarray(img)[:, :, 3].max() > 0


def test_shapes_are_distinct_and_open_in_order():
    arrays = {s: np.asarray(draw_mouth(s, 64)) for s in SHAPES}
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert not np.array_equal(arrays[a], arrays[b]), (a, b)
    assert opening("A") < opening("C") < opening("D")
    assert opening("F") < opening("E")


def test_teeth_show_in_b_and_tongue_in_d():
    b = np.asarray(draw_mouth("B", 100)).reshape(-1, 4)
    d = np.asarray(draw_mouth("D", 100)).reshape(-1, 4)
    white = lambda a: ((a[:, :3].min(axis=1) > 230) & (a[:, 3] > 200)).sum()  # noqa: E731
    pink = lambda a: ((a[:, 0] > 190) & (a[:, 1] < 130) & (a[:, 3] > 200)).sum()  # noqa: E731
    assert white(b) > 100 and pink(d) > 100 and pink(b) == 0


def test_unknown_shape_or_style_is_an_error():
    with pytest.raises(BackendError):
        draw_mouth("Q", 20)
    with pytest.raises(BackendError, match="unknown mouth set"):
        MouthSet(style="muppet")


def _write_set(folder, shapes, size=(40, 20)):
    folder.mkdir()
    for i, s in enumerate(shapes):
        Image.new("RGBA", size, (i * 20, 255 - i * 20, 7, 255)).save(folder / f"mara-{s}.png")


def test_folder_set_scales_and_falls_back_like_rhubarb(tmp_path):
    _write_set(tmp_path / "set", "ABCDEF")
    mouths = mouth_set_for("mouths:set", {"mouths:set": tmp_path / "set"})
    sprite = mouths.sprite("C", 20)
    assert sprite.shape == (10, 20, 4) and tuple(sprite[5, 10, :3]) == (40, 215, 7)
    assert mouths.resolve("G") == "B" and mouths.resolve("H") == "C" and mouths.resolve("X") == "A"
    assert np.array_equal(mouths.sprite("G", 20), mouths.sprite("B", 20))


def test_folder_set_missing_basic_shapes(tmp_path):
    _write_set(tmp_path / "set", "ABC")
    with pytest.raises(BackendError, match="D.png"):
        MouthSet(directory=tmp_path / "set")
    with pytest.raises(BackendError):
        mouth_set_for("mouths:other", {})


def test_paste_blends_and_clips_at_the_border():
    frame = np.zeros((10, 10, 3), np.uint8)
    sprite = np.zeros((4, 4, 4), np.uint8)
    sprite[..., 0] = 255
    sprite[..., 3] = 255
    sprite[0, 0, 3] = 0
    paste(frame, sprite, 0.0, 0.0)  # three quarters off the frame
    assert frame[:2, :2, 0].tolist() == [[255, 255], [255, 255]]
    assert frame[2:, :, 0].sum() == 0 and frame[:, 2:, 0].sum() == 0


def _face_scene(depth_value: float):
    camera = camera_at({"lens": 35, "position": [0, 1.5, 3], "look_at": [0, 1.5, 0]}, 0, 1, 16 / 9)
    frame = np.full((90, 160, 3), 128, np.uint8)
    depth = np.full((90, 160), depth_value, np.float32)
    objects = np.full((90, 160), 7, np.int32)
    return camera, frame, depth, objects


def test_overlay_draws_a_mouth_on_a_visible_face():
    camera, frame, depth, objects = _face_scene(3.0)
    mouth = np.array([0.0, 1.5, 0.0])
    assert overlay_3d(frame, depth, objects, camera, mouth, np.array([0, 0, 1.0]), 0.15, 7, MouthSet(), "D")
    changed = np.argwhere((frame != 128).any(axis=2))
    assert changed.size and abs(changed[:, 1].mean() - 80) < 2 and abs(changed[:, 0].mean() - 45) < 2


def test_overlay_skips_faces_turned_away_or_hidden():
    camera, frame, depth, objects = _face_scene(3.0)
    mouth = np.array([0.0, 1.5, 0.0])
    assert not overlay_3d(frame, depth, objects, camera, mouth, np.array([0, 0, -1.0]), 0.15, 7, MouthSet(), "D")
    camera, frame, depth, objects = _face_scene(1.0)  # something else, nearer, covers the face
    assert not overlay_3d(frame, depth, objects, camera, mouth, np.array([0, 0, 1.0]), 0.15, 3, MouthSet(), "D")
    assert (frame == 128).all()
