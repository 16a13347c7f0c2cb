"""Job records into the state DB while a build runs actions of backends that report them.

    server attempt ──record──► recorder ──op──► StateWriter ──► state.sqlite jobs
                                                                      │
                                                               storybuild stats

The engine wraps its execution in `recording(...)`. A backend reports job attempts when it
has `add_recorder` (backends/contract.py); only the backends of this build's steps are asked,
so no-op builds and films without such actions never import them.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterable, Iterator

from storybuild.backends.contract import get_backend
from storybuild.store import jobs
from storybuild.store.state import StateWriter


@contextmanager
def recording(steps: Iterable[Any], writer: StateWriter, build_id: int) -> Iterator[None]:
    """Store the job records of this build's steps (plan.Step objects) while inside."""
    by_backend: dict[str, set[str]] = {}
    for step in steps:
        by_backend.setdefault(step.action.backend, set()).add(step.action.id)
    reporting = {name: ids for name, ids in by_backend.items() if hasattr(get_backend(name), "add_recorder")}
    if not reporting:
        yield
        return
    writer.put([jobs.create_table(), jobs.prune()])
    with ExitStack() as stack:
        for name, ours in reporting.items():
            stack.enter_context(_recorder(name, ours, writer, build_id))
        yield


@contextmanager
def _recorder(name: str, ours: set[str], writer: StateWriter, build_id: int) -> Iterator[None]:
    backend = get_backend(name)

    def record(job: Any) -> None:
        # A backend's servers are shared in-process (watch mode keeps them between builds):
        # keep only the attempts of this build's actions.
        if job.action_id in ours:
            writer.put([jobs.put_job(build_id, name, job.to_json())])

    backend.add_recorder(record)
    try:
        yield
    finally:
        backend.remove_recorder(record)
