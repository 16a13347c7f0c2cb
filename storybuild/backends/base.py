"""The backend Protocol, the context an action runs in, and the backend registry.

Backends never see the graph, the lock or the cache. They get an ActionContext (params,
input paths, a scratch dir for outputs, a progress callback, a cancellation flag) and
return the files they wrote. Heavy libraries are imported inside `run`, never at module
import, so validating and no-op builds stay fast.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from storybuild.errors import Cancelled, UsageError

ProgressFn = Callable[[float, str], None]  # (fraction 0..1, short message)


def _no_progress(fraction: float, message: str = "") -> None:
    return None


@dataclass
class ActionContext:
    """What a backend may touch while running one action."""

    action_id: str
    kind: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Path]  # input name → read-only file
    out_dir: Path  # scratch directory; write declared outputs here
    project_root: Path
    config: Mapping[str, Any] = field(default_factory=dict)  # the backend's section of `backends`
    progress: ProgressFn = _no_progress
    cancel_event: threading.Event = field(default_factory=threading.Event)
    jobs: int = 1  # the build's -j: size of a worker pool shared with the other running actions (frames)
    attempt: int = 1
    log: Callable[[str], None] = lambda line: None
    extra: dict[str, Any] = field(default_factory=dict)  # per-run facts a backend reports (server, timings)
    # A folder for derived data a backend may keep between builds (parsed models): content-
    # addressed by the backend, never an input or output, safe to delete at any time.
    cache_dir: Path | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled if the build is being stopped; call between units of work."""
        if self.cancel_event.is_set():
            raise Cancelled(f"{self.action_id}: cancelled")

    def output(self, name: str) -> Path:
        """The path a declared output must be written to."""
        return self.out_dir / name


@runtime_checkable
class Backend(Protocol):
    """A thing that performs actions of some kinds."""

    name: str
    version: str  # bump when outputs for the same inputs would change
    capabilities: frozenset[str]

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """The part of the backend config that changes outputs (goes into the action key)."""
        ...

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        """Perform the action; return output name → file written under ctx.out_dir."""
        ...


# Built-in backends by name → "module:Class"; extended by the `storybuild.backends`
# entry-point group. Loaded lazily so that importing the registry costs nothing.
BUILTIN: dict[str, str] = {
    "command": "storybuild.backends.command:CommandBackend",
    "espeak": "storybuild.backends.embedded.speech:EspeakBackend",
    "embedded": "storybuild.backends.embedded.backend:EmbeddedBackend",
    "comfyui": "storybuild.backends.comfyui.backend:ComfyUIBackend",
}

_loaded: dict[str, Backend] = {}
_lock = threading.Lock()


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group="storybuild.backends")}


def backend_spec(name: str) -> str:
    """The "module:Class" a backend name refers to."""
    spec = BUILTIN.get(name)
    if spec is None:
        spec = _entry_points().get(name)
    if spec is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"built-in backends: {', '.join(sorted(BUILTIN))}")
    return spec


def get_backend(name: str) -> Backend:
    """The (cached) backend instance registered under `name`."""
    with _lock:
        if name not in _loaded:
            module_name, _, class_name = backend_spec(name).partition(":")
            _loaded[name] = getattr(import_module(module_name), class_name)()
        return _loaded[name]


def register(name: str, backend: Backend) -> None:
    """Register an instance (tests and plug-ins)."""
    with _lock:
        _loaded[name] = backend
        BUILTIN.setdefault(name, f"{type(backend).__module__}:{type(backend).__name__}")


# The version of a backend goes into every action key: bump it when the same inputs
# would give different output bytes. Declared here, the one place, so that the plan cache
# can tell a stale plan without importing backend modules; each backend reads its own.
VERSIONS: dict[str, str] = {
    "command": "1",
    "espeak": "2",  # 2: breathy voices reseeded, no longer vary with the clock
    "embedded": "5",  # 5: faster shading and loudness (last-bit changes); 4: AAC with the fast coder;
    # 3: fixed keyframes; 2: x264 with two threads
    "comfyui": "1",
}
