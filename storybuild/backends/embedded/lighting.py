"""Light and sky for a time of day: sun direction and colour, ambient fill, sky gradient, haze.

A scene's `time` ("dawn", "day", "sunset", "night", "18:30", …) picks a preset; a
`lighting` preset id that names one of them ("golden-hour", "moonlight", …) overrides it;
a `background` colour other than the manifest's default becomes the sky itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

import numpy as np

from storybuild.errors import BackendError

RGB = tuple[float, float, float]


def parse_color(value: str | None, default: str = "#888888") -> RGB:
    """'#rrggbb' (or '#rgb') → (r, g, b) in 0..1."""
    text = (value or default).strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if not re.fullmatch(r"[0-9a-fA-F]{6}", text):
        raise BackendError(f"not a colour: {value!r}", hint="write colours as '#rrggbb'")
    return tuple(int(text[i:i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def _default_background() -> str:
    from storybuild.model import Scene

    return next(f.default for f in fields(Scene) if f.name == "background")


@dataclass(frozen=True)
class Lighting:
    """Everything the renderer needs to light a scene and draw its sky."""

    sky_top: RGB
    sky_horizon: RGB
    sun_elevation: float  # degrees above the horizon
    sun_azimuth: float  # degrees, 0 = from +Z (behind the default camera), 90 = from +X
    sun_color: RGB  # multiplies albedo where the sun hits square-on
    ambient_sky: RGB  # fill from above
    ambient_ground: RGB  # fill from below (bounce)
    haze: float = 0.004  # fog density per metre, towards the horizon colour
    sun_glow: float = 0.5  # strength of the glow drawn around the sun in the sky

    @property
    def sun_direction(self) -> np.ndarray:
        """Unit vector from the scene towards the sun (or the moon)."""
        el, az = math.radians(self.sun_elevation), math.radians(self.sun_azimuth)
        return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


PRESETS: dict[str, Lighting] = {
    "dawn": Lighting((0.36, 0.44, 0.62), (0.95, 0.70, 0.55), 8, -70, (1.00, 0.74, 0.60),
                     (0.42, 0.44, 0.56), (0.22, 0.18, 0.18), 0.006, 0.8),
    "morning": Lighting((0.40, 0.62, 0.86), (0.82, 0.89, 0.94), 28, -50, (1.00, 0.94, 0.84),
                        (0.42, 0.48, 0.58), (0.22, 0.20, 0.17), 0.004, 0.5),
    "day": Lighting((0.27, 0.53, 0.85), (0.74, 0.85, 0.94), 52, 35, (1.00, 0.97, 0.90),
                    (0.40, 0.46, 0.56), (0.22, 0.21, 0.18), 0.003, 0.3),
    "afternoon": Lighting((0.32, 0.55, 0.84), (0.84, 0.86, 0.86), 35, 60, (1.00, 0.92, 0.78),
                          (0.40, 0.44, 0.52), (0.24, 0.21, 0.16), 0.004, 0.4),
    "sunset": Lighting((0.30, 0.35, 0.58), (0.98, 0.62, 0.34), 7, 75, (1.00, 0.64, 0.36),
                       (0.40, 0.36, 0.48), (0.26, 0.18, 0.14), 0.006, 1.0),
    "dusk": Lighting((0.13, 0.16, 0.34), (0.58, 0.40, 0.46), 6, 85, (0.72, 0.52, 0.52),
                     (0.40, 0.40, 0.54), (0.16, 0.13, 0.16), 0.008, 0.6),
    "night": Lighting((0.02, 0.03, 0.08), (0.09, 0.12, 0.21), 40, -30, (0.34, 0.42, 0.62),
                      (0.12, 0.14, 0.24), (0.05, 0.05, 0.08), 0.010, 0.2),
    "overcast": Lighting((0.55, 0.58, 0.62), (0.78, 0.79, 0.80), 60, 20, (0.45, 0.46, 0.48),
                         (0.62, 0.63, 0.66), (0.30, 0.30, 0.30), 0.010, 0.0),
    "interior": Lighting((0.16, 0.15, 0.14), (0.26, 0.24, 0.22), 55, 30, (0.95, 0.86, 0.70),
                         (0.40, 0.38, 0.36), (0.22, 0.20, 0.18), 0.0, 0.0),
}

ALIASES = {
    "noon": "day", "midday": "day", "daytime": "day", "sunrise": "dawn", "early-morning": "dawn",
    "golden-hour": "sunset", "golden": "sunset", "evening": "dusk", "twilight": "dusk",
    "blue-hour": "dusk", "midnight": "night", "moonlight": "night", "nighttime": "night",
    "cloudy": "overcast", "rain": "overcast", "storm": "overcast", "fog": "overcast",
    "indoor": "interior", "indoors": "interior", "studio": "interior",
}


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _clock(name: str) -> str | None:
    """'18:30' → the preset for that hour."""
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?", name)
    if not m or int(m[1]) > 24:
        return None
    hour = int(m[1]) + int(m[2] or 0) / 60.0
    for end, preset in ((5, "night"), (7, "dawn"), (10, "morning"), (15, "day"), (17, "afternoon"),
                        (19, "sunset"), (21, "dusk"), (24.01, "night")):
        if hour < end:
            return preset
    return "night"


def preset_name(name: str | None) -> str | None:
    """The preset a time or lighting name refers to, or None when it names none."""
    if not name:
        return None
    key = _key(name)
    key = ALIASES.get(key, key)
    if key in PRESETS:
        return key
    return _clock(key)


def lighting_for(time: str | None, background: str | None = None, lighting: str | None = None) -> Lighting:
    """The lighting of a shot from its scene's time, lighting preset id and background colour."""
    name = preset_name(lighting) or preset_name(time) or "day"
    result = PRESETS[name]
    if background and _key(background) != _key(_default_background()):
        bg = parse_color(background)
        top = tuple(c * 0.72 for c in bg)
        horizon = tuple(c + (1.0 - c) * 0.22 for c in bg)
        result = replace(result, sky_top=top, sky_horizon=horizon)  # type: ignore[arg-type]
    return result


def sky_colors(light: Lighting, forward: np.ndarray, right: np.ndarray, up: np.ndarray,
               tan_x: float, tan_y: float, width: int, height: int, pixels: np.ndarray | None = None) -> np.ndarray:
    """Sky colours (N, 3 uint8 sRGB) of the flat pixel indices `pixels` (all when None) of a view.

    The view ray of pixel (x, y) is forward + x·right + y·up in an orthonormal basis, so
    its length and its dot products come from the pixel's two screen coordinates alone.
    """
    if pixels is None:
        pixels = np.arange(width * height)
    row, col = np.divmod(pixels, width)
    xs = col.astype(np.float32)
    xs *= np.float32(2.0 * tan_x / width)
    xs += np.float32((1.0 / width - 1.0) * tan_x)
    ys = row.astype(np.float32)
    ys *= np.float32(-2.0 * tan_y / height)
    ys += np.float32((1.0 - 1.0 / height) * tan_y)
    inv_len = xs * xs
    inv_len += ys * ys
    inv_len += np.float32(1.0)
    np.sqrt(inv_len, out=inv_len)
    np.reciprocal(inv_len, out=inv_len)

    def along(axis: np.ndarray) -> np.ndarray:
        a = np.asarray(axis, np.float64)
        v = xs * np.float32(right @ a)
        v += ys * np.float32(up @ a)
        v += np.float32(forward @ a)
        v *= inv_len
        return v

    elevation = along(np.array([0.0, 1.0, 0.0]))
    top, horizon = np.array(light.sky_top, np.float32), np.array(light.sky_horizon, np.float32)
    # sqrt makes the horizon band narrow and the zenith colour dominate, as a real sky does;
    # below the horizon (past the ground's edge) the haze darkens a little: by 1 + clip(e, -1/4, 0).
    s = np.clip(elevation, 0.0, 1.0)
    np.sqrt(s, out=s)
    below = np.clip(elevation, -0.25, 0.0)
    below += np.float32(1.0)
    sky = np.multiply.outer(s * below, top - horizon)
    sky += np.multiply.outer(below, horizon)
    if light.sun_glow > 0:
        # glow = k·(cos⁴⁸ + cos⁶/4), powers by squaring: np.power costs ten multiplications
        cos = np.clip(along(light.sun_direction), 0.0, 1.0)
        c6 = cos * cos
        c6 *= cos
        c6 *= c6
        c48 = c6 * c6
        c48 *= c48
        c48 *= c48
        c6 *= np.float32(0.25)
        c48 += c6
        c48 *= np.float32(light.sun_glow * 0.6)
        sky += np.multiply.outer(c48, np.array(light.sun_color, np.float32))
    np.clip(sky, 0.0, 1.0, out=sky)
    sky *= np.float32(255.0)
    sky += np.float32(0.5)
    return sky.astype(np.uint8)
