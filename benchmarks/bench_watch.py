"""Watch-mode latency: from a save to the rebuild's start, and from a one-line dialogue
edit to the updated preview film.

    python3 benchmarks/bench_watch.py [--project tiny|demo] [--runs N] [--jobs J]

Runs the real watch loop (storybuild.watch.loop.Watcher with the build engine, as
`storybuild watch --preview` does, minus the HTTP page) on a copy of a project: `tiny`
(one scene, two shots, one short line each, 160×90 at 8 fps, previews at half size and
4 fps) or `demo` (the repo-root film: three scenes, 640×360 at 24 fps, previews at
320×180 and 12 fps). Each run edits one dialogue line.

* save → rebuild start: the file is written (editor style: temp file + rename) and the
  clock stops when the loop calls `started` for the new pass — inotify, the debounce,
  the fingerprint check, loading and validating the manifest, cancelling nothing.
  Target ≤ 300 ms.
* edit → preview film: the clock stops when the preview pass has finished and
  build/preview/film.mp4 holds new bytes. Target ≤ 5 s on 2 cores.

Prints medians, the spread, and the targets.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from storybuild.watch.loop import SessionEngine, Watcher  # noqa: E402
from watchproject import set_line, write_project  # noqa: E402

SAVE_TO_START_TARGET = 0.300
EDIT_TO_PREVIEW_TARGET = 5.0


class Clock:
    """A Listener that timestamps each pass's start and end."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.starts: list[tuple[float, str]] = []
        self.ends: list[tuple[float, object]] = []
        self.errors: list[str] = []

    def started(self, number, quality, changed) -> None:
        with self.cond:
            self.starts.append((time.perf_counter(), quality))
            self.cond.notify_all()

    def finished(self, summary) -> None:
        with self.cond:
            self.ends.append((time.perf_counter(), summary))
            self.cond.notify_all()

    def invalid(self, diagnostics) -> None:
        with self.cond:
            self.errors.extend(str(d.message) for d in diagnostics)
            self.cond.notify_all()

    def wait(self, predicate, timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                passes = "\n".join(f"  {s}" for _, s in self.ends)
                raise SystemExit(f"timed out waiting for {what}; manifest errors: {self.errors}; passes:\n{passes}")


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def tiny_project(root: Path) -> tuple[Path, str, str]:
    """The tiny project; (manifest, the line as written, a format for edited versions)."""
    return write_project(root, "Hello there, line 0."), "Hello there, line 0.", "Hello there, line {}."


def demo_project(root: Path) -> tuple[Path, str, str]:
    """A copy of the repo-root demo film and one of its lines."""
    shutil.copy(REPO / "storybuild.yaml", root / "storybuild.yaml")
    shutil.copytree(REPO / "assets", root / "assets")
    shutil.copytree(REPO / "templates", root / "templates", symlinks=False)
    return root / "storybuild.yaml", "Full beam, aye!", "Full beam, aye, number {}!"


PROJECTS = {"tiny": tiny_project, "demo": demo_project}


def settle(watcher: Watcher, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while watcher.busy():
        if time.monotonic() > end:
            raise SystemExit("the watcher never settled")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", choices=sorted(PROJECTS), default="tiny", help="what to edit (default tiny)")
    parser.add_argument("--runs", type=int, default=7, help="edits measured (default 7)")
    parser.add_argument("--jobs", type=int, default=2, help="actions at once (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        root = Path(tmp)
        manifest, first_line, edited = PROJECTS[args.project](root)
        preview_film = root / "build" / "preview" / "film.mp4"
        clock = Clock()
        watcher = Watcher(SessionEngine(str(manifest), jobs=args.jobs), clock, str(manifest), preview=True)
        stop = threading.Event()
        loop = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
        began = time.perf_counter()
        loop.start()
        # Two passes (preview, full), or one that failed: then there is no full pass.
        clock.wait(lambda: len(clock.ends) >= 2 or any(s.outcome != "ok" for _, s in clock.ends),
                   timeout=900, what="the first build")
        if any(s.outcome != "ok" for _, s in clock.ends):
            raise SystemExit(f"the first build failed: {[s for _, s in clock.ends]}")
        settle(watcher)
        print(f"first build (preview + full): {time.perf_counter() - began:.1f} s")

        to_start, to_preview, in_engine, ran = [], [], [], []
        for run in range(1, args.runs + 1):
            old = digest(preview_film)
            n_starts, n_ends = len(clock.starts), len(clock.ends)
            saved = time.perf_counter()
            set_line(manifest, first_line if run == 1 else edited.format(run - 1), edited.format(run))
            clock.wait(lambda: len(clock.starts) > n_starts, timeout=60, what=f"edit {run} to start a rebuild")
            to_start.append(clock.starts[n_starts][0] - saved)
            clock.wait(lambda: len(clock.ends) > n_ends, timeout=300, what=f"edit {run}'s preview pass")
            ended, summary = clock.ends[n_ends]
            if summary.quality != "preview" or summary.outcome != "ok" or digest(preview_film) == old:
                raise SystemExit(f"run {run}: the preview pass did not update the film: {summary}")
            to_preview.append(ended - saved)
            in_engine.append(summary.seconds)
            ran.append(len(summary.ran))
            settle(watcher)  # let the full-quality pass finish before the next edit
        stop.set()
        loop.join()

    print(f"{args.project}: {args.runs} one-line dialogue edits, -j {args.jobs}; "
          f"the preview pass re-ran {statistics.median(ran):.0f} actions")
    report("save → rebuild start", to_start, SAVE_TO_START_TARGET, 1000, "{:.0f} ms")
    report("edit → updated preview film", to_preview, EDIT_TO_PREVIEW_TARGET, 1, "{:.2f} s")
    print(f"{'  of which the engine pass':<28} median {statistics.median(in_engine):7.2f} s  "
          f"(the rest: inotify, debounce, validation, planning)")


def report(name: str, values: list[float], target: float, scale: float, fmt: str) -> None:
    """One printed figure: median, min, max and whether the median meets the target."""
    med = statistics.median(values)
    shown = [fmt.format(v * scale) for v in (med, min(values), max(values), target)]
    verdict = "meets" if med <= target else "MISSES"
    print(f"{name:<28} median {shown[0]:>9}  min {shown[1]}  max {shown[2]}  (target ≤ {shown[3]}: {verdict})")

if __name__ == "__main__":
    main()
