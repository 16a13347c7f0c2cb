"""A tiny film project and a running `storybuild watch` on it, for the end-to-end tests of
watch mode (tests/test_watch.py, tests/test_preview_browser.py) and benchmarks/bench_watch.py.

One scene, two shots, one short line each, 160×90 at 8 fps: a full build takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MANIFEST = """\
version: 1
project:
  title: Watch Test
  fps: FPS
  resolution: [WIDTH, HEIGHT]
  preview: {scale: 0.5, fps: 4}
characters:
  ana:
    name: Ana
    voice: {name: en-us, rate: 230}
    color: "#e8b820"
  ben:
    name: Ben
    voice: {name: en-us+m3, rate: 230}
    color: "#3a6ee0"
scenes:
  - id: dock
    location: the dock
    background: "#304050"
    shots:
      - id: one
        cast: [{ref: ana, position: [0, 0, 0]}]
        camera: {lens: 35, position: [0, 1.4, 4], look_at: ana}
        dialogue:
          - {character: ana, text: "LINE_ONE"}
      - id: two
        cast: [{ref: ben, position: [0, 0, 0]}]
        camera: {lens: 35, position: [0, 1.4, 4], look_at: ben}
        dialogue:
          - {character: ben, text: "Hi."}
"""


def write_project(root: Path, line: str = "Hello there.", size: tuple[int, int] = (160, 90), fps: int = 8) -> Path:
    """Write the tiny project's manifest with `line` as the first line; return its path."""
    path = root / "storybuild.yaml"
    text = MANIFEST.replace("LINE_ONE", line).replace("FPS", str(fps))
    save(path, text.replace("WIDTH", str(size[0])).replace("HEIGHT", str(size[1])))
    return path


def save(path: Path, text: str) -> None:
    """Save like an editor: write a temporary file, then rename it over the original."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def set_line(path: Path, old: str, new: str) -> None:
    """Replace one dialogue text (or any unique fragment) in the manifest."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in the manifest"
    save(path, text.replace(old, new))


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class WatchProcess:
    """`storybuild watch` running in a subprocess, with its output and its page's state."""

    def __init__(self, root: Path, *args: str):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                   PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storybuild", "watch", "--port", "0", "-j", "2", *args],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self.wait_for_output(r"preview: (http://\S+)", timeout=60).group(1)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_output(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        """The first output line from index `start` on that matches `pattern`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines[start:]:
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"storybuild watch exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no output matching {pattern!r} within {timeout} s:\n{self.output}")

    def state(self) -> dict:
        with urllib.request.urlopen(self.url + "api/state", timeout=10) as resp:
            return json.load(resp)

    def wait_for_state(self, predicate, timeout: float, what: str) -> dict:
        end = time.monotonic() + timeout
        state = {}
        while time.monotonic() < end:
            state = self.state()
            if predicate(state):
                return state
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; state rebuilds: "
                             f"{json.dumps(state.get('rebuilds'), indent=1)[:3000]}\noutput:\n{self.output}")

    def wait_for_rebuild(self, number: int, timeout: float, quality: str | None = None) -> dict:
        """The page state once rebuild pass `number` (1-based) has ended (and nothing runs)."""
        def done(state: dict) -> bool:
            finished = [r for r in state["rebuilds"] if r["number"] >= number and r["outcome"] != "building"]
            if quality is not None:
                finished = [r for r in finished if r["quality"] == quality]
            return bool(finished) and state["phase"] != "building"
        return self.wait_for_state(done, timeout, f"rebuild #{number}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager would stop it; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


def rebuild(state: dict, number: int) -> dict:
    """Rebuild pass `number` from a page state."""
    return next(r for r in state["rebuilds"] if r["number"] == number)

