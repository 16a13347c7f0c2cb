"""What the full build needs of a session, and what a build reports back.

The Session (session.py) owns the project lock, the fast path and retries; the full build
(fullbuild.py) needs only where the project lives and how its manifest is read. Both import
this module, never each other's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


class BuildStatus(str, Enum):
    """How a build ended (the summary's `status`, the state DB's build history)."""

    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Workspace:
    """A project on disk: its root, manifest (relative to root), store folder and manifest loader."""

    root: str
    manifest: str
    store_dir: str
    loader: Callable[[str], Any]

    @property
    def manifest_path(self) -> str:
        """The manifest's absolute path."""
        return os.path.join(self.root, self.manifest)


@dataclass
class BuildResult:
    """How a build (or a dry run) ended."""

    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    up_to_date: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    dry_run: bool = False
    steps: list = field(default_factory=list)  # plan.Step, with reasons (dry runs and --explain)

    @property
    def ok(self) -> bool:
        """True when nothing failed and the build was not cancelled."""
        return not self.failed and not self.cancelled

    @property
    def status(self) -> BuildStatus:
        """ok, failed or cancelled."""
        return BuildStatus.CANCELLED if self.cancelled else BuildStatus.FAILED if self.failed else BuildStatus.OK

    def summary(self) -> dict[str, Any]:
        """The counts reported at the end of a build."""
        return {"ran": len(self.ran), "cached": len(self.cached), "failed": len(self.failed),
                "skipped": len(self.skipped), "up_to_date": self.up_to_date,
                "seconds": round(self.seconds, 3), "status": self.status.value}
