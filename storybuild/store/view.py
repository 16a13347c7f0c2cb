"""build/ and declared step outputs: where built objects appear for humans and for make-style steps.

An action's outputs live in the CAS. Those its `view` names appear under build/, and a
custom command step's outputs appear at their declared project paths (like make), each a
hard link to the object (a copy across filesystems), replaced atomically. The state DB
records each placed file's stat, so a later build re-places only what was deleted or
replaced, reading no bytes; a placed file is removed only while it is still ours.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping

from storybuild.errors import StorybuildError
from storybuild.hashing import stat_of
from storybuild.projectpaths import BUILD_DIR, inside_lexically, within
from storybuild.store.cas import CAS, discard_partial
from storybuild.store.state import ViewRecord



def confined(rel: str) -> str:
    """`rel` normalised, or a StorybuildError when it would leave the project."""
    norm = inside_lexically(rel) if rel and "\\" not in rel else None
    if norm is None:
        raise StorybuildError(f"output path {rel!r} is outside the project")
    return norm


def placements(in_place: bool, outputs: Iterable[str], view: Mapping[str, str]) -> list[tuple[str, str]]:
    """(output name, project-relative path) for every file an action shows outside the CAS;
    `in_place`: its outputs are project paths it writes itself (a custom step's)."""
    placed = [(name, confined(f"{BUILD_DIR}/{path}")) for name, path in view.items()]
    if in_place:
        placed.extend((name, confined(name)) for name in outputs)
    return placed


class View:
    """Places objects at project paths and removes the ones no action owns any more."""

    def __init__(self, root: str | os.PathLike, cas: CAS):
        self.root = os.fspath(root)
        self.cas = cas

    def place(self, action: str, placed: Iterable[tuple[str, str]], outputs: Mapping[str, str],
              records: Mapping[str, ViewRecord]) -> dict[str, ViewRecord]:
        """Make every placement show its output; return the records of what changed."""
        changed: dict[str, ViewRecord] = {}
        for name, rel in placed:
            digest = outputs[name]
            path = os.path.join(self.root, rel)
            st = stat_of(path)
            old = records.get(rel)
            if old is not None and st is not None and old.digest == digest and old.stat == st and old.action == action:
                continue
            if st is None or old is None or old.digest != digest or old.stat != st:
                discard_partial(path)
                if not self._is_object(st, digest):
                    self.cas.link_to(digest, path)
                    st = stat_of(path)
            if st is not None:
                changed[rel] = ViewRecord(action, digest, st)
        return changed

    def _is_object(self, st, digest: str) -> bool:
        # A command step's output is linked into the CAS where it was written: same inode.
        if st is None:
            return False
        obj = stat_of(self.cas.path(digest))
        return obj is not None and obj.ino == st.ino and obj.size == st.size

    def intact(self, placed: Iterable[tuple[str, str]], outputs: Mapping[str, str],
               records: Mapping[str, ViewRecord]) -> bool:
        """Whether every placement still shows its output (by stat; no bytes read)."""
        for name, rel in placed:
            old = records.get(rel)
            if old is None or old.digest != outputs.get(name) or stat_of(os.path.join(self.root, rel)) != old.stat:
                return False
        return True

    def prune(self, records: Mapping[str, ViewRecord], live: set[str]) -> list[str]:
        """Remove placed files that no current action owns, if nobody replaced them since.

        Returns the paths whose records should be dropped."""
        dropped: list[str] = []
        for rel, record in records.items():
            if rel in live:
                continue
            path = os.path.join(self.root, rel)
            if stat_of(path) == record.stat:
                os.unlink(path)
                self._remove_empty_dirs(os.path.dirname(path))
            dropped.append(rel)
        return dropped

    def _remove_empty_dirs(self, directory: str) -> None:
        build = os.path.join(self.root, BUILD_DIR)
        # Whole components: an emptied `buildings/` beside `build/` is the writer's, not ours.
        while within(directory, build) and directory != build:
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)
