"""ComfyUI job records into the state DB while a build runs ComfyUI actions.

    farm attempt ──JobRecord──► recorder ──op──► StateWriter ──► state.sqlite comfy_jobs
                                                                       │
                                                                storybuild stats

The engine wraps its execution in `recording(...)`. Only a build whose steps include a
comfyui action imports the ComfyUI backend, so no-op builds and films without generative
shots never pay for it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from storybuild.store import jobs
from storybuild.store.state import StateWriter

BACKEND = "comfyui"


@contextmanager
def recording(steps: Iterable[Any], writer: StateWriter, build_id: int) -> Iterator[None]:
    """Store the job records of this build's ComfyUI steps (plan.Step objects) while inside."""
    ours = {step.action.id for step in steps if step.action.backend == BACKEND}
    if not ours:
        yield
        return
    from storybuild.backends.comfyui.backend import add_recorder, remove_recorder

    def record(job) -> None:
        # Farms are shared in-process (watch mode keeps them between builds): keep only
        # the attempts of this build's actions.
        if job.action_id in ours:
            writer.put([jobs.put_job(build_id, job.to_json())])

    writer.put([jobs.create_table(), jobs.prune()])
    add_recorder(record)
    try:
        yield
    finally:
        remove_recorder(record)
