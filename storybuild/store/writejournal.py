"""Project files an in-place action is about to write, so that what a killed build left is known as ours.

A custom step writes its outputs at their project paths itself. Before it starts, its
paths are appended to one journal file; once the build has committed what it placed, the
file goes. A file at an output path is storybuild's to replace only when the view placed
it (and it is unchanged), it is a CAS object, or the journal says an earlier run of the
step was writing it: anything else there is the writer's, and no action removes it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable


class WriteJournal:
    """One file of project-relative paths, a line each; read once, appended to, removed whole."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._held: frozenset[str] | None = None  # what earlier (killed) builds left, read once

    def begin(self, rels: Iterable[str]) -> None:
        """Note that `rels` are about to be written (one append: steps may run in parallel)."""
        text = "".join(f"{rel}\n" for rel in rels)
        if not text:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as journal:
                journal.write(text)

    def holds(self, rel: str) -> bool:
        """Whether an earlier run was writing `rel` when its build stopped."""
        with self._lock:
            if self._held is None:
                try:
                    self._held = frozenset(self.path.read_text(encoding="utf-8").splitlines())
                except (OSError, UnicodeDecodeError):
                    self._held = frozenset()
            return rel in self._held

    def clear(self) -> None:
        """Forget everything (the build committed what it placed)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
