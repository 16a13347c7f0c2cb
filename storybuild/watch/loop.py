"""Watch mode: file events → debounce → re-validate → re-plan → build what changed.

    watchdog (inotify) ──► Watcher._on_fs_event ──► Debouncer ──► Watcher.run (loop)
                                                                    │ engine.load()   invalid → diagnostics, keep the last good build
                                                                    │ cancel + join the stale build
                                                                    ▼
                                                     build thread: engine.build(preview?) → engine.build(full)
                                                                    │ events
                                                                    ▼
                                                     LiveState (preview page) + one summary per pass

The engine sits behind a narrow seam (`Engine`: load, build) so the loop is tested with
fakes; `SessionEngine` binds it to storybuild.engine.session. This module never prints: the CLI
gets summaries and diagnostics through a `Listener`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from storybuild.errors import Cancelled, Diagnostic, StorybuildError
from storybuild.model import Manifest, Quality
from storybuild.preview.livestate import LiveState, as_json, event_fields
from storybuild.preview.pagedata import describe_manifest
from storybuild.watch.sources import Fingerprints, WatchSet

DEBOUNCE = 0.05  # quiet time after the last event: editors write a file in several syscalls
MAX_WAIT = 0.5  # but a steady stream of writes must not postpone the rebuild for ever
# inotify also reports reads (opened, closed_no_write); the build reads these very files.
_CHANGE_EVENTS = {"created", "deleted", "modified", "moved", "closed"}

EventFn = Callable[[Any], None]  # receives storybuild.events.Event (or its JSON form)


class Engine(Protocol):
    """What the watch loop needs from the build engine."""

    def load(self) -> Manifest:
        """Load and validate the manifest; raise ManifestError with every problem."""
        ...

    def build(self, manifest: Manifest, quality: Quality, on_event: EventFn, cancel_event: threading.Event) -> None:
        """Build the film at `quality`, reporting JSON-able events; raise Cancelled if cancelled."""
        ...


@dataclass(frozen=True)
class Summary:
    """One pass of a rebuild, as the terminal shows it."""

    number: int
    quality: str
    changed: tuple[str, ...]
    ran: tuple[str, ...]
    cached: int
    failed: tuple[tuple[str, str], ...]  # (action, error)
    outcome: str  # ok | failed | cancelled
    seconds: float
    why: tuple[tuple[str, str], ...] = ()  # (action, reason) for actions that ran for a change of their own


class SessionEngine:
    """The real engine: storybuild.engine.session.Session, and the manifest loader it uses."""

    def __init__(self, manifest_path: str, jobs: int | None = None, targets: Sequence[str] | None = None):
        from storybuild.engine.session import Session

        self.path = os.path.abspath(manifest_path)
        self.session = Session(os.path.dirname(self.path), os.path.basename(self.path))
        self.jobs = jobs
        self.targets = targets

    def load(self) -> Manifest:
        """Load and validate the manifest with storybuild.manifest.load."""
        from storybuild.engine.session import default_loader

        # Relative to the working directory, as `storybuild validate` names files in errors.
        return default_loader(os.path.relpath(self.path))

    def build(self, manifest: Manifest, quality: Quality, on_event: EventFn, cancel_event: threading.Event) -> None:
        """One Session.build of the targets at `quality`, going on past failures (-k)."""
        # The session loads the manifest itself (through its plan cache, keyed by the
        # files' stats): handing it ours could pair a newer file's stat with older content.
        # Watch builds the film by default, not the exports: those are for delivery.
        targets = self.targets if self.targets is not None else (["film"] if manifest.scenes else [])
        result = self.session.build(targets, jobs=self.jobs, keep_going=True, quality=quality.value,
                                    on_event=on_event, cancel_event=cancel_event)
        if result.cancelled:
            raise Cancelled("build cancelled: the sources changed")


class Listener(Protocol):
    """Where the watch loop reports: the CLI prints, tests record."""

    def started(self, number: int, quality: str, changed: Sequence[str]) -> None:
        """A pass begins (called on the build thread)."""
        ...

    def finished(self, summary: Summary) -> None:
        """A pass ended: ok, failed or cancelled."""
        ...

    def invalid(self, diagnostics: Sequence[Diagnostic]) -> None:
        """The manifest failed to load; the last good build stays."""
        ...


class Debouncer:
    """Collects changed paths; hands them over once the writes have settled."""

    def __init__(self, quiet: float = DEBOUNCE, max_wait: float = MAX_WAIT, clock: Callable[[], float] = time.monotonic):
        self.quiet, self.max_wait, self.clock = quiet, max_wait, clock
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._first = self._last = 0.0
        self._in_hand = False  # a burst was taken and is still being acted on

    def add(self, path: str) -> None:
        """Note that `path` changed (called from the file system thread)."""
        with self._cond:
            now = self.clock()
            if not self._pending:
                self._first = now
            self._pending.add(path)
            self._last = now
            self._cond.notify_all()

    def pending(self) -> bool:
        """Whether changes wait, or the last burst taken has not been marked done()."""
        with self._cond:
            return bool(self._pending) or self._in_hand

    def done(self) -> None:
        """The burst last taken has been acted on."""
        with self._cond:
            self._in_hand = False

    def take(self, stop: threading.Event, poll: float = 0.25) -> set[str] | None:
        """Block until a burst is over and return its paths; None once `stop` is set."""
        with self._cond:
            while not stop.is_set():
                if not self._pending:
                    self._cond.wait(poll)
                    continue
                now = self.clock()
                due = min(self._last + self.quiet, self._first + self.max_wait)
                if now >= due:
                    paths, self._pending = self._pending, set()
                    self._in_hand = True
                    return paths
                self._cond.wait(min(poll, due - now))
            return None


class Watcher:
    """The watch loop: follows the manifest's files and keeps the film up to date."""

    def __init__(self, engine: Engine, listener: Listener, manifest_path: str, state: LiveState | None = None, *,
                 preview: bool = False, debounce: Debouncer | None = None):
        self.engine = engine
        self.listener = listener
        self.state = state or LiveState()
        self.passes = (Quality.PREVIEW, Quality.FULL) if preview else (Quality.FULL,)
        self.debouncer = debounce or Debouncer()
        # Until a manifest loads, follow at least the file itself, so fixing it is noticed.
        path = os.path.abspath(manifest_path)
        self.watch = WatchSet(os.path.dirname(path), frozenset({path}), frozenset())
        self.fingerprints = Fingerprints()
        self._known: dict[str, str | None] = {}  # path → fingerprint the last load saw
        self._lock = threading.Lock()  # guards watch and the observer's schedule
        self._observer = None
        self._scheduled: dict[tuple[str, bool], Any] = {}
        self._build: threading.Thread | None = None
        self._cancel = threading.Event()
        self._starting = True  # busy until the first build has started

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Build once, then rebuild on every relevant change until `stop` is set."""
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.start()
        self._follow(self.watch)
        try:
            changed: list[str] | None = []
            while changed is not None:
                if changed or self._starting:  # the first build runs with no change to name
                    self._cycle(changed)
                self._starting = False
                self.debouncer.done()
                paths = self.debouncer.take(stop)
                changed = None if paths is None else self._real_changes(paths)
        finally:
            self._starting = False
            self.debouncer.done()
            self._stop_build()
            self._observer.stop()
            self._observer.join(timeout=5)

    def _cycle(self, changed: list[str]) -> None:
        """Validate the manifest; if it is good, replace the running build with a new one."""
        try:
            manifest = self.engine.load()
        except StorybuildError as err:
            # Keep following what we followed, plus any file the errors name (a new
            # include with a typo), so fixing it triggers the next rebuild.
            named = [os.path.abspath(d.loc.file) for d in err.diagnostics if d.loc is not None and d.loc.line > 0]
            self._follow(self.watch.widened(named))
            self.state.set_diagnostics(err.diagnostics)
            self.listener.invalid(err.diagnostics)
            return
        self._follow(WatchSet.of(manifest))
        self.state.set_manifest(describe_manifest(manifest))
        self._stop_build()
        self._cancel = threading.Event()
        self._build = threading.Thread(target=self._passes, args=(manifest, changed, self._cancel),
                                       name="watch-build", daemon=True)
        self._build.start()

    def _stop_build(self) -> None:
        """Cancel the build in flight (its work is stale) and wait until the store is quiet."""
        if self._build is not None and self._build.is_alive():
            self._cancel.set()
            self._build.join()
        self._build = None

    def busy(self) -> bool:
        """Whether a change is pending, being validated, or being built."""
        build = self._build
        return self._starting or self.debouncer.pending() or (build is not None and build.is_alive())

    def _passes(self, manifest: Manifest, changed: list[str], cancel: threading.Event) -> None:
        for quality in self.passes:
            if cancel.is_set() or self._one_pass(manifest, quality, changed, cancel) != "ok":
                break

    def _one_pass(self, manifest: Manifest, quality: Quality, changed: list[str], cancel: threading.Event) -> str:
        number = self.state.rebuild_started(quality.value, changed)
        self.listener.started(number, quality.value, changed)
        ran: list[str] = []
        cached = [0]
        failed: list[tuple[str, str]] = []
        why: list[tuple[str, str]] = []

        def on_event(raw: Any) -> None:
            event = as_json(raw)
            kind, action = event_fields(event)
            # The root causes: not "upstream …" (pulled along) nor "new" (every action of a first build).
            if kind == "started" and event.get("reason") and event.get("code") not in ("upstream", "new"):
                why.append((action, f"{event['reason']} ({event['loc']})" if event.get("loc") else event["reason"]))
            if kind == "finished":
                ran.append(action)
            elif kind == "cached":
                cached[0] += 1
            elif kind == "failed":
                failed.append((action, str(event.get("error") or event.get("message") or "failed")))
            self.state.on_event(event)

        start = time.monotonic()
        outcome = "ok"
        try:
            self.engine.build(manifest, quality, on_event, cancel)
        except Cancelled:
            outcome = "cancelled"
        except StorybuildError as err:
            outcome = "failed"
            if not failed:  # an error before any action ran (a lock held, a graph cycle)
                failed.append(("build", str(err.loc) + ": " + err.message if err.loc else err.message))
        except Exception as exc:  # noqa: BLE001 - a watcher outlives a bug in one build
            outcome = "failed"
            failed.append(("build", f"internal error: {type(exc).__name__}: {exc}"))
        if outcome == "ok" and cancel.is_set():
            outcome = "cancelled"
        elif outcome == "ok" and failed:
            outcome = "failed"
        seconds = time.monotonic() - start
        self.state.rebuild_finished(outcome, seconds)
        self.listener.finished(Summary(number, quality.value, tuple(changed), tuple(ran), cached[0],
                                       tuple(failed), outcome, seconds, tuple(why)))
        return outcome

    # ------------------------------------------------------------------ file events

    def _follow(self, watch: WatchSet) -> None:
        """Make the inotify watches cover `watch`, and remember what each file held."""
        with self._lock:
            self.watch = watch
            self._known = {path: self.fingerprints.of(path) for path in watch.files}
            if self._observer is None:
                return
            wanted = set(watch.folders().items())
            for key in list(self._scheduled):
                if key not in wanted:
                    try:
                        self._observer.unschedule(self._scheduled.pop(key))
                    except KeyError:
                        pass  # watchdog already dropped the watch of a deleted folder
            for folder, recursive in wanted - set(self._scheduled):
                try:
                    self._scheduled[(folder, recursive)] = self._observer.schedule(
                        _Handler(self), folder, recursive=recursive)
                except OSError:
                    continue  # the folder vanished between listing and watching; the next load retries

    def _on_fs_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's own mtime moves whenever an entry in it does: the entry reports itself
        with self._lock:
            watch = self.watch
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = raw.decode() if isinstance(raw, bytes) else raw
            if path and (watch.matches(path) or (event.event_type != "modified" and watch.appears(path))):
                self.debouncer.add(path)

    def _real_changes(self, paths: set[str]) -> list[str]:
        """The paths whose content really changed (or that appeared, vanished or are folders)."""
        with self._lock:
            watch, known = self.watch, self._known
            changed = []
            for path in sorted(paths):
                if path in known:
                    now = self.fingerprints.of(path)
                    if now == known[path]:
                        continue  # same bytes: a touch or an unmodified save
                    known[path] = now
                changed.append(watch.relative(path))
            return changed


class _Handler(FileSystemEventHandler):
    """A watchdog handler forwarding every event to the watcher."""

    def __init__(self, watcher: Watcher):
        super().__init__()
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self.watcher._on_fs_event(event)
