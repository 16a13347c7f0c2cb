"""The shipped workflow templates (templates/ beside this file) and routing by capability.

`index.json` lists each template: its API-format file, the capabilities it provides, the
action kinds it serves, the output it produces (image, video, audio), the models it loads
(folder → file names), the custom node packs its classes come from, its parameter
bindings, its output nodes, optional parts (a flag that bypasses a node when off), and a
frame-count rule (e.g. Wan wants 4k+1 frames).

`route(capability, servers_models)` picks the first template (index order is preference
order) providing the capability whose models some server has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping

from storybuild.backends.comfyui.workflow import BindingSpec

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Template:
    """One shipped workflow and what storybuild needs to know to use it."""

    id: str
    file: str
    description: str
    capabilities: tuple[str, ...]
    kinds: tuple[str, ...]
    output: str  # image | video | audio
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # folder → files
    custom_nodes: Mapping[str, str] = field(default_factory=dict)  # class → pack (with its URL)
    bindings: tuple[BindingSpec, ...] = ()
    outputs: tuple[str, ...] = ()
    optional: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    frames: Mapping[str, int] | None = None  # {"multiple": m, "offset": o}: frames = m*k + o

    @property
    def model_files(self) -> frozenset[str]:
        return frozenset(name for names in self.models.values() for name in names)

    def prompt(self) -> dict[str, Any]:
        """A fresh copy of the template's API-format prompt."""
        return json.loads(_read(self.file))

    def fit_frames(self, frames: int) -> int:
        """The nearest frame count at or above `frames` that the model accepts."""
        if not self.frames:
            return max(1, int(frames))
        multiple, offset = int(self.frames.get("multiple", 1)), int(self.frames.get("offset", 0))
        steps = max(0, -(-(int(frames) - offset) // multiple))
        return steps * multiple + offset


def _read(name: str) -> str:
    return resources.files("storybuild.backends.comfyui").joinpath("templates", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def templates() -> dict[str, Template]:
    """Every shipped template by id, in preference order."""
    index = json.loads(_read("index.json"))
    result: dict[str, Template] = {}
    for template_id, raw in index["templates"].items():
        result[template_id] = Template(
            id=template_id, file=raw["file"], description=raw.get("description", ""),
            capabilities=tuple(raw.get("capabilities", ())), kinds=tuple(raw.get("kinds", ())),
            output=raw.get("output", "image"),
            models={folder: tuple(names) for folder, names in (raw.get("models") or {}).items()},
            custom_nodes=dict(raw.get("custom_nodes") or {}),
            bindings=tuple(BindingSpec.read(b) for b in raw.get("bindings", ())),
            outputs=tuple(raw.get("outputs", ())), optional=dict(raw.get("optional") or {}),
            frames=raw.get("frames"))
    return result


def get(template_id: str) -> Template | None:
    """A template by id (with or without the `builtin:` prefix)."""
    if template_id.startswith(BUILTIN_PREFIX):
        template_id = template_id[len(BUILTIN_PREFIX):]
    return templates().get(template_id)


def providing(capability: str, kind: str | None = None) -> list[Template]:
    """Templates with a capability (and serving an action kind), in preference order."""
    return [t for t in templates().values()
            if capability in t.capabilities and (kind is None or not t.kinds or kind in t.kinds)]


def _flatten(models: Any) -> frozenset[str] | None:
    """A server's model names from a list or a {folder: [names]} map; None means "unknown: any"."""
    if models is None:
        return None
    if isinstance(models, Mapping):
        return frozenset(name for names in models.values() for name in names)
    names = frozenset(models)
    return names or None  # an empty list in the config means "not declared"


class NoTemplate(LookupError):
    """No template provides a capability with models some server has."""


def route(capability: str, servers_models: Mapping[str, Any] | Iterable[str] | None = None, *,
          kind: str | None = None) -> Template:
    """The preferred template for `capability` whose required models some server has.

    `servers_models`: server url → its model names (a list, or folder → names as from
    `list_models`); a server with none declared is assumed to have any. A plain list is
    one server's models.
    """
    candidates = providing(capability, kind)
    if not candidates:
        raise NoTemplate(f"no shipped ComfyUI template provides {capability!r}"
                         + (f" for {kind} actions" if kind else ""))
    if servers_models is None:
        return candidates[0]
    servers = dict(servers_models) if isinstance(servers_models, Mapping) else {"server": servers_models}
    available = [_flatten(models) for models in servers.values()] or [None]
    for template in candidates:
        if any(models is None or template.model_files <= models for models in available):
            return template
    wanted = "; ".join(f"{t.id} needs {', '.join(sorted(t.model_files - frozenset().union(*filter(None, available))))}"
                       for t in candidates)
    raise NoTemplate(f"no server has the models for any {capability!r} template ({wanted})")
