"""Perspective cameras and their paths over a shot: lens → field of view, look-at, moves, keys.

Conventions: metres, Y is up, a camera looks down its own -Z (OpenGL). A lens is a focal
length in mm on a 36 mm-wide full-frame sensor, so it fixes the horizontal field of view;
the vertical one follows from the frame's aspect.

Signs of moves (positive values): dolly goes forward, truck goes right, pedestal and crane
go up, pan turns right, tilt turns up, orbit carries the camera to its right around the
look-at point, zoom goes from `lens` to `lens_to`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from storybuild.errors import BackendError

SENSOR_WIDTH_MM = 36.0
NEAR = 0.05  # metres; the renderer clips triangles against this plane
FAR = 2000.0
DEFAULT_LENS = 35.0
DEFAULT_POSITION = (0.0, 1.6, 6.0)
UP = np.array([0.0, 1.0, 0.0])
_MAX_PITCH = math.radians(85.0)  # keep look-at away from straight up/down (no defined "right")


# --------------------------------------------------------------------------- easing


def _linear(t: float) -> float:
    return t


def _ease_in(t: float) -> float:
    return t * t


def _ease_out(t: float) -> float:
    return t * (2.0 - t)


def _ease_in_out(t: float) -> float:
    return t * t * (3.0 - 2.0 * t)


EASINGS: dict[str, Callable[[float], float]] = {
    "linear": _linear,
    "ease-in": _ease_in,
    "ease-out": _ease_out,
    "ease-in-out": _ease_in_out,
}


def ease(name: str | None, t: float) -> float:
    """Progress 0..1 → eased progress 0..1 (clamped); `name` is one of EASINGS (None → ease-in-out)."""
    fn = EASINGS.get(name or "ease-in-out")
    if fn is None:
        raise BackendError(f"unknown easing {name!r}", hint=f"use one of: {', '.join(EASINGS)}")
    return fn(min(1.0, max(0.0, float(t))))


# --------------------------------------------------------------------------- camera state


def fov_from_lens(lens_mm: float) -> float:
    """Horizontal field of view (radians) of a lens on a 36 mm-wide sensor."""
    if lens_mm <= 0:
        raise BackendError(f"camera lens must be a positive focal length in mm, got {lens_mm}")
    return 2.0 * math.atan(SENSOR_WIDTH_MM / (2.0 * lens_mm))


def _normalize(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


def look_at_matrix(eye: np.ndarray, target: np.ndarray, up: np.ndarray = UP) -> np.ndarray:
    """World → view matrix of a camera at `eye` looking at `target` (right-handed, -Z forward)."""
    f = _normalize(target - eye)
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-9:  # looking straight up or down: any horizontal right will do
        r = np.array([1.0, 0.0, 0.0])
    r = _normalize(r)
    u = np.cross(r, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = r, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


@dataclass(frozen=True, eq=False)
class CameraState:
    """Where a camera is at one instant: pose, lens, and the matrices derived from them."""

    position: np.ndarray
    target: np.ndarray
    lens: float
    aspect: float

    @cached_property
    def fov_x(self) -> float:
        return fov_from_lens(self.lens)

    @cached_property
    def fov_y(self) -> float:
        return 2.0 * math.atan(math.tan(self.fov_x / 2.0) / self.aspect)

    @cached_property
    def view(self) -> np.ndarray:
        return look_at_matrix(self.position, self.target)

    @property
    def forward(self) -> np.ndarray:
        return -self.view[2, :3]

    @property
    def right(self) -> np.ndarray:
        return self.view[0, :3]

    def project(self, points: Sequence[Sequence[float]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,3) → (NDC xy (N,2), view depth (N,)); depth ≤ 0 means behind the camera."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        v = p @ self.view[:3, :3].T + self.view[:3, 3]
        depth = -v[:, 2]
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        sx = 1.0 / math.tan(self.fov_x / 2.0)
        sy = 1.0 / math.tan(self.fov_y / 2.0)
        ndc = np.stack([v[:, 0] * sx / safe, v[:, 1] * sy / safe], axis=1)
        return ndc, depth

    def focal_px(self, width: int) -> float:
        """Focal length in pixels for a frame `width` pixels wide."""
        return width / (2.0 * math.tan(self.fov_x / 2.0))


# --------------------------------------------------------------------------- paths


def _vec(value: Any, default: Sequence[float] | None = None) -> np.ndarray | None:
    if value is None:
        return None if default is None else np.asarray(default, dtype=float)
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,):
        raise BackendError(f"camera expects an [x, y, z] point, got {value!r}")
    return arr


def default_target(position: np.ndarray) -> np.ndarray:
    """Where a camera without a look-at looks: the stage origin at 1 m (or straight ahead if above it)."""
    target = np.array([0.0, 1.0, 0.0])
    if np.hypot(*(target - position)[[0, 2]]) < 1e-3:
        return position + np.array([0.0, 0.0, -1.0])
    return target


def _rotate_y(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] + s * v[2], v[1], -s * v[0] + c * v[2]])


def _tilt(eye: np.ndarray, target: np.ndarray, angle: float) -> np.ndarray:
    """Target after tilting the view up by `angle`, keeping the pitch inside ±85°."""
    d = target - eye
    dist = float(np.linalg.norm(d))
    horiz = math.hypot(d[0], d[2])
    pitch = math.atan2(d[1], horiz) + angle
    pitch = max(-_MAX_PITCH, min(_MAX_PITCH, pitch))
    yaw_dir = np.array([d[0], 0.0, d[2]]) / horiz if horiz > 1e-9 else np.array([0.0, 0.0, -1.0])
    return eye + dist * (yaw_dir * math.cos(pitch) + UP * math.sin(pitch))


def apply_move(move: Mapping[str, Any] | None, eye: np.ndarray, target: np.ndarray, lens: float,
               progress: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Pose after `progress` (already eased, 0..1) of a move; `lens_to` zooms with any move type."""
    if not move:
        return eye, target, lens
    kind = move.get("type") or "static"
    d = float(move.get("distance") or 0.0) * progress
    a = math.radians(float(move.get("angle") or 0.0) * progress)
    forward = _normalize(target - eye)
    right = np.cross(forward, UP)
    right = _normalize(right) if np.linalg.norm(right) > 1e-9 else np.array([1.0, 0.0, 0.0])
    if kind == "dolly":
        eye, target = eye + forward * d, target + forward * d
    elif kind == "truck":
        eye, target = eye + right * d, target + right * d
    elif kind == "pedestal":
        eye, target = eye + UP * d, target + UP * d
    elif kind == "crane":
        eye = eye + UP * d
    elif kind == "pan":
        target = eye + _rotate_y(target - eye, -a)
    elif kind == "tilt":
        target = _tilt(eye, target, a)
    elif kind == "orbit":
        eye = target + _rotate_y(eye - target, a)
    elif kind not in ("static", "zoom"):
        raise BackendError(f"unknown camera move {kind!r}",
                           hint="use static, dolly, truck, pedestal, pan, tilt, orbit, crane or zoom")
    lens_to = move.get("lens_to")
    if lens_to is not None:
        lens = lens + (float(lens_to) - lens) * progress
    return eye, target, lens


def _track(points: list[tuple[float, Any, str | None]], t: float, lerp: Callable[[Any, Any, float], Any]) -> Any:
    """Value of a keyed track at t: hold before the first and after the last key, eased between."""
    if t <= points[0][0]:
        return points[0][1]
    for (t0, v0, _), (t1, v1, easing) in zip(points, points[1:]):
        if t <= t1:
            span = t1 - t0
            return lerp(v0, v1, ease(easing, (t - t0) / span) if span > 1e-9 else 1.0)
    return points[-1][1]


def _key_time(key: Mapping[str, Any], duration: float) -> float:
    """Seconds into the shot of a keyframe: `at` is a fraction of the duration, `time` seconds."""
    if key.get("at") is not None:
        return float(key["at"]) * duration
    return float(key.get("time") or 0.0)


def _keyed_pose(camera: Mapping[str, Any], t: float, duration: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Base pose at time t from the camera's position/look_at/lens and its keyframes."""
    eye0 = _vec(camera.get("position"), DEFAULT_POSITION)
    target0 = _vec(camera.get("look_at"))
    lens0 = float(camera.get("lens") or DEFAULT_LENS)
    keys = sorted(((_key_time(k, duration), k) for k in camera.get("keyframes") or ()), key=lambda p: p[0])
    tracks: dict[str, list[tuple[float, Any, str | None]]] = {
        "position": [(0.0, eye0, None)],
        "look_at": [(0.0, target0, None)],
        "lens": [(0.0, lens0, None)],
    }
    for kt, key in keys:
        for name in tracks:
            if key.get(name) is None:
                continue
            value = float(key[name]) if name == "lens" else _vec(key[name])
            track = tracks[name]
            if kt <= 1e-9:
                track[0] = (0.0, value, None)  # a key at 0 replaces the base value
            else:
                track.append((kt, value, key.get("easing")))
    lerp = lambda a, b, s: a + (b - a) * s  # noqa: E731 - the same blend for points and lenses
    eye = _track(tracks["position"], t, lerp)
    look = tracks["look_at"]
    if any(v is None for _, v, _ in look):
        # An unset look-at (at the start or in a key) means "where the camera looked by default".
        look = [(kt, default_target(_track(tracks["position"], kt, lerp)) if v is None else v, e)
                for kt, v, e in look]
    target = _track(look, t, lerp)
    return eye, target, float(_track(tracks["lens"], t, lerp))


def camera_at(params: Mapping[str, Any] | None, t: float, duration: float, aspect: float) -> CameraState:
    """The camera of a shot at time `t` (seconds) of `duration`: keyframes first, then the move."""
    camera = params or {}
    eye, target, lens = _keyed_pose(camera, t, duration)
    move = camera.get("move")
    if move:
        progress = ease(move.get("easing"), t / duration if duration > 0 else 1.0)
        eye, target, lens = apply_move(move, eye, target, lens, progress)
    if np.linalg.norm(target - eye) < 1e-6:
        target = eye + np.array([0.0, 0.0, -1.0])
    return CameraState(np.asarray(eye, dtype=float), np.asarray(target, dtype=float), float(lens), float(aspect))
