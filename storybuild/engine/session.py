"""The programmatic build API: what the CLI and watch mode call.

    session = Session("path/to/project")
    result = session.build(["shot/harbour-01"], jobs=4, on_event=print)

A Session is reusable in-process and holds no open resources between calls. Each build
takes the project lock, then tries the fast path (the up-to-date stamp: stat a few
thousand files, import nothing heavy); when something changed it plans (from the plan
cache, or from the manifest when that changed), runs the steps and records the results.
Cancel a running build from another thread with `cancel_event.set()`.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Any, Callable, Iterable, Sequence

from storybuild.engine.options import BuildOptions
from storybuild.engine.workspace import BuildResult, Workspace
from storybuild.events import Event, EventType, OnEvent
from storybuild.projectpaths import MANIFEST_NAME, STORE_DIR
from storybuild.store import stamp
from storybuild.store.projectlock import ProjectLock



def default_loader(path: str):
    """Load a manifest with storybuild.manifest.load (imported only when a manifest must be read)."""
    from storybuild.manifest.load import load_manifest

    return load_manifest(path)


class Session:
    """Builds one project. `loader(path) -> Manifest` is a seam for tests."""

    def __init__(self, root: str | os.PathLike = ".", manifest: str = MANIFEST_NAME, *,
                 loader: Callable[[str], Any] | None = None):
        self.root = os.path.abspath(root)
        self.manifest = manifest
        self.store_dir = os.path.join(self.root, STORE_DIR)
        self._loader = loader or default_loader

    def stores(self) -> Any:
        """The project's store (store.stores.Stores): what the engine is handed, not what it builds."""
        from storybuild.store.stores import Stores

        return Stores.open(self.root, self.store_dir)

    @property
    def workspace(self) -> Workspace:
        """What the full build needs of this session: where the project is and how to read it."""
        return Workspace(self.root, self.manifest, self.store_dir, self._loader)

    # ------------------------------------------------------------------ building

    def build(self, targets: Sequence[str] = (), *, jobs: int | None = None, keep_going: bool = False,
              force: bool = False, dry_run: bool = False, quality: str = "full",
              on_event: OnEvent | None = None, cancel_event: threading.Event | None = None,
              wait: bool = True, explain: bool = False) -> BuildResult:
        """Bring `targets` (patterns; all actions when empty) up to date."""
        began = time.monotonic()
        options = BuildOptions.of(jobs=jobs, keep_going=keep_going, force=force, dry_run=dry_run,
                                  quality=quality, on_event=on_event, cancel_event=cancel_event,
                                  wait=wait, explain=explain)
        self._check_folders()
        request = self._request(options.quality, targets)
        if options.dry_run:
            return self._slow(targets, request, options, began, stamp.Scan(None, frozenset(), None))
        lock = ProjectLock(self.store_dir, wait=options.wait, what="build",
                           on_wait=lambda holder: options.on_event(Event(EventType.WAIT, data={"holder": holder})))
        with lock:
            scan = stamp.Scan(None, frozenset(), None)
            if not options.force and not options.explain:
                scan = stamp.scan(self.root, self.store_dir, request)
                if scan.up_to_date is not None:
                    result = BuildResult(up_to_date=scan.up_to_date, seconds=time.monotonic() - began)
                    options.on_event(Event(EventType.SUMMARY, data=result.summary()))
                    return result
            return self._slow(targets, request, options, began, scan)

    def plan(self, targets: Sequence[str] = (), *, quality: str = "full", force: bool = False) -> BuildResult:
        """What a build would run and why (a dry run)."""
        return self.build(targets, quality=quality, force=force, dry_run=True)

    def retry(self, targets: Sequence[str] = (), **options) -> BuildResult:
        """Re-run the actions that failed (those matching `targets`, if given), then finish
        what their failure held back.

        What was held back: the targets of the build each action last failed in (the state
        DB records them) that depend on it, with whatever else those need and is out of
        date; everything that depends on it when that build is no longer in the history.
        Out-of-date work that depends on no retried action is left to `build`.
        """
        from storybuild.planning.targets import resolve

        failed = [f.action for f in self.failures()]
        chosen = resolve(targets, failed) if targets and failed else failed
        if not chosen:
            return BuildResult()
        quality = getattr(options.get("quality", "full"), "value", options.get("quality", "full"))
        return self.build(self._held_back(chosen, quality), **options)

    def _held_back(self, failed: Sequence[str], quality: str) -> list[str]:
        """The failed actions plus the requested targets downstream of them (see `retry`)."""
        from storybuild.planning.actiongraph import dependents
        from storybuild.planning.targets import resolve

        order = self.load_plan(quality).order
        ids = [a.id for a in order]
        retried = set(resolve(failed, ids))  # a failed action no longer planned: a usage error, as before
        db = self.stores().state()
        try:
            requests = db.failed_requests()
        finally:
            db.close()
        requested: set[str] | None = set()
        for action in failed:
            request = requests.get(action)
            if request is None or request[1] != quality:
                requested = None  # not known: everything downstream was held back
                break
            requested.update(request[0])
        downstream = dependents(retried, order)
        if requested is not None:
            downstream = {i for i in downstream if i in requested}
        return [i for i in ids if i in downstream or i in retried]

    def _request(self, quality: str, targets: Iterable[str]) -> tuple:
        from storybuild import __version__
        from storybuild.backends.contract import builtin_versions  # a backend version bump is a change

        return (__version__, builtin_versions(), quality, self.manifest, tuple(sorted(set(targets))))

    def _slow(self, targets: Sequence[str], request: tuple, options: BuildOptions, began: float,
              scan: stamp.Scan) -> BuildResult:
        """The full path: plan, run and record (the stamp said something may have changed)."""
        from storybuild.engine.fullbuild import Engine

        if not options.dry_run:
            stamp.remove(self.store_dir)  # before anything changes: a stamp must never lie
        engine = Engine(self.workspace, options, scan, self.stores())
        try:
            result = engine.run(targets)
            if not options.dry_run and result.ok and not result.skipped:
                stamp.write(self.store_dir, request, len(engine.closure), *engine.stamp_entries())
        finally:
            engine.close()
        result.seconds = time.monotonic() - began
        if not options.dry_run:
            options.on_event(Event(EventType.SUMMARY, data=result.summary()))
        return result

    # ------------------------------------------------------------------ inspecting

    def load_plan(self, quality: str = "full"):
        """The planned actions of the manifest (from the plan cache when it is current)."""
        from storybuild.engine.fullbuild import load_plan

        return load_plan(self.workspace, quality)

    def graph(self, targets: Sequence[str] = (), *, quality: str = "full"):
        """The networkx graph (producer → consumer) of the targets and what they need."""
        from storybuild.planning.actiongraph import build_graph, closure
        from storybuild.planning.targets import resolve

        order = self.load_plan(quality).order
        by_id = {a.id: a for a in order}
        keep = closure(resolve(targets, [a.id for a in order]), by_id)
        return build_graph([a for a in order if a.id in keep])

    def failures(self) -> list:
        """The retry queue: store.state.Failure records, oldest first."""
        stores = self.stores()
        if not stores.has_state():
            return []
        db = stores.state()
        try:
            return db.failures()
        finally:
            db.close()

    def status(self, targets: Sequence[str] = (), *, quality: str = "full") -> tuple[list, list]:
        """(failed actions, out-of-date steps with reasons)."""
        return self.failures(), self.plan(targets, quality=quality).steps

    # ------------------------------------------------------------------ housekeeping

    def gc(self, keep: int = 0, *, wait: bool = True) -> tuple[int, int]:
        """Delete CAS objects unreachable from the lock (and the last `keep` builds).

        Returns (objects removed, bytes freed)."""
        from storybuild.store.gc import collect

        from storybuild.errors import UsageError
        from storybuild.store.lockfile import LockFormatError

        self._check_folders()
        with ProjectLock(self.store_dir, wait=wait, what="gc"):
            stamp.remove(self.store_dir)
            try:
                return collect(self.root, self.store_dir, keep)
            except LockFormatError as exc:
                raise UsageError(f"gc stopped, nothing was deleted: {exc}",
                                 hint="gc keeps what the lock pins, so it needs the lock: resolve it (or run "
                                      "`storybuild build`, which writes it anew), then run gc again") from None

    def _check_folders(self) -> None:
        """Refuse to work through a build/ or .storybuild that is a link or a file."""
        from storybuild.errors import UsageError
        from storybuild.projectpaths import own_folders_problem

        problem = own_folders_problem(self.root)
        if problem is not None:
            raise UsageError(problem, hint="move it away (storybuild makes the folder anew); "
                             "to keep the cache elsewhere, move the whole project")

    def clean(self, *, wait: bool = True) -> bool:
        """Remove build/ (the CAS keeps every object). True if there was one."""
        from storybuild.projectpaths import BUILD_DIR

        self._check_folders()
        with ProjectLock(self.store_dir, wait=wait, what="clean"):
            stamp.remove(self.store_dir)
            path = os.path.join(self.root, BUILD_DIR)
            if not os.path.isdir(path):
                return False
            shutil.rmtree(path)
            return True
