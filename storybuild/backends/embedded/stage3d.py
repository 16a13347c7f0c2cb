"""A shot's 3D stage: ground, props and cast placed in the world, lit, with mouths on faces.

Built once per process from the shot's params and input paths. Object ids: 0 is the
ground, props follow in order, then the cast; the z-buffer's object ids tell a mouth
whether its own face is what the camera sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from storybuild.backends.embedded.camera import CameraState, camera_at
from storybuild.backends.embedded.lighting import lighting_for, parse_color
from storybuild.backends.embedded.meshcache import cached_mesh, load_model
from storybuild.backends.embedded.mouths import MouthSet, mouth_set_for, overlay_3d
from storybuild.backends.embedded.puppet import model_anchor, puppet_mesh
from storybuild.backends.embedded.render3d import Frame, Geometry, Renderer, RenderOptions
from storybuild.backends.embedded.scene3d import ground, placement_matrix, place
from storybuild.errors import BackendError

GROUND_COLOR = (0.50, 0.50, 0.40)
DEFAULT_FACE_HEIGHT = 1.45  # metres above the feet, when the planner gives none


def _placement(entry: Mapping[str, Any]) -> np.ndarray:
    """Model → world matrix of a cast member or prop ("rotation" already holds any facing)."""
    rotation = entry.get("rotation")
    if rotation is None:
        rotation = (0.0, float(entry.get("facing") or 0.0), 0.0)
    return placement_matrix(entry.get("position"), rotation, entry.get("scale"))


def _model_path(entry: Mapping[str, Any], inputs: Mapping[str, Path], what: str) -> Path:
    name = entry.get("model")
    path = inputs.get(name) if name else None
    if path is None:
        raise BackendError(f"{what} uses model {name!r}, but the shot has no such input",
                           hint="declare the model as an asset of kind model")
    return Path(path)


def aim_point(entry: Mapping[str, Any]) -> np.ndarray:
    """Roughly where a cast member's face is in the world (for pans and default framing)."""
    pos = np.asarray(entry.get("position") or (0.0, 0.0, 0.0), dtype=float)
    scale = entry.get("scale")
    s = float(scale) if isinstance(scale, (int, float)) else 1.0
    return pos + np.array([0.0, float(entry.get("head_height") or DEFAULT_FACE_HEIGHT) * s, 0.0])


def framed_camera(camera: Mapping[str, Any] | None, cast: Sequence[Mapping[str, Any]],
                  actors: Sequence["Actor"] = ()) -> dict:
    """The camera params with look-at targets as points; an unset one aims at the middle of the cast."""
    cam = aim_at_faces(camera or {}, actors)
    if cam.get("look_at") is None and cast:
        cam["look_at"] = np.mean([aim_point(c) for c in cast], axis=0).tolist()
    return cam


def aim_at_faces(camera: Mapping[str, Any], actors: Sequence["Actor"]) -> dict:
    """Camera params with look-at targets {"character": id, "point": p} turned into points.

    The planner cannot know how tall a model is, so a look-at on a character names it and
    the stage aims at that character's real face (just above its mouth) once models are
    loaded; without the actors (pans, cards) the planner's estimate `point` stands in.
    """
    faces = {a.character: a.mouth + np.array([0.0, 0.5 * a.head_radius, 0.0]) for a in actors}

    def point(target: Any) -> Any:
        if isinstance(target, Mapping):
            face = faces.get(str(target.get("character")))
            return face.tolist() if face is not None else target.get("point")
        return target

    cam = dict(camera)
    cam["look_at"] = point(cam.get("look_at"))
    cam["keyframes"] = [{**key, "look_at": point(key.get("look_at"))} for key in cam.get("keyframes") or []]
    return cam


def screen_x(camera: CameraState, point: np.ndarray) -> float:
    """NDC x (-1..1) of a world point; 0 when it is behind the camera or left or right of the frame.

    Height is not checked: a speaker whose head the frame cuts off is still where they stand.
    """
    ndc, depth = camera.project(point[None, :])
    x = float(ndc[0, 0])
    if depth[0] <= 0 or abs(x) > 1.0:
        return 0.0
    return x


@dataclass(frozen=True)
class Actor:
    """A cast member on the stage: whose it is and where its mouth is (world space)."""

    character: str
    object_id: int
    mouth: np.ndarray
    forward: np.ndarray
    head_radius: float
    mouths: MouthSet


class Stage3D:
    """The lit 3D world of one shot, rendered from its camera at any time."""

    def __init__(self, params: Mapping[str, Any], inputs: Mapping[str, Path], cache: Path | str | None = None):
        self.width, self.height = int(params["width"]), int(params["height"])
        parts: list[Geometry] = [ground(GROUND_COLOR, object_id=0)]
        next_id = 1
        for i, prop in enumerate(params.get("props") or []):
            mesh = load_model(_model_path(prop, inputs, f"prop {i}"), cache)
            parts.append(place(mesh, _placement(prop), next_id))
            next_id += 1
        self.actors: list[Actor] = []
        for member in params.get("cast") or []:
            character = str(member.get("character") or member.get("name") or f"cast{next_id}")
            if member.get("model"):
                mesh = load_model(_model_path(member, inputs, f"character {character!r}"), cache)
            else:
                color = parse_color(member.get("color"))
                mesh = cached_mesh(cache, f"puppet:{color}", lambda: puppet_mesh(color))
            matrix = _placement(member)
            parts.append(place(mesh, matrix, next_id))
            anchor = model_anchor(mesh, member.get("head_height"))
            lin = matrix[:3, :3]
            forward = lin @ np.asarray(anchor.forward)
            forward /= max(float(np.linalg.norm(forward)), 1e-9)
            scale = float(np.cbrt(abs(np.linalg.det(lin)))) or 1.0
            self.actors.append(Actor(character, next_id, lin @ np.asarray(anchor.mouth) + matrix[:3, 3], forward,
                                     anchor.head_radius * scale, mouth_set_for(member.get("mouths"), inputs)))
            next_id += 1
        self.camera_params = framed_camera(params.get("camera"), params.get("cast") or [], self.actors)
        light = lighting_for(params.get("time"), params.get("background"), params.get("lighting"))
        look = params.get("look") or "shaded"
        if look not in ("shaded", "toon"):
            raise BackendError(f"unknown render look {look!r}", hint="use shaded or toon")
        options = RenderOptions(self.width, self.height, look, int(params.get("supersample") or 1))
        self.renderer = Renderer(Geometry.concat(parts), light, options)

    def camera(self, t: float, duration: float) -> CameraState:
        """The shot's camera at `t` seconds."""
        return camera_at(self.camera_params, t, duration, self.width / self.height)

    def render(self, camera: CameraState, shapes: Mapping[str, str]) -> np.ndarray:
        """A frame from `camera` with each actor's mouth shape (rest unless in `shapes`)."""
        frame: Frame = self.renderer.render(camera)
        rgb = frame.rgb
        for actor in self.actors:
            overlay_3d(rgb, frame.depth, frame.objects, camera, actor.mouth, actor.forward, actor.head_radius,
                       actor.object_id, actor.mouths, shapes.get(actor.character, "X"))
        return rgb
