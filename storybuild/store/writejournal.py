"""Project files an in-place action is about to write, so that what a killed build left is known as ours.

A custom step writes its outputs at their project paths itself. Before it starts, each
path gets an entry here; once the build has committed what it placed, the entries go. A file at an
output path is storybuild's to replace only when the view placed it (and it is unchanged)
or an entry here says an earlier run of the step was writing it: anything else there is
the writer's, and no action removes it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable


class WriteJournal:
    """Entries in `folder`, one per project-relative path being written."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def _entry(self, rel: str) -> Path:
        return self.folder / hashlib.blake2b(rel.encode(), digest_size=16).hexdigest()

    def begin(self, rels: Iterable[str]) -> None:
        """Note that `rels` are about to be written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for rel in rels:
            self._entry(rel).write_text(rel, encoding="utf-8")

    def clear(self) -> None:
        """Forget every entry (the build committed what it placed)."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(self.folder / name)
            except FileNotFoundError:
                pass

    def holds(self, rel: str) -> bool:
        """Whether an action was writing `rel` when it last stopped."""
        try:
            return self._entry(rel).read_text(encoding="utf-8") == rel
        except (OSError, UnicodeDecodeError):
            return False
