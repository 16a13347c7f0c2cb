"""The build commands: build, plan, graph, status, retry, gc, clean.

cli/main.py adds these to its group. Each command imports what it needs in its body: a no-op
`storybuild build` loads click, storybuild.engine.session and the up-to-date stamp, nothing more.
"""

from __future__ import annotations

import os
import sys

import click

from storybuild.cli.manifestfile import existing_manifest
from storybuild.errors import EXIT_BUILD_FAILED, EXIT_INTERRUPTED

_file = click.option("-f", "--file", "path", metavar="PATH", help="The manifest (default ./storybuild.yaml).")
_preview = click.option("--preview", is_flag=True, help="Preview quality (smaller, faster; ids prefixed preview/).")


def _session(path: str | None):
    from storybuild.engine.session import Session

    root, name = os.path.split(os.path.abspath(existing_manifest(path)))
    return Session(root, name)


def _quality(preview: bool) -> str:
    return "preview" if preview else "full"


class _Interrupts:
    """Ctrl-C / SIGTERM: the first stops the build cleanly, a second one exits at once."""

    def __init__(self, cancel_event):
        self.cancel_event = cancel_event
        self._old = {}

    def __enter__(self):
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.cancel_event.is_set():
            os._exit(EXIT_INTERRUPTED)  # the store is consistent at every instant; no cleanup needed
        self.cancel_event.set()
        sys.stderr.write("storybuild: stopping; running actions are cancelled (again to quit at once)\n")

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _reporter(json_mode: bool):
    from storybuild.cli.progress import make_reporter

    if json_mode:
        return make_reporter("json")
    return make_reporter("live" if sys.stdout.isatty() and os.environ.get("TERM") != "dumb" else "plain")


def _run_build(session, targets, *, retry: bool = False, json_mode: bool = False, **options) -> None:
    import threading

    cancel = threading.Event()
    reporter = _reporter(json_mode)
    try:
        with _Interrupts(cancel):
            runner = session.retry if retry else session.build
            result = runner(list(targets), on_event=reporter, cancel_event=cancel, **options)
    finally:
        reporter.close()
    if result.cancelled:
        sys.exit(EXIT_INTERRUPTED)
    if result.failed:
        if not json_mode:
            click.echo(f"storybuild: {len(result.failed)} action(s) failed; "
                       "`storybuild retry` runs them and what they held back", err=True)
        sys.exit(EXIT_BUILD_FAILED)


@click.command()
@click.argument("targets", nargs=-1)
@_file
@click.option("--force", is_flag=True, help="Run the named targets (all, if none) even if up to date.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would run and why; run nothing.")
@click.option("--explain", is_flag=True, help="Say why each action runs before running it.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None, help="Actions run at once (default: cores).")
@click.option("-k", "--keep-going", is_flag=True, help="After a failure, finish everything not depending on it.")
@click.option("--no-wait", is_flag=True, help="Exit at once if another build holds the project.")
@click.option("--json", "json_mode", is_flag=True, help="One JSON event per line on stdout.")
@_preview
def build(targets, path, force, dry_run, explain, jobs, keep_going, no_wait, json_mode, preview) -> None:
    """Build TARGETS (default: everything), running only what changed.

    A target is an action id or a glob of them (`shot/harbour-*`), or a bare shot, scene,
    export or step id; `film` is the film.
    """
    session = _session(path)
    if dry_run:
        _print_plan(session, targets, _quality(preview), force, json_mode)
        return
    _run_build(session, targets, json_mode=json_mode, jobs=jobs, keep_going=keep_going, force=force,
               quality=_quality(preview), wait=not no_wait, explain=explain)


def _print_plan(session, targets, quality: str, force: bool, json_mode: bool) -> None:
    from storybuild.cli.progress import format_steps

    result = session.plan(list(targets), quality=quality, force=force)
    if json_mode:
        import json

        for step in result.steps:
            click.echo(json.dumps({"action": step.action.id, "kind": step.action.kind,
                                   "reasons": [str(r) for r in step.reasons]}, sort_keys=True))
        return
    click.echo(format_steps(result.steps), nl=False)
    click.echo(f"{len(result.steps)} to run, {result.up_to_date} up to date")


@click.command()
@click.argument("targets", nargs=-1)
@_file
@click.option("--force", is_flag=True, help="Plan as if the named targets were forced.")
@click.option("--json", "json_mode", is_flag=True, help="One JSON object per step.")
@_preview
def plan(targets, path, force, json_mode, preview) -> None:
    """Show what `build` would run and why (a dry run with reasons)."""
    _print_plan(_session(path), targets, _quality(preview), force, json_mode)


@click.command()
@click.argument("target", required=False)
@_file
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "json"]), default="dot", show_default=True)
@_preview
def graph(target, path, fmt, preview) -> None:
    """Print the action graph (of TARGET and what it needs) as dot, Mermaid or JSON."""
    from storybuild.planning.graphformat import FORMATS

    g = _session(path).graph([target] if target else [], quality=_quality(preview))
    click.echo(FORMATS[fmt](g), nl=False)


@click.command()
@click.argument("targets", nargs=-1)
@_file
@_preview
def status(targets, path, preview) -> None:
    """List failed actions (the retry queue) and out-of-date targets."""
    from storybuild.cli.progress import format_steps

    failed, outdated = _session(path).status(list(targets), quality=_quality(preview))
    if failed:
        click.echo(f"failed ({len(failed)}):")
        for f in failed:
            first = f.error.splitlines()[0] if f.error else "error"
            first = first.removeprefix(f"{f.action}: ")  # messages name their action; once is enough
            click.echo(f"  {f.action}: {first} ({f.attempts} attempt{'s' if f.attempts != 1 else ''})")
    failed_ids = {f.action for f in failed}
    pending = [s for s in outdated if s.action.id not in failed_ids]
    if pending:
        click.echo(f"out of date ({len(pending)}):")
        click.echo("".join("  " + line + "\n" for line in format_steps(pending).splitlines()), nl=False)
    if not failed and not pending:
        click.echo("everything is up to date")


@click.command()
@click.argument("targets", nargs=-1)
@_file
@click.option("-j", "--jobs", type=click.IntRange(1), default=None, help="Actions run at once (default: cores).")
@click.option("-k", "--keep-going", is_flag=True, help="After a failure, finish what does not depend on it.")
@click.option("--no-wait", is_flag=True, help="Exit at once if another build holds the project.")
@click.option("--json", "json_mode", is_flag=True, help="One JSON event per line on stdout.")
@_preview
def retry(targets, path, jobs, keep_going, no_wait, json_mode, preview) -> None:
    """Run the failed actions again, then finish what they held back.

    Runs the actions in the retry queue (those matching TARGETS, if given), then the
    targets of the failed build that depend on them (the film, say) with whatever else
    those need. Out-of-date work that depends on no failed action is left to
    `storybuild build`.
    """
    session = _session(path)
    if not session.failures():
        click.echo("nothing to retry: no action failed")
        return
    _run_build(session, targets, retry=True, json_mode=json_mode, jobs=jobs, keep_going=keep_going,
               quality=_quality(preview), wait=not no_wait)


@click.command()
@_file
@click.option("--keep", type=click.IntRange(0), default=0, show_default=True,
              help="Also keep what the last N builds made.")
def gc(path, keep) -> None:
    """Delete cached objects that the lock (and the last --keep builds) do not need."""
    removed, freed = _session(path).gc(keep)
    click.echo(f"removed {removed} object{'s' if removed != 1 else ''}, {freed / 1e6:.1f} MB freed")


@click.command()
@_file
def clean(path) -> None:
    """Remove build/ (the cache keeps everything; the next build puts it back)."""
    click.echo("removed build/" if _session(path).clean() else "no build/ to remove")


COMMANDS = (build, plan, graph, status, retry, gc, clean)
