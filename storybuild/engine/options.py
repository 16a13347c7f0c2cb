"""How a build is asked to run: the options that travel together from Session.build down.

One value instead of a chain of parameters (ninja's BuildConfig): the session fills in the
defaults once, and the full build, the executor's settings and the event sink all read
the same object. Imported on the fast path, so it imports nothing heavy.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from storybuild.events import OnEvent, ignore


@dataclass(frozen=True)
class BuildOptions:
    """The settings of one build; `of` makes them from Session.build's keywords."""

    jobs: int = 1  # actions run at once (-j)
    keep_going: bool = False  # after a failure, finish what does not depend on it (-k)
    force: bool = False  # run the named targets even if up to date
    dry_run: bool = False  # decide and explain; run nothing
    explain: bool = False  # report why each action runs before running it
    quality: str = "full"  # "full" or "preview"
    wait: bool = True  # wait for another build holding the project, rather than fail
    on_event: OnEvent = ignore  # receives every Event, on the building thread
    cancel_event: threading.Event = field(default_factory=threading.Event)  # set it to stop the build

    @classmethod
    def of(cls, *, jobs: int | None = None, keep_going: bool = False, force: bool = False,
           dry_run: bool = False, explain: bool = False, quality: object = "full", wait: bool = True,
           on_event: OnEvent | None = None, cancel_event: threading.Event | None = None) -> BuildOptions:
        """Options with the defaults filled in: jobs (None or 0) as many as there are cores,
        a Quality as its value, no event sink, a fresh cancel event."""
        return cls(jobs=jobs or os.cpu_count() or 1, keep_going=keep_going, force=force, dry_run=dry_run,
                   explain=explain, quality=getattr(quality, "value", quality), wait=wait,
                   on_event=on_event or ignore, cancel_event=cancel_event or threading.Event())
