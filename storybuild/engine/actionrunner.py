"""Run one action through its backend and put what it made into the store.

The runner gives the backend a fresh scratch directory (unless it declares
`needs_scratch = False`, as command steps do) and read-only inputs, checks that
every declared output was written, moves (or links) each one into the CAS and places it
in the project (build/, or a step's declared path). A scratch directory is removed
whatever happens, so a failed or cancelled action leaves no partial output behind: the
only way into the store is a complete file renamed or linked into place (redo's rule).
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from storybuild.backends.contract import ActionContext, Backend, get_backend
from storybuild.engine.scheduler import Job, Outcome
from storybuild.errors import BackendError, StorybuildError
from storybuild.hashing import digest_file, stat_of
from storybuild.model import Action, FileInput
from storybuild.projectpaths import within
from storybuild.store.cas import CAS
from storybuild.store.state import ViewRecord
from storybuild.store.view import View
from storybuild.store.writejournal import WriteJournal


class LazyInputs(Mapping[str, Path]):
    """ctx.inputs: project files as they are; upstream outputs linked in on first use.

    An upstream output lives in the CAS under its digest; backends get a link to it that
    keeps the output's own file name (extensions matter to media tools).
    """

    def __init__(self, action: Action, digests: Mapping[str, str], root: Path, scratch: Path, cas: CAS):
        self._inputs = {i.name: i.source for i in action.inputs}
        self._digests = digests
        self._root = root
        self._scratch = scratch
        self._cas = cas
        self._paths: dict[str, Path] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Path:
        source = self._inputs[name]
        if isinstance(source, FileInput):
            return self._root / source.path
        with self._lock:
            path = self._paths.get(name)
            if path is None:
                path = self._scratch / "in" / str(len(self._paths)) / os.path.basename(source.output)
                self._cas.link_to(self._digests[name], path)
                self._paths[name] = path
            return path

    def __iter__(self) -> Iterator[str]:
        return iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)


class ActionRunner:
    """The real Runner: backend + scratch + CAS + placement (reported through `record`)."""

    def __init__(self, root: str | os.PathLike, scratch_root: str | os.PathLike, cas: CAS, view: View,
                 configs: Mapping[str, Mapping[str, Any]], views: Mapping[str, ViewRecord],
                 placed: Mapping[str, tuple[tuple[str, str], ...]],
                 record: Callable[[dict[str, ViewRecord]], None], log: Callable[[str, str], None] = lambda a, line: None,
                 backend: Callable[[str], Backend] = get_backend, cache_dir: str | os.PathLike | None = None,
                 journal: str | os.PathLike | None = None):
        self.root = Path(root)
        self.scratch_root = Path(scratch_root)
        self.cas = cas
        self.view = view
        self.configs = configs
        self.views = views
        self.placements = placed
        self.record = record
        self.log = log
        self.backend = backend
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.journal = WriteJournal(journal if journal is not None else self.scratch_root / "writing.journal")
        self._seq = itertools.count()

    def prepare(self, actions: Iterable[Action], jobs: int) -> None:
        """Tell each backend with actions ahead which kinds it will run, so it can get ready
        (start worker processes) while the first steps run. Backends without `prepare` skip it."""
        kinds: dict[str, set[str]] = {}
        for action in actions:
            kinds.setdefault(action.backend, set()).add(action.kind)
        for name, wanted in sorted(kinds.items()):
            try:
                prepare = getattr(self.backend(name), "prepare", None)
            except StorybuildError:  # an unknown backend fails its actions, with their locations
                continue
            if prepare is not None:
                prepare(frozenset(wanted), jobs)

    def run(self, job: Job) -> Outcome:
        """Run `job.action`; return its output digests (placed and recorded)."""
        action = job.action
        backend = self.backend(action.backend)
        scratch = self.scratch_root / f"{os.getpid()}-{next(self._seq)}"
        out_dir = scratch / "out"
        in_place = not getattr(backend, "needs_scratch", True)
        owned: frozenset[str] = frozenset()
        if in_place:
            owned = self._owned(action)
            self.journal.begin(rel for _, rel in self.placements[action.id])
        else:
            os.makedirs(out_dir)
        try:
            ctx = ActionContext(
                action_id=action.id, kind=action.kind, params=action.params,
                inputs=LazyInputs(action, job.inputs, self.root, scratch, self.cas),
                out_dir=out_dir, project_root=self.root, config=self.configs.get(action.backend, {}),
                progress=job.progress, cancel_event=job.cancel_event, jobs=job.jobs, attempt=job.attempt,
                log=lambda line: self.log(action.id, line), cache_dir=self.cache_dir, owned=owned,
            )
            written = backend.run(ctx) or {}
            ctx.check_cancelled()  # a backend that returned early on cancel made nothing whole
            outputs = self._ingest(action, written, out_dir)
            placed = self.view.place(action.id, self.placements[action.id], outputs, self.views)
            if placed:
                self.record(placed)
            return Outcome(outputs, dict(ctx.extra))
        finally:
            _remove_scratch(scratch, out_dir)

    def _owned(self, action: Action) -> frozenset[str]:
        """The action's in-place outputs whose current file storybuild made (see ActionContext.owned)."""
        owned = set()
        for _, rel in self.placements[action.id]:
            record = self.views.get(rel)
            st = stat_of(str(self.root / rel))
            if (record is not None and st == record.stat) or self.journal.holds(rel) or self._in_cas(rel, st):
                owned.add(rel)
        return frozenset(owned)

    def _in_cas(self, rel: str, st: Any) -> bool:
        """Whether the file at `rel` is a CAS object (the same inode): a step output storybuild
        stored, known even when the state DB that recorded its placement was lost."""
        if st is None or os.stat(self.root / rel).st_nlink < 2:
            return False
        obj = stat_of(str(self.cas.path(digest_file(self.root / rel))))
        return obj is not None and obj.ino == st.ino

    def _ingest(self, action: Action, written: Mapping[str, os.PathLike | str], out_dir: Path) -> dict[str, str]:
        outputs: dict[str, str] = {}
        for name in action.outputs:
            path = written[name] if name in written else out_dir / name
            try:
                digest = digest_file(path)
            except (FileNotFoundError, IsADirectoryError):
                raise BackendError(f"{action.id}: declared output {name!r} was not written", action.loc,
                                   hint=f"the {action.backend} backend finished without making it") from None
            inside = within(os.path.abspath(path), os.path.abspath(out_dir))
            # Scratch files move into the CAS; files written elsewhere (a step's declared
            # path) are linked, so the project keeps them and the CAS shares their inode.
            self.cas.put_file(path, move=inside, digest=digest)
            outputs[name] = digest
        return outputs


def _remove_scratch(scratch: Path, out_dir: Path) -> None:
    # Usually both directories are empty by now (outputs moved into the CAS): two rmdirs
    # cost far less than rmtree's walk, which is kept for what a failure left behind.
    try:
        os.rmdir(out_dir)
        os.rmdir(scratch)
    except FileNotFoundError:
        if os.path.isdir(scratch):  # no out/ (a backend without scratch) but inputs linked in
            shutil.rmtree(scratch, ignore_errors=True)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
