"""The project's store as a build uses it, handed to the engine rather than built by it.

As ninja hands its Builder a DiskInterface: the engine asks this object for the CAS, the
build/ view and the state DB, so a test (or a shared or remote store) can give it others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from storybuild.store.cas import CAS
from storybuild.store.state import StateDB
from storybuild.store.view import View

STATE_NAME = "state.sqlite"


@dataclass
class Stores:
    """The CAS, the build/ view over it, and where the state DB lives."""

    cas: CAS
    view: View
    state_path: str

    @classmethod
    def open(cls, root: str, store_dir: str) -> "Stores":
        """The stores of the project at `root`, kept in `store_dir` (nothing is created yet)."""
        cas = CAS(os.path.join(store_dir, "cas"))
        return cls(cas, View(root, cas), os.path.join(store_dir, STATE_NAME))

    def has_state(self) -> bool:
        """Whether a build has recorded anything yet."""
        return os.path.exists(self.state_path)

    def state(self) -> StateDB:
        """The state DB, opened (created when absent); the caller closes it."""
        os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
        return StateDB(self.state_path)
