"""The full build path: plan (from cache or manifest), decide, execute, record.

Session.build comes here when the up-to-date stamp could not prove there is nothing to
do. The steps, in order:

  load_plan   the plan cache, or manifest → planner → statics (and save the cache)
  decide      stat-cached source digests + stored results → decision.plan → Steps + fresh
  execute     place fresh outputs, run the Steps (Executor + ActionRunner + BuildRecorder)
  finish      write storybuild.lock, drop placements of vanished actions, close the DB
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from storybuild.engine.options import BuildOptions
from storybuild.engine.workspace import BuildResult, Workspace
from storybuild.errors import DiagnosticList, SourceLoc
from storybuild.events import Event, EventType
from storybuild.hashing import FileHasher, digest_file, stat_of
from storybuild.model import Action, FileInput, Manifest, Quality
from storybuild.planning.actiongraph import closure, statics as compute_statics
from storybuild.planning.decision import Fresh, Plan, Previous, input_digests, plan
from storybuild.store import lockfile, plancache, stamp, state
from storybuild.store.actions import ActionCache
from storybuild.store.lockfile import LockEntry
from storybuild.store.plancache import CachedPlan
from storybuild.store.state import StateDB, StateWriter
from storybuild.store.stores import Stores
from storybuild.store.writejournal import WriteJournal
from storybuild.store.view import placements

_NEVER = (-1, -1, -1)


def _header(workspace: Workspace, quality: str) -> tuple:
    from storybuild import __version__

    return (plancache.CACHE_FORMAT, __version__, quality, workspace.manifest)


def load_plan(workspace: Workspace, quality: str) -> CachedPlan:
    """The current plan: cached while the manifest files are unchanged, else planned anew."""
    from storybuild.backends.contract import in_place, marks
    from storybuild.planning import actiongraph as planner

    header = _header(workspace, quality)
    cached = plancache.load(workspace.root, workspace.store_dir, quality, header)
    if cached is not None and cached.marks == marks({a.backend for a in cached.order}):
        return cached
    manifest: Manifest = workspace.loader(workspace.manifest_path)
    order = planner.topological(planner.plan_actions(manifest, Quality(quality)))
    backends = sorted({a.backend for a in order})
    # Files planning read: the manifest and its includes, and workflow files (config keys).
    read = list(manifest.files) + [w.file for w in manifest.workflows.values() if not w.file.startswith("builtin:")]
    hasher = FileHasher(workspace.root)
    hasher.digests(read)
    result = CachedPlan(
        order=order, statics=compute_statics(manifest, order),
        configs={b: dict(planner.backend_config(manifest, b)) for b in backends},
        limits=dict(manifest.backends.limits), retry=manifest.backends.retry,
        placed={a.id: tuple(placements(in_place(a.backend), a.outputs, a.view)) for a in order},
        files=dict(hasher.fresh), locs=dict(manifest.locs), marks=marks(backends))
    os.makedirs(workspace.store_dir, exist_ok=True)
    plancache.save(workspace.store_dir, quality, header, result)
    result.replanned = True
    return result


@dataclass
class _Decision:
    """What deciding found and executing needs: the plan, its inputs, and the stores' view."""

    cplan: CachedPlan
    by_id: dict[str, Action]  # every planned action, not only this build's
    selected: list[str]  # the targets, resolved to action ids
    forced: frozenset[str]
    plan: Plan
    sources: dict[str, str | None]
    hasher: FileHasher
    lock: dict[str, LockEntry]
    runs: Mapping[str, Any]  # each action's last run
    cache: ActionCache


class Engine:
    """One build through the full path."""

    def __init__(self, workspace: Workspace, options: BuildOptions,
                 scan: stamp.Scan = stamp.Scan(None, frozenset(), None), stores: Stores | None = None):
        self.workspace = workspace
        self.options = options
        self.root = workspace.root
        self.store_dir = workspace.store_dir
        self.quality = options.quality
        self.stores = stores or Stores.open(self.root, self.store_dir)
        self.cas = self.stores.cas
        self.view = self.stores.view
        self.db: StateDB | None = None
        self.closure: set[str] = set()
        self._entries: list[tuple] = []
        self._fixed = 0
        self._limits: dict[str, int | None] = {}
        self._intact = scan.intact  # placed outputs the stamp scan just found unchanged
        self._changed = scan.changed  # when only sources changed since the stamp: which ones

    def close(self) -> None:
        """Close the state DB."""
        if self.db is not None:
            self.db.close()
            self.db = None

    def run(self, targets: Sequence[str]) -> BuildResult:
        """Plan and (unless a dry run) execute the build of `targets`."""
        options = self.options
        decision = self._decide(targets)
        result = BuildResult(steps=decision.plan.steps, up_to_date=len(decision.plan.fresh),
                             dry_run=options.dry_run)
        if options.explain or options.dry_run:
            for step in decision.plan.steps:
                options.on_event(Event(EventType.EXPLAIN, step.action.id, step.action.kind,
                                       {"reasons": [str(r) for r in step.reasons]}))
        if options.dry_run:
            return result
        self._execute(decision, result)
        return result

    def _decide(self, targets: Sequence[str]) -> _Decision:
        """Load the plan, hash the sources, read the stores, and decide what must run."""
        from storybuild.planning.targets import resolve

        cplan = load_plan(self.workspace, self.quality)
        by_id = {a.id: a for a in cplan.order}
        selected = resolve(targets, list(by_id))
        self.closure = closure(selected, by_id)
        order = [a for a in cplan.order if a.id in self.closure]
        forced = frozenset(selected if self.options.force else ())
        self.db = self.stores.state()
        if self.db.recovered:
            self.options.on_event(Event(EventType.WARNING, data={
                "message": f"the state DB could not be read; it was moved aside to {self.db.path}.damaged and "
                           "made anew (it is a cache: this build re-checks what it held)",
                "hint": "delete the .damaged file once this build has finished"}))
        hasher = FileHasher(self.root, self.db.files())
        sources = self._sources(order, hasher, self._loc_of(cplan))
        runs = self.db.runs(details=False)  # details are read only for the steps that run
        lock = self._read_lock(runs)
        self._views = self.db.views()
        cache = ActionCache(self.cas, lock, runs, self.db.cached)
        failures = {f.action: f.error for f in self.db.failures()}
        previous = _Previous(runs, self.db)
        known = self._unaffected(cplan, order, runs)
        todo = [a for a in order if a.id not in known] if known else order
        decided = plan(todo, cplan.statics, sources, cache.get, previous, force=forced, failed=failures,
                       loc_of=self._loc_of(cplan), known=known)
        return _Decision(cplan, by_id, selected, forced, decided, sources, hasher, lock, runs, cache)

    def _unaffected(self, cplan: CachedPlan, order, runs) -> dict[str, Fresh]:
        """Actions that cannot have changed, with their last results; {} when unsure.

        When the stamp scan found that nothing but some sources' bytes changed since the
        last complete build of this very request, only the actions reading those sources
        and what depends on them can change (ninja's way): the rest keep their last keys
        and outputs, and are not even hashed again.
        """
        if self._changed is None or cplan.replanned:
            return {}
        dirty: set[str] = set()
        for action in order:  # dependency order: producers are decided before consumers
            if action.deps() & dirty or any(isinstance(i.source, FileInput) and i.source.path in self._changed
                                            for i in action.inputs):
                dirty.add(action.id)
        known = {}
        for action in order:
            if action.id not in dirty:
                run = runs.get(action.id)
                if run is None:
                    return {}  # not the state the stamp described: decide everything
                known[action.id] = Fresh(run.key, run.outputs)
        return known

    def _read_lock(self, runs) -> dict[str, LockEntry]:
        """storybuild.lock; read from the state DB instead when it is the lock we wrote last.

        Every entry of a lock we wrote is also the last build of its action (`runs`), so an
        unchanged lock need not be parsed. A lock changed by anyone else (a git pull, a
        checkout) is read, and its entries become the results the cache offers first.
        """
        st = stat_of(os.path.join(self.root, lockfile.LOCK_NAME))
        if st is not None and self.db.meta("lock") == repr(tuple(st)):
            return {i: LockEntry(r.key, r.outputs) for i, r in runs.items()}
        try:
            return lockfile.read_strict(self.root)
        except lockfile.LockFormatError as exc:
            # The lock is a record, not an input: plan from the manifest, and say so.
            self.options.on_event(Event(EventType.WARNING, data={
                "message": f"{exc}; building from the manifest and the cache instead",
                "hint": f"this build writes {lockfile.LOCK_NAME} anew from what it builds: commit that one"}))
            return {}

    def _sources(self, order, hasher: FileHasher, loc_of) -> dict[str, str | None]:
        sources: dict[str, str | None] = {}
        problems = DiagnosticList()
        for action in order:
            for inp in action.inputs:
                src = inp.source
                if isinstance(src, FileInput) and src.path not in sources:
                    sources[src.path] = digest = hasher.digest(src.path)
                    if digest is None and src.origin:
                        # A declared asset vanished since the manifest was validated: point
                        # at its declaration, not at the first action that reads it.
                        problems.error(f"{src.origin}: file {src.path!r} does not exist",
                                       loc_of(f"{src.origin}.path") or action.loc,
                                       hint=f"restore it, or change {src.origin}.path")
                    elif digest is None:
                        problems.error(f"{action.id}: input file {src.path!r} does not exist", action.loc,
                                       hint="create it, or declare the step that makes it")
        problems.raise_if_errors()
        self._hasher = hasher
        self._source_paths = list(sources)
        return sources

    def _loc_of(self, cplan: CachedPlan):
        locs: dict[str, Any] = {}

        def loc_of(path: str) -> SourceLoc | None:
            """The manifest location of a dotted path (locations load on first use)."""
            if not locs:
                locs.update(cplan.locs if cplan.locs is not None else
                            plancache.load_locs(self.store_dir, self.quality))
            return Manifest.loc_of(SimpleNamespace(locs=locs), path)

        return loc_of

    def _limit(self, configured: dict[str, int]):
        from storybuild.backends.contract import get_backend

        def limit(backend: str) -> int | None:
            """How many actions of `backend` may run at once (None: no limit)."""
            if backend not in self._limits:
                value = configured.get(backend) or getattr(get_backend(backend), "concurrency", None)
                self._limits[backend] = max(1, int(value)) if value else None
            return self._limits[backend]

        return limit

    def _execute(self, decision: _Decision, result: BuildResult) -> None:
        """Place what is fresh, run the steps, record the results and write the lock."""
        from storybuild.engine.actionrunner import ActionRunner
        from storybuild.engine.jobrecording import recording
        from storybuild.engine.recorder import BuildRecorder
        from storybuild.engine.scheduler import Executor

        cplan, options = decision.cplan, self.options
        scratch = os.path.join(self.store_dir, "tmp")
        shutil.rmtree(scratch, ignore_errors=True)  # leftovers of a killed build; we hold the lock
        os.makedirs(scratch)
        writer = StateWriter(self.db.path, before_commit=self.cas.sync)
        try:
            build_id = self.db.start_build(decision.selected, self.quality)
            writer.put(state.put_file(p, h) for p, h in decision.hasher.trusted().items())
            views = self._views
            recorder = BuildRecorder(decision.cache, writer, self.view, build_id, cplan.statics, views,
                                     cplan.placed, self._intact)
            self._place_fresh(decision, recorder, result)
            runner = ActionRunner(self.root, scratch, self.cas, self.view, cplan.configs, views,
                                  cplan.placed, recorder.placed, cache_dir=os.path.join(self.store_dir, "cache"),
                                  journal=os.path.join(self.store_dir, "writing.journal"))
            executor = Executor(runner, recorder, jobs=options.jobs, limits=self._limit(dict(cplan.limits)),
                                retry=cplan.retry, keep_going=options.keep_going,
                                cancel_event=options.cancel_event, on_event=options.on_event)
            with recording(decision.plan.steps, writer, build_id):  # job records of backends that run on servers
                done = executor.run(decision.plan, cplan.statics, decision.sources, decision.forced)
            result.ran, result.failed, result.skipped = done.ran, done.failed, done.skipped
            result.cached += done.cached
            result.cancelled = done.cancelled
            self._finish(decision, recorder, writer, build_id, result)
        finally:
            writer.close()
        # Every placement is committed now: what in-place actions wrote is on record, so the
        # journal of files being written can go (a killed build keeps it for the next one).
        WriteJournal(os.path.join(self.store_dir, "writing.journal")).clear()
        self._entries = self._stamp_entries(cplan, decision.by_id, recorder)

    def _place_fresh(self, decision: _Decision, recorder, result: BuildResult) -> None:
        """Make sure what needs no run is placed and recorded; count what that changed as cached."""
        made = {i: f.outputs for i, f in decision.plan.fresh.items()}
        for action_id, fresh in decision.plan.fresh.items():
            action = decision.by_id[action_id]
            prev = decision.runs.get(action_id)
            if recorder.up_to_date(action, fresh.key, input_digests(action, decision.sources, made),
                                   fresh.outputs, prev.key if prev else None):
                result.cached.append(action_id)
                self.options.on_event(Event(EventType.CACHED, action_id, action.kind, {"cutoff": False}))
        result.up_to_date -= len(result.cached)

    def _finish(self, decision: _Decision, recorder, writer: StateWriter, build_id: int,
                result: BuildResult) -> None:
        """Write the lock (full quality), prune build/ of vanished actions, close the build's record."""
        if self.quality == "full":  # the lock pins what the film is made of, not previews
            entries = {i: e for i, e in decision.lock.items() if i in decision.by_id}
            for action_id, (key, outputs) in recorder.results.items():
                entries[action_id] = LockEntry(key, dict(outputs))
            lockfile.write(self.root, entries)
            st = stat_of(os.path.join(self.root, lockfile.LOCK_NAME))
            writer.put([state.put_meta("lock", repr(tuple(st)))])
        live = {rel for pairs in decision.cplan.placed.values() for _, rel in pairs}
        dropped = self.view.prune(dict(recorder.views), live)
        for rel in dropped:
            recorder.views.pop(rel, None)
        writer.put(state.del_view(rel) for rel in dropped)
        writer.put([state.finish_build(build_id, result.status.value, len(result.ran), len(result.cached),
                                       len(result.failed))])
        if build_id > HISTORY_KEEP:
            writer.put(state.forget_builds_before(build_id - HISTORY_KEEP + 1))

    def _stamp_entries(self, cplan: CachedPlan, by_id, recorder) -> list[tuple]:
        entries = [_entry(rel, h) for rel, h in cplan.files.items()]
        lock_path = os.path.join(self.root, lockfile.LOCK_NAME)
        st = stat_of(lock_path)
        if st is not None:
            entries.append((lockfile.LOCK_NAME, *st, digest_file(lock_path)))
        from storybuild.backends.contract import source_files

        for path in source_files({action.backend for action in cplan.order}):  # plug-ins: edited, upgraded
            st = stat_of(path)
            if st is not None:
                entries.append((path, *st, ""))
        self._fixed = len(entries)
        known, fresh = self._hasher.known, self._hasher.fresh
        for rel in self._source_paths:
            h = fresh.get(rel) or known.get(rel)
            if h is not None:
                entries.append(_entry(rel, h))
        for folders, files in (self._hasher.folders[rel] for rel in self._source_paths if rel in self._hasher.folders):
            for folder in folders:
                st = os.stat(os.path.join(self.root, folder))  # a file added or removed inside changes it
                entries.append((folder, st.st_mtime_ns, st.st_size, st.st_ino, ""))
            entries += [_entry(rel, fresh.get(rel) or known[rel]) for rel in files]
        for action_id in sorted(self.closure):
            for _, rel in cplan.placed[action_id]:
                record = recorder.views.get(rel)
                if record is not None:
                    entries.append((rel, *record.stat, ""))
        return entries

    def stamp_entries(self) -> tuple[list[tuple], int]:
        """What the up-to-date stamp checks after this build, and how many of those come
        first as what planning read plus the lock (valid once `run` returned)."""
        return self._entries, self._fixed


HISTORY_KEEP = 50


class _Previous(Mapping[str, Previous]):
    """plan's `previous`: each action's last key at hand, its details read when asked for."""

    def __init__(self, runs, db: StateDB):
        self._runs, self._db = runs, db

    def __getitem__(self, action_id: str) -> Previous:
        run = self._runs[action_id]
        return Previous(run.key, self._db.run_detail(action_id) or "{}")

    def __iter__(self):
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


def _entry(rel: str, h) -> tuple:
    stat = _NEVER if h.racy else tuple(h.stat)
    return (rel, *stat, h.digest)
