"""Look-at targets that name a character resolve to its face once the stage knows it."""

import numpy as np

from storybuild.backends.embedded.stage3d import Actor, framed_camera


def _actor(character: str, mouth) -> Actor:
    return Actor(character, 1, np.asarray(mouth, dtype=float), np.array([0.0, 0.0, 1.0]), 0.2, mouths=None)


def test_named_look_at_without_actors_uses_the_planners_point():
    cam = framed_camera({"look_at": {"character": "pip", "point": [0, 1.45, 0]},
                         "keyframes": [{"at": 1, "look_at": {"character": "pip", "point": [1, 1, 1]}}]}, [])
    assert cam["look_at"] == [0, 1.45, 0]
    assert cam["keyframes"][0]["look_at"] == [1, 1, 1]


def test_named_look_at_aims_at_the_real_face():
    cam = framed_camera({"look_at": {"character": "pip", "point": [0, 1.45, 0]}}, [],
                        [_actor("pip", [0.0, 0.8, 0.3])])
    assert np.allclose(cam["look_at"], [0.0, 0.9, 0.3])  # just above the mouth


def test_unset_look_at_frames_the_cast():
    cam = framed_camera({}, [{"position": [-1, 0, 0]}, {"position": [1, 0, 0]}])
    assert np.allclose(cam["look_at"][0], 0.0) and cam["look_at"][1] > 1.0
