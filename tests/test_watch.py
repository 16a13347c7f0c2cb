"""Watch mode: debounce, the watch set, the rebuild loop (with a fake engine), and the
real thing end to end (`storybuild watch` on a small project, driven through its page's
JSON state)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from storybuild.errors import Cancelled, Diagnostic, ManifestError, SourceLoc
from storybuild.model import Asset, AssetKind, Manifest, Project, Quality, Step, Workflow
from storybuild.preview.livestate import LiveState
from storybuild.watch.loop import Debouncer, Watcher
from storybuild.watch.sources import Fingerprints, WatchSet

# --------------------------------------------------------------------------- debounce


def test_debounce_collects_a_burst_into_one_batch():
    deb = Debouncer(quiet=0.08, max_wait=2.0)
    stop = threading.Event()
    start = time.monotonic()
    for name in ("a", "b", "a", "c"):
        deb.add(name)
        time.sleep(0.02)
    assert deb.take(stop) == {"a", "b", "c"}
    elapsed = time.monotonic() - start
    assert 0.08 + 0.06 <= elapsed < 1.0  # waited for the burst's quiet time, not max_wait
    assert deb.pending()  # taken but not yet acted on
    deb.done()
    assert not deb.pending()


def test_debounce_max_wait_bounds_a_steady_stream():
    deb = Debouncer(quiet=0.1, max_wait=0.3)
    stop = threading.Event()
    writer_stop = threading.Event()

    def writer():
        while not writer_stop.is_set():
            deb.add("busy.txt")
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    start = time.monotonic()
    thread.start()
    try:
        assert deb.take(stop) == {"busy.txt"}
        assert time.monotonic() - start < 0.6  # the quiet time never came; max_wait did
    finally:
        writer_stop.set()
        thread.join()


def test_debounce_take_returns_none_when_stopped():
    deb = Debouncer(quiet=0.05)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert deb.take(stop, poll=0.02) is None


# --------------------------------------------------------------------------- watch set


def _manifest(root: Path, assets=(), files=("storybuild.yaml",), workflows=(), steps=(), include=()) -> Manifest:
    return Manifest(
        root=str(root), file=files[0], files=tuple(files), version=1, project=Project(title="t"),
        presets={}, characters={},
        assets={Path(p).stem: Asset(Path(p).stem, p, AssetKind.SFX) for p in assets},
        scenes=(), workflows={w: Workflow(w, w) for w in workflows}, exports=(),
        steps=tuple(Step(f"s{i}", ("true",), inputs=tuple(ins), outputs=tuple(outs))
                    for i, (ins, outs) in enumerate(steps)),
        raw={"include": list(include)} if include else {},
    )


def test_watch_set_covers_manifest_files_assets_workflows_steps_and_templates(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "assets" / "mouths").mkdir(parents=True)
    m = _manifest(tmp_path, assets=["assets/a.ogg", "assets/mouths", "missing/deep/b.ogg"],
                  files=["storybuild.yaml", "inc/cast.yaml"], workflows=["wf/kf.json"],
                  steps=[(["prompts/p.txt"], ["gen/key.png"]), (["gen/key.png"], ["gen/clip.mp4"])],
                  include=["inc/cast.yaml", "scenes/*.yaml"])
    ws = WatchSet.of(m)
    j = lambda *p: os.path.join(str(tmp_path), *p)  # noqa: E731
    assert ws.files == {j("storybuild.yaml"), j("inc", "cast.yaml"), j("assets", "a.ogg"),
                        j("missing", "deep", "b.ogg"), j("wf", "kf.json"), j("prompts", "p.txt")}
    assert ws.trees == {j("assets", "mouths"), j("templates")}
    assert ws.matches(j("assets", "a.ogg"))
    assert ws.matches(j("assets", "mouths", "A.png"))  # inside a watched folder asset
    assert ws.matches(j("templates", "shot.j2"))
    assert ws.matches(j("missing"))  # creating the folder brings the missing file back
    assert not ws.matches(j("assets", "other.ogg"))
    assert not ws.matches(j("build", "film.mp4"))
    assert not ws.matches(j("storybuild.lock"))
    assert not ws.matches(j("gen", "key.png"))  # written by the build itself
    folders = ws.folders()
    # A missing file is watched through its nearest existing ancestor.
    assert folders[str(tmp_path)] is False
    assert folders[j("assets", "mouths")] is True
    assert j("missing") not in folders and j("missing", "deep") not in folders
    assert ws.relative(j("inc", "cast.yaml")) == "inc/cast.yaml"
    # A new file matching an include glob counts before any manifest names it.
    assert ws.appears(j("scenes", "storm.yaml")) and ws.appears(j("inc", "extra.yml"))
    assert not ws.appears(j("scenes", "notes.txt")) and not ws.appears(j("assets", "x.yaml"))


def test_fingerprints_ignore_touch_but_see_new_bytes(tmp_path):
    f = tmp_path / "line.txt"
    f.write_text("hello")
    fp = Fingerprints()
    before = fp.of(str(f))
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert fp.of(str(f)) == before
    f.write_text("hullo")
    assert fp.of(str(f)) != before
    f.unlink()
    assert fp.of(str(f)) is None


# --------------------------------------------------------------------------- the loop, with a fake engine


class FakeEngine:
    """Loads `fake.json` ({"assets": [...], "error": "..."}) and "builds" one action per asset."""

    def __init__(self, root: Path):
        self.root = root
        self.builds: list[tuple[str, dict]] = []
        self.gate = threading.Event()  # while clear, builds wait here (to test cancellation)
        self.gate.set()
        self.in_build = threading.Event()

    def load(self) -> Manifest:
        doc = json.loads((self.root / "fake.json").read_text())
        if doc.get("error"):
            raise ManifestError([Diagnostic(doc["error"], SourceLoc("fake.json", 1, 2))])
        missing = [p for p in doc["assets"] if not (self.root / p).exists()]
        if missing:
            raise ManifestError([Diagnostic(f"file not found: {p}", SourceLoc("fake.json", 1, 1)) for p in missing])
        return _manifest(self.root, assets=doc["assets"], files=["fake.json"])

    def build(self, manifest, quality, on_event, cancel_event):
        contents = {a.path: (self.root / a.path).read_text() for a in manifest.assets.values()}
        self.builds.append((quality.value, contents))
        self.in_build.set()
        while not self.gate.wait(0.01):
            if cancel_event.is_set():
                self.in_build.clear()
                raise Cancelled("cancelled")
        self.in_build.clear()
        for path in contents:
            action = f"{'preview/' if quality is Quality.PREVIEW else ''}asset/{Path(path).stem}"
            on_event({"event": "started", "action": action})
            on_event({"event": "finished", "action": action, "seconds": 0.01})


class Recorder:
    """A Listener that remembers what the watch loop reported."""

    def __init__(self):
        self.starts, self.summaries, self.invalids = [], [], []

    def started(self, number, quality, changed):
        self.starts.append((number, quality, list(changed)))

    def finished(self, summary):
        self.summaries.append(summary)

    def invalid(self, diagnostics):
        self.invalids.append(list(diagnostics))


def wait_for(predicate, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "fake.json").write_text(json.dumps({"assets": ["a.txt"]}))
    return tmp_path


def start(project, preview=False):
    engine, rec = FakeEngine(project), Recorder()
    watcher = Watcher(engine, rec, str(project / "fake.json"), LiveState(), preview=preview,
                      debounce=Debouncer(quiet=0.05, max_wait=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: not watcher.busy() and rec.summaries, what="first build")
    return engine, rec, watcher, stop, thread


@pytest.fixture
def running(project):
    handles = []

    def _start(preview=False):
        h = start(project, preview)
        handles.append(h)
        return h

    yield _start
    for _, _, _, stop, thread in handles:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def settle(watcher, rec, count):
    wait_for(lambda: len(rec.summaries) >= count and not watcher.busy(), what=f"{count} summaries")
    time.sleep(0.2)  # and nothing more comes
    assert not watcher.busy()


def test_edit_rebuilds_once_and_names_the_change(project, running):
    engine, rec, watcher, _, _ = running()
    assert rec.summaries[0].changed == () and rec.summaries[0].ran == ("asset/a",)
    for text in ("t", "tw", "two"):  # a burst of saves
        (project / "a.txt").write_text(text)
        time.sleep(0.01)
    settle(watcher, rec, 2)
    assert len(rec.summaries) == 2
    assert rec.summaries[1].changed == ("a.txt",)
    assert rec.summaries[1].outcome == "ok"
    assert engine.builds[-1] == ("full", {"a.txt": "two"})


def test_unrelated_files_touches_and_reads_do_not_rebuild(project, running):
    engine, rec, watcher, _, _ = running()
    (project / "notes.txt").write_text("not referenced")
    (project / "build").mkdir()
    (project / "build" / "film.mp4").write_bytes(b"x")
    os.utime(project / "a.txt", ns=(time.time_ns(), time.time_ns() + 10**9))
    (project / "a.txt").read_text()
    (project / "fake.json").write_text((project / "fake.json").read_text())  # same bytes saved again
    time.sleep(0.4)
    assert len(rec.summaries) == 1 and len(engine.builds) == 1


def test_invalid_edit_keeps_last_build_and_fix_rebuilds(project, running):
    engine, rec, watcher, _, _ = running()
    state = watcher.state
    (project / "fake.json").write_text(json.dumps({"assets": ["a.txt"], "error": "unknown character 'marra'"}))
    wait_for(lambda: rec.invalids, what="the error")
    assert str(rec.invalids[0][0].loc) == "fake.json:1:2"
    assert state.snapshot()["diagnostics"][0]["message"] == "unknown character 'marra'"
    assert len(engine.builds) == 1  # nothing was rebuilt or thrown away
    (project / "fake.json").write_text(json.dumps({"assets": ["a.txt"]}))
    settle(watcher, rec, 2)
    assert rec.summaries[-1].changed == ("fake.json",)
    assert state.snapshot()["diagnostics"] == []


def test_newly_referenced_file_is_followed_and_deleted_one_is_an_error(project, running):
    engine, rec, watcher, _, _ = running()
    (project / "media").mkdir()
    (project / "media" / "b.txt").write_text("bee")
    (project / "fake.json").write_text(json.dumps({"assets": ["a.txt", "media/b.txt"]}))
    settle(watcher, rec, 2)
    (project / "media" / "b.txt").write_text("bumblebee")
    settle(watcher, rec, 3)
    assert rec.summaries[-1].changed == ("media/b.txt",)
    assert engine.builds[-1][1]["media/b.txt"] == "bumblebee"
    # Deleting the whole folder is an error shown, not a crash; restoring it rebuilds.
    (project / "media" / "b.txt").unlink()
    (project / "media").rmdir()
    wait_for(lambda: rec.invalids, what="the missing-file error")
    assert "file not found: media/b.txt" in rec.invalids[-1][0].message
    (project / "media").mkdir()
    (project / "media" / "b.txt").write_text("back")
    settle(watcher, rec, 4)
    assert engine.builds[-1][1]["media/b.txt"] == "back"


def test_edit_during_build_cancels_it_and_builds_the_new_content(project, running):
    engine, rec, watcher, _, _ = running()
    engine.gate.clear()
    (project / "a.txt").write_text("first edit")
    wait_for(engine.in_build.is_set, what="the slow build")
    (project / "a.txt").write_text("second edit")
    wait_for(lambda: len(engine.builds) == 3, what="the restarted build")
    engine.gate.set()
    settle(watcher, rec, 3)
    assert [s.outcome for s in rec.summaries] == ["ok", "cancelled", "ok"]
    assert engine.builds[-1][1] == {"a.txt": "second edit"}
    assert rec.summaries[-1].ran == ("asset/a",)


def test_preview_builds_preview_then_full(project, running):
    engine, rec, watcher, _, _ = running(preview=True)
    assert [q for q, _ in engine.builds] == ["preview", "full"]
    (project / "a.txt").write_text("new")
    settle(watcher, rec, 4)
    assert [s.quality for s in rec.summaries] == ["preview", "full", "preview", "full"]
    assert rec.summaries[2].ran == ("preview/asset/a",)
    rebuilds = watcher.state.snapshot()["rebuilds"]
    assert [r["quality"] for r in rebuilds] == ["preview", "full", "preview", "full"]


# --------------------------------------------------------------------------- the command line


def test_watch_command_usage_errors(tmp_path):
    import socket

    from click.testing import CliRunner

    from storybuild.cli.main import main
    from watchproject import write_project

    result = CliRunner().invoke(main, ["watch", "-f", str(tmp_path / "nothing.yaml")])
    assert result.exit_code == 2 and "no manifest at" in result.output
    manifest = write_project(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["watch", "-f", str(manifest), "--port", str(port)])
    assert result.exit_code == 2 and f"cannot serve the preview on 127.0.0.1:{port}" in result.output


# --------------------------------------------------------------------------- end to end, real engine


def test_watch_end_to_end_on_a_small_film(tmp_path):
    """`storybuild watch`: a line edit re-runs exactly what depends on it; a bad edit keeps the film."""
    import networkx as nx

    from storybuild.engine.session import Session
    from watchproject import WatchProcess, digest, rebuild, set_line, write_project

    manifest = write_project(tmp_path, "Hello there.")
    film = tmp_path / "build" / "film.mp4"
    watch = WatchProcess(tmp_path)
    try:
        state = watch.wait_for_rebuild(1, timeout=300)
        first = rebuild(state, 1)
        assert first["outcome"] == "ok", watch.output
        assert "film" in first["ran"] and state["film"]["quality"] == "full"
        before = digest(film)
        assert before is not None

        # The actions that depend on the first line, from the engine's own graph.
        graph = Session(tmp_path).graph(["film"])
        line_action = "speech/one/0"
        expected = {line_action} | nx.descendants(graph, line_action)
        assert {"visemes/one/0", "shot/one", "film"} <= expected
        assert not {"speech/two/0", "shot/two"} & expected

        set_line(manifest, "Hello there.", "Hello over there, Ben.")
        state = watch.wait_for_rebuild(2, timeout=120)
        second = rebuild(state, 2)
        assert second["outcome"] == "ok", watch.output
        assert set(second["ran"]) == expected, watch.output
        assert second["changed"] == ["storybuild.yaml"]
        after = digest(film)
        assert after != before
        [line] = state["scenes"][0]["shots"][0]["lines"]
        assert line["text"] == "Hello over there, Ben." and line["start"] is not None
        watch.wait_for_output(r"storybuild\.yaml changed → full: \d+ ran .* ok in", timeout=10)
        # ...and why: the change itself, with where it was written, not the actions it pulled along.
        watch.wait_for_output(r"  because input changed: scenes\[0\]\.shots\[0\]\.dialogue\[0\]\.text "
                              r"\(.*storybuild\.yaml:\d+:\d+\): speech/one/0", timeout=10)

        # An invalid edit: the error with its location, and the film stays.
        mark = len(watch.lines)
        set_line(manifest, "{character: ben,", "{character: benn,")
        state = watch.wait_for_state(lambda s: s["phase"] == "error", timeout=30, what="the manifest error")
        [diag] = [d for d in state["diagnostics"] if d["severity"] == "error"]
        assert diag["file"] == "storybuild.yaml" and diag["line"] > 0 and "benn" in diag["message"]
        watch.wait_for_output(rf"storybuild\.yaml:{diag['line']}:{diag['col']}: .*benn", timeout=10, start=mark)
        time.sleep(0.5)
        assert digest(film) == after and len(state["rebuilds"]) == 2
        assert state["film"] is not None  # the page still shows the last good film

        # Fixing it rebuilds.
        set_line(manifest, "{character: benn,", "{character: ben,")
        set_line(manifest, '"Hi."', '"Hi, Ana."')
        state = watch.wait_for_rebuild(3, timeout=120)
        assert rebuild(state, 3)["outcome"] == "ok" and state["diagnostics"] == []
        assert "speech/two/0" in rebuild(state, 3)["ran"] and "speech/one/0" not in rebuild(state, 3)["ran"]
        assert digest(film) not in (before, after)
    finally:
        code = watch.stop()
    assert code == 0, watch.output

    # `storybuild report` shares the same page, static, with what the store recorded.
    import subprocess
    import sys

    from watchproject import REPO

    done = subprocess.run([sys.executable, "-m", "storybuild", "report"], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 0, done.stderr
    index = tmp_path / "build" / "report" / "index.html"
    html = index.read_text()
    data = json.loads(html.split('id="initial-data">', 1)[1].split("</script>", 1)[0])
    assert (index.parent / data["film"]["url"]).read_bytes() == film.read_bytes()
    assert [s["id"] for s in data["scenes"][0]["shots"]] == ["one", "two"]
    assert all((index.parent / s["thumb"]).is_file() for s in data["scenes"][0]["shots"])
    timings = data["rebuilds"][0]["timings"]
    assert {"speech/one/0", "shot/one", "film"} <= set(timings) and all(t >= 0 for t in timings.values())


def test_watch_edit_during_a_build_cancels_it_and_corrupts_nothing(tmp_path):
    """A save mid-build cancels the stale pass; the restarted one makes the film of the
    latest manifest, and a plain `storybuild build` afterwards has nothing to do."""
    import subprocess
    import sys

    from watchproject import REPO, WatchProcess, digest, set_line, write_project

    # Larger frames than the other tests, so that a pass lasts long enough to interrupt.
    manifest = write_project(tmp_path, "Hello there.", size=(320, 180), fps=24)
    watch = WatchProcess(tmp_path)
    try:
        watch.wait_for_rebuild(1, timeout=300)
        set_line(manifest, "Hello there.", "The tide is turning, Ben, and the boats are late tonight.")
        watch.wait_for_state(lambda s: any(r["action"] == "shot/one" for r in s["running"]),
                             timeout=60, what="the shot rendering")
        set_line(manifest, "The tide is turning", "The tide has turned")
        state = watch.wait_for_state(
            lambda s: len(s["rebuilds"]) >= 3 and s["rebuilds"][0]["outcome"] != "building" and s["phase"] == "idle",
            timeout=300, what="the restarted pass")
        outcomes = [r["outcome"] for r in reversed(state["rebuilds"])]
        assert outcomes == ["ok", "cancelled", "ok"], watch.output
        [line] = state["scenes"][0]["shots"][0]["lines"]
        assert line["text"].startswith("The tide has turned")
    finally:
        assert watch.stop() == 0, watch.output
    cut = json.loads((tmp_path / "build" / "film.json").read_text())
    assert [l["text"] for l in cut["lines"]][0].startswith("The tide has turned")
    film = digest(tmp_path / "build" / "film.mp4")
    done = subprocess.run([sys.executable, "-m", "storybuild", "build", "film", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["ran"] == 0 and summary["failed"] == 0, done.stdout
    assert digest(tmp_path / "build" / "film.mp4") == film
