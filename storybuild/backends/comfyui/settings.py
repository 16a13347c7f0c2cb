"""backends.comfyui, read: the servers and how to talk to them.

The manifest keeps a backend's section as written (model.Backends.settings); this module
is the one place that reads ComfyUI's. Its schema is config.schema.json beside it.
"""

from __future__ import annotations

import dataclasses
import posixpath
from dataclasses import dataclass
from typing import Any, Mapping

from storybuild.backends.comfyui import NAME


@dataclass(frozen=True)
class ComfyServer:
    """One server: where it is, how many jobs it takes at once, what it may be given."""

    url: str
    concurrency: int = 1
    capabilities: tuple[str, ...] = ()  # empty → any
    models: tuple[str, ...] = ()  # empty → any
    weight: float = 1.0


@dataclass(frozen=True)
class ComfyConfig:
    """The whole section."""

    servers: tuple[ComfyServer, ...] = ()
    object_info: str | None = None  # a cached object_info dump (project-relative)
    timeout: float = 600.0
    poll_interval: float = 0.5


def server(raw: Any) -> ComfyServer:
    """A server from a URL string, a mapping as written, or a ComfyServer."""
    if isinstance(raw, ComfyServer):
        return raw
    if isinstance(raw, str):
        return ComfyServer(raw.rstrip("/"))
    return ComfyServer(url=str(raw["url"]).rstrip("/"), concurrency=int(raw.get("concurrency", 1)),
                       capabilities=tuple(raw.get("capabilities") or ()), models=tuple(raw.get("models") or ()),
                       weight=float(raw.get("weight", 1.0)))


def parse(raw: Mapping[str, Any] | ComfyConfig | None) -> ComfyConfig:
    """The section as written (already checked against the schema) → ComfyConfig."""
    if isinstance(raw, ComfyConfig):
        return raw
    raw = raw or {}
    object_info = raw.get("object_info")
    return ComfyConfig(servers=tuple(server(s) for s in raw.get("servers") or ()),
                       object_info=posixpath.normpath(object_info) if object_info else None,
                       timeout=float(raw.get("timeout", 600.0)), poll_interval=float(raw.get("poll_interval", 0.5)))


def of(manifest: Any) -> ComfyConfig:
    """The manifest's backends.comfyui."""
    return parse(manifest.backends.settings.get(NAME))


def read_config(config: Any) -> dict[str, Any]:
    """backends.comfyui as a plain dict (what ctx.config holds), from the section as written or a ComfyConfig."""
    return dataclasses.asdict(parse(config))


def servers_of(config: Mapping[str, Any]) -> list[ComfyServer]:
    """The configured servers of a section (as written, or read)."""
    return [server(raw) for raw in config.get("servers") or ()]
