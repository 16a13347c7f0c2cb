"""Show a build as it happens: a rich live display on a terminal, plain lines otherwise,
or one JSON object per line for tools (`--json`). Also the texts of --explain and `plan`.

A reporter is called with every Event on the building thread and closed at the end. The
live display imports rich only when it is used, so a plain or no-op build never pays for it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Iterable, Mapping, TextIO

from storybuild.events import Event


def plural(n: int, word: str) -> str:
    """'1 action', '2 actions'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line: what a build did and how long it took."""
    ran, cached, failed = summary.get("ran", 0), summary.get("cached", 0), summary.get("failed", 0)
    fresh, skipped = summary.get("up_to_date", 0), summary.get("skipped", 0)
    seconds = summary.get("seconds", 0.0)
    if not ran and not cached and not failed and not skipped:
        return f"nothing to do: {plural(fresh, 'action')} up to date ({seconds:.2f} s)"
    parts = [f"ran {ran}", f"cached {cached}", f"failed {failed}"]
    if skipped:
        parts.append(f"skipped {skipped}")
    parts.append(f"up to date {fresh}")
    status = summary.get("status", "ok")
    tail = "" if status == "ok" else f" ({status})"
    return ", ".join(parts) + f" in {seconds:.2f} s{tail}"


def format_steps(steps: Iterable[Any]) -> str:
    """The `plan` / --explain text: each step with its reasons, in build order."""
    lines = []
    for step in steps:
        lines.append(step.action.id)
        for reason in step.reasons:
            lines.append(f"  - {reason}")
    return "\n".join(lines) + ("\n" if lines else "")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


class PlainReporter:
    """Line per finished, cached, failed or retried action; summary at the end (ninja-style)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.total = 0
        self.done = 0

    def __call__(self, event: Event) -> None:
        t = event.type
        if t == "plan":
            self.total = event.data.get("total", 0)
        elif t in ("finished", "cached"):
            self.done += 1
            note = f" ({event.data['seconds']:.2f} s)" if t == "finished" else " (cached)"
            self.out.write(f"[{self.done}/{self.total}] {event.action}{note}\n")
        elif t == "failed":
            self.done += 1
            self.err.write(f"FAILED {event.action} after {plural(event.data.get('attempts', 1), 'attempt')}\n"
                           f"{_indent(event.data.get('error', ''))}\n")
        elif t == "retry":
            self.err.write(f"retrying {event.action} in {event.data['delay']:.2f} s "
                           f"(attempt {event.data['attempt']} failed: {event.data['error'].splitlines()[0]})\n")
        elif t == "explain":
            self.out.write(f"{event.action}\n" + "".join(f"  - {r}\n" for r in event.data["reasons"]))
        elif t == "wait":
            self.err.write(f"waiting for another storybuild process ({event.data['holder']})\n")
        elif t == "warning":
            hint = event.data.get("hint")
            self.err.write(f"warning: {event.data['message']}\n" + (f"  hint: {hint}\n" if hint else ""))
        elif t == "summary":
            self.out.write(format_summary(event.data) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Flush what is left."""
        self.out.flush()


class JsonReporter:
    """One JSON object per event, one per line (for tools and UIs)."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        self.out.write(json.dumps(event.to_json(), sort_keys=True) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Flush what is left."""
        self.out.flush()


class LiveReporter:
    """A rich live display: done/total with ETA, and each running action with its progress."""

    def __init__(self, out: TextIO | None = None):
        from rich.console import Console
        from rich.live import Live

        out = out or sys.stdout
        self.total = 0
        self.done = 0
        self.failed = 0
        self.started_at = time.monotonic()
        self.running: dict[str, tuple[float, str, float]] = {}  # id → (fraction, message, since)
        self._live_on = False
        self.console = Console(file=out)
        self.plain = PlainReporter(out, sys.stderr)
        self.live = Live(console=self.console, refresh_per_second=8, transient=True,
                         get_renderable=self._render)

    def __call__(self, event: Event) -> None:
        t = event.type
        if t == "plan":
            self.total = event.data.get("total", 0)
            self.started_at = time.monotonic()
            if self.total and not self._live_on:
                self.live.start()
                self._live_on = True
        elif t == "started":
            self.running[event.action] = (0.0, "", time.monotonic())
        elif t == "progress" and event.action in self.running:
            since = self.running[event.action][2]
            self.running[event.action] = (event.data["fraction"], event.data.get("message", ""), since)
        elif t in ("finished", "cached", "failed", "skipped"):
            self.running.pop(event.action, None)
            if t != "skipped":
                self.done += 1
            if t == "failed":
                self.failed += 1
                self.console.print(f"[bold red]FAILED[/] {event.action}\n{_indent(event.data.get('error', ''))}",
                                   highlight=False, markup=True)
        elif t == "summary":
            self.close()
            self.console.print(format_summary(event.data), highlight=False)
        elif t in ("explain", "wait", "retry", "warning"):
            self.plain(event)

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started_at
        if not self.done or self.done >= self.total:
            return "--"
        remaining = elapsed / self.done * (self.total - self.done)
        return f"{remaining:.0f} s" if remaining < 120 else f"{remaining / 60:.1f} min"

    def _render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(overflow="ellipsis")
        head = f"{self.done}/{self.total}" + (f", {self.failed} failed" if self.failed else "")
        table.add_row(ProgressBar(total=max(1, self.total), completed=self.done, width=30), head,
                      f"ETA {self._eta()}")
        for action, (fraction, message, since) in list(self.running.items())[:12]:
            bar = ProgressBar(total=1.0, completed=fraction, width=30)
            table.add_row(bar, action, f"{time.monotonic() - since:.1f} s {message}")
        if len(self.running) > 12:
            table.add_row("", f"… and {len(self.running) - 12} more running", "")
        return table

    def close(self) -> None:
        """Stop the live display (it is transient: the summary line remains)."""
        if self._live_on:
            self.live.stop()
            self._live_on = False


def make_reporter(mode: str, out: TextIO | None = None):
    """The reporter for a mode: "json", "live" (rich, for terminals) or "plain"."""
    if mode == "json":
        return JsonReporter(out)
    if mode == "live":
        return LiveReporter(out)
    return PlainReporter(out)
