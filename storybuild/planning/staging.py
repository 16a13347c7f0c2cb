"""A shot's stage as render params: where its cast and props stand, where its camera looks.

Mixed into the film's expander (planning/film.py), which provides `m` (the Manifest),
`asset`, `asset_input` and `problems`; pure like the rest of planning.
"""

from __future__ import annotations

from storybuild.errors import Diagnostic
from storybuild.model import Asset, Input, Placement, Scene, Shot

FACE_HEIGHT = 1.45  # metres above a character's feet that a look-at aims for (scaled)


class Staging:
    """Placements and camera params of a shot (for the expander that mixes it in)."""

    def placements(self, scene: Scene, shot: Shot) -> tuple[list[dict], list[dict], list[Input], dict]:
        """Cast and props params, their model inputs, and where each ref stands (for look-at)."""
        cast, props, inputs, where = [], [], {}, {}
        for placement in (*scene.set, *shot.props, *shot.cast):
            where[placement.ref] = self.aim_point(placement)
        for placement in shot.cast:
            if placement.ref in self.m.characters:
                character = self.m.characters[placement.ref]
                model = None
                if character.model:
                    model = f"model:{character.model}"
                    inputs[model] = self.asset_input(model, character.model)
                mouths = character.mouths
                if mouths in self.m.assets:
                    inputs[f"mouths:{mouths}"] = self.asset_input(f"mouths:{mouths}", mouths)
                    mouths = f"mouths:{mouths}"
                entry = {"character": character.id, "name": character.name, "color": character.color,
                         "model": model, "mouths": mouths, "head_height": FACE_HEIGHT}
                entry.update(self.transform(placement, self.asset(character.model) if character.model else None))
                cast.append(entry)
            else:
                props.append(self.prop(placement, inputs))
        for placement in (*scene.set, *shot.props):
            props.append(self.prop(placement, inputs))
        return cast, props, list(inputs.values()), where

    def prop(self, placement: Placement, inputs: dict[str, Input]) -> dict:
        name = f"model:{placement.ref}"
        inputs[name] = self.asset_input(name, placement.ref)
        return {"model": name, **self.transform(placement, self.asset(placement.ref))}

    @staticmethod
    def transform(placement: Placement, asset: Asset | None) -> dict:
        """Placement composed with the asset's own transform (position adds, yaw adds, scale multiplies)."""
        ax, ay, az = asset.position if asset else (0.0, 0.0, 0.0)
        rx, ry, rz = asset.rotation if asset else (0.0, 0.0, 0.0)
        scale = (asset.scale if asset else 1.0) * placement.scale
        px, py, pz = placement.position
        return {"position": [px + ax, py + ay, pz + az], "rotation": [rx, ry + placement.facing, rz],
                "facing": placement.facing, "scale": scale}

    def aim_point(self, placement: Placement) -> list[float]:
        x, y, z = placement.position
        height = FACE_HEIGHT if placement.ref in self.m.characters else 1.0
        return [x, y + height * placement.scale, z]

    def resolve_look_at(self, target, where: dict, loc, shot: Shot):
        if target is None or isinstance(target, (list, tuple)):
            return list(target) if target is not None else None
        if target in self.m.characters and target in where:
            # The renderer aims at the character's real face once its model is loaded.
            return {"character": target, "point": where[target]}
        if target not in where:
            self.problems.append(Diagnostic(
                f"camera looks at {target!r}, which is not in shot {shot.id!r}", loc,
                f"add {target!r} to the shot's cast or props, or look at a point [x, y, z]"))
            return None
        return where[target]

    def camera_params(self, shot: Shot, where: dict) -> dict:
        camera = shot.camera
        move = camera.move
        return {
            "lens": camera.lens,
            "position": list(camera.position),
            "look_at": self.resolve_look_at(camera.look_at, where, camera.loc, shot),
            "move": {"type": move.type.value, "distance": move.distance, "angle": move.angle,
                     "lens_to": move.lens_to, "easing": move.easing.value},
            "keyframes": [
                {"at": key.at, "position": list(key.position) if key.position else None,
                 "look_at": self.resolve_look_at(key.look_at, where, key.loc, shot),
                 "lens": key.lens, "easing": key.easing.value}
                for key in camera.keyframes
            ],
        }
