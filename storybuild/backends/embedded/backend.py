"""The embedded backend: dispatches each action kind to the module that performs it."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import CAPABILITIES, NAME, VERSION
from storybuild.backends.embedded.heap import keep_freed_memory
from storybuild.errors import BackendError

# kind → "module:function(ctx) -> {output: path}"; modules load only when a kind runs.
KINDS: dict[str, str] = {
    "visemes": "storybuild.backends.embedded.visemes:run_visemes",
    "layout": "storybuild.backends.embedded.shot:run_layout",
    "shot": "storybuild.backends.embedded.shot:run_shot",
    "mix": "storybuild.backends.embedded.mix:run_mix",
    "scene": "storybuild.backends.embedded.assemble:run_scene",
    "sound": "storybuild.backends.embedded.assemble:run_sound",
    "film": "storybuild.backends.embedded.assemble:run_film",
    "export": "storybuild.backends.embedded.exports:run_export",
}


class EmbeddedBackend:
    """CPU-only pictures, lip-sync, sound and assembly (no GPU, no server)."""

    name, version = NAME, VERSION
    capabilities = CAPABILITIES

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        return None

    def prepare(self, kinds: frozenset[str], jobs: int) -> None:
        """A build will run actions of `kinds`: start the frame workers now if shots will render."""
        if "shot" in kinds and jobs > 1:
            from storybuild.backends.embedded import framepool

            try:
                framepool.warm(jobs)
            except (OSError, RuntimeError):  # workers that cannot start: the shots paint in-process
                framepool.discard()

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        spec = KINDS.get(ctx.kind)
        if spec is None:
            raise BackendError(f"the embedded backend cannot run actions of kind {ctx.kind!r}")
        ctx.check_cancelled()
        module_name, _, func = spec.partition(":")
        keep_freed_memory()  # pictures and sound churn through large numpy temporaries
        return getattr(import_module(module_name), func)(ctx)
