"""The storybuild command line: the only module that prints for users or exits.

Commands import what they need inside their bodies, so `storybuild --help` and a no-op
`storybuild build` don't pay for jsonschema, jinja2, networkx or the media libraries.
"""

from __future__ import annotations

import os
import sys

import click

from storybuild import __version__
from storybuild.cli.manifestfile import existing_manifest, manifest_path
from storybuild.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, StorybuildError


class StorybuildGroup(click.Group):
    """A click group that shows StorybuildErrors as diagnostics instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StorybuildError as err:
            report_error(err)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("storybuild: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def report_error(err: StorybuildError) -> None:
    """Print an error's diagnostics (file:line:col, source line, caret, hint) to stderr."""
    from storybuild.cli.diagnostics import format_diagnostics

    click.echo(format_diagnostics(err.diagnostics), err=True, nl=False)


@click.group(cls=StorybuildGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="storybuild")
@click.option("-C", "directory", metavar="DIR", type=click.Path(file_okay=False),
              help="Run as if storybuild was started in DIR.")
def main(directory: str | None) -> None:
    """storybuild: make for films.

    Describe a film in storybuild.yaml; storybuild validates it, plans a content-hashed
    graph of actions (speech, lip-sync, renders, mixes, assembly) and rebuilds only what
    changed.
    """
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise click.UsageError(f"cannot change to directory {directory!r}: {exc.strerror}") from None


# --------------------------------------------------------------------------- manifest commands
# (validate, schema, init) — owned by the manifest work.


def plan_problems(manifest) -> list:
    """What planning the film finds that the manifest checks cannot (a backend's own rules
    for a line or a picture, unknown workflows, a graph cycle), as a build would report it."""
    from storybuild.errors import ManifestError
    from storybuild.model import Quality
    from storybuild.planning.actiongraph import plan_actions, topological

    try:
        for quality in Quality:
            topological(plan_actions(manifest, quality))  # as a build orders them (networkx only for a cycle)
    except ManifestError as err:
        return list(err.diagnostics)
    return []


@main.command()
@click.argument("path", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people, json for editors and CI.")
@click.option("--no-files", is_flag=True, help="Don't require the files the manifest names to exist.")
@click.option("--backends", "check_backends", is_flag=True,
              help="Also run the backends' live checks (e.g. workflows against their servers' object_info).")
def validate(path: str | None, fmt: str, no_files: bool, check_backends: bool) -> None:
    """Check a manifest (PATH, PATH/storybuild.yaml or ./storybuild.yaml) and report every problem.

    Exits 0 when it is valid (warnings allowed), 2 when it is not.
    """
    from storybuild.cli.diagnostics import diagnostics_json, format_diagnostics, summary
    from storybuild.manifest.load import check_manifest

    target = manifest_path(path)
    try:
        manifest, diags = check_manifest(target, check_files=not no_files)
        if manifest is not None:
            diags = list(diags) + plan_problems(manifest)
            if any(d.severity.value == "error" for d in diags):
                manifest = None  # what a build would refuse, validate refuses: they never disagree
        if check_backends and manifest is not None:
            from storybuild.cli.backendcmds import backend_problems

            diags = list(diags) + backend_problems(manifest)
            if any(d.severity.value == "error" for d in diags):
                manifest = None  # the film cannot be built as written: report it invalid
    except Exception as exc:  # a bug in storybuild, never the writer's fault: say so, without a traceback
        raise_internal(exc)
    if fmt == "json":
        click.echo(diagnostics_json(diags), nl=False)
    else:
        if diags:
            click.echo(format_diagnostics(diags), err=True, nl=False)
        if manifest is None:
            click.echo(f"{target}: invalid ({summary(diags)})", err=True)
        else:
            shots = sum(len(scene.shots) for scene in manifest.scenes)
            lines = sum(len(shot.dialogue) for scene in manifest.scenes for shot in scene.shots)
            extra = f", {summary(diags)}" if diags else ""
            counts = ", ".join(_plural(n, noun) for n, noun in ((len(manifest.scenes), "scene"), (shots, "shot"),
                                                                 (lines, "line"), (len(manifest.steps), "step")))
            click.echo(f"{target}: valid ({counts}{extra})")
    if manifest is None:
        click.get_current_context().exit(EXIT_BAD_INPUT)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def raise_internal(exc: BaseException) -> None:
    """Report an unexpected exception as an internal error (exit 70), not a traceback."""
    import traceback

    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno}" if frame else ""
    click.echo(f"storybuild: internal error: {type(exc).__name__}: {exc}{where}", err=True)
    click.echo("this is a bug in storybuild, not in your manifest; please report it "
               "(set STORYBUILD_TRACEBACK=1 to see the traceback)", err=True)
    if os.environ.get("STORYBUILD_TRACEBACK"):
        traceback.print_exception(exc)
    click.get_current_context().exit(EXIT_INTERNAL)


@main.command()
def schema() -> None:
    """Print the manifest's JSON Schema (for editors: `storybuild schema > storybuild.schema.json`)."""
    from storybuild.manifest.schema import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--title", help="The film's title (default: from the folder name).")
def init(directory: str, title: str | None) -> None:
    """Start a new film project in DIRECTORY (default: here): a manifest that builds as is."""
    from storybuild.cli.scaffold import create_project

    written = create_project(directory, title)
    for name in written:
        click.echo(f"created {os.path.join(directory, name) if directory != '.' else name}")
    where = f"-C {directory} " if directory != "." else ""
    click.echo(f"next: storybuild {where}validate, then storybuild {where}build")


# --------------------------------------------------------------------------- build commands
# (build, plan, graph, status, retry, gc, clean) — owned by the engine work.
# They live in cli_build.py, which imports nothing heavy at module level.

from storybuild.cli.build import COMMANDS as _BUILD_COMMANDS  # noqa: E402

for _command in _BUILD_COMMANDS:
    main.add_command(_command)


# --------------------------------------------------------------------------- backend commands
# (backends models, stats; the checks behind validate --backends).

from storybuild.cli.backendcmds import COMMANDS as _BACKEND_COMMANDS  # noqa: E402

for _command in _BACKEND_COMMANDS:
    main.add_command(_command)


# --------------------------------------------------------------------------- watch commands
# (watch, report) — owned by the watch work.


class _WatchPrinter:
    """Prints one line per rebuild pass, and manifest errors as file:line:col diagnostics."""

    SHOWN = 6  # action ids named in a summary line before "+N more"

    def started(self, number: int, quality: str, changed) -> None:
        return None  # the summary line says it all once the pass ends

    def finished(self, summary) -> None:
        import time

        cause = ", ".join(summary.changed) + " changed" if summary.changed else "start"
        ran = list(summary.ran)
        named = ", ".join(ran[: self.SHOWN]) + (f" +{len(ran) - self.SHOWN} more" if len(ran) > self.SHOWN else "")
        line = f"[{time.strftime('%H:%M:%S')}] {cause} → {summary.quality}: {len(ran)} ran"
        if named:
            line += f" ({named})"
        line += f", {summary.cached} cached"
        if summary.failed:
            line += f", {len(summary.failed)} failed"
        line += f" · {summary.outcome} in {summary.seconds:.1f} s"
        click.echo(line)
        causes: dict[str, list[str]] = {}  # each change, and the actions it made run directly
        for action, reason in summary.why:
            causes.setdefault(reason, []).append(action)
        for reason, actions in list(causes.items())[: self.SHOWN]:
            named = ", ".join(actions[:3]) + (f" +{len(actions) - 3} more" if len(actions) > 3 else "")
            click.echo(f"  because {reason}: {named}")
        for action, error in summary.failed:
            click.echo(f"  {action}: {error}", err=True)

    def invalid(self, diagnostics) -> None:
        import time

        from storybuild.cli.diagnostics import format_diagnostics

        click.echo(f"[{time.strftime('%H:%M:%S')}] the manifest has errors; keeping the last good build", err=True)
        click.echo(format_diagnostics(list(diagnostics)), err=True, nl=False)


@main.command()
@click.argument("targets", nargs=-1)
@click.option("-f", "--file", "path", metavar="PATH", help="The manifest (default ./storybuild.yaml).")
@click.option("--preview", is_flag=True, help="Build at preview quality first, then full quality behind it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8737, show_default=True,
              help="Port of the preview page (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the preview page listens on.")
@click.option("--no-serve", is_flag=True, help="Rebuild on changes without serving the preview page.")
@click.option("-j", "--jobs", type=click.IntRange(1), default=None, help="Actions run at once (default: cores).")
def watch(targets: tuple[str, ...], path: str | None, preview: bool, port: int, host: str, no_serve: bool,
          jobs: int | None) -> None:
    """Rebuild the film whenever the manifest, a template or an asset changes.

    Builds TARGETS (default: the film) once, then again after every save: only what
    changed re-runs, a save during a build restarts it, and an invalid manifest shows its
    errors while the last good film stays. A live preview page follows along.
    """
    import signal
    import threading
    from pathlib import Path

    from storybuild.preview.livestate import LiveState
    from storybuild.watch.loop import SessionEngine, Watcher

    try:
        manifest = os.path.abspath(existing_manifest(path))
    except StorybuildError as err:  # shown as click shows a usage error, with the usage line
        raise click.UsageError(err.message) from None
    state = LiveState()
    engine = SessionEngine(manifest, jobs=jobs, targets=list(targets) or None)
    watcher = Watcher(engine, _WatchPrinter(), manifest, state, preview=preview)
    server = None
    if not no_serve:
        from storybuild.preview.server import PreviewServer

        try:
            server = PreviewServer(Path(os.path.dirname(manifest)) / "build", state, host, port).start()
        except OSError as exc:
            raise click.UsageError(f"cannot serve the preview on {host}:{port}: {exc.strerror}") from None
        click.echo(f"preview: {server.url}")
    click.echo(f"watching {os.path.relpath(manifest)} and what it references (Ctrl-C to stop)")
    stop = threading.Event()
    # SIGTERM stops like Ctrl-C: the build in flight is cancelled and the store left clean.
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    loop = threading.Thread(target=watcher.run, args=(stop,), name="watch", daemon=True)
    loop.start()
    try:
        while loop.is_alive():
            loop.join(0.2)
            if stop.is_set():
                loop.join()
    except KeyboardInterrupt:
        click.echo("stopping…", err=True)
        stop.set()
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(EXIT_INTERRUPTED))  # a second Ctrl-C: at once
        loop.join()
    finally:
        if server is not None:
            server.stop()


@main.command()
@click.argument("path", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder to write (default build/report).")
def report(path: str | None, output: str | None) -> None:
    """Write the preview page as static HTML into build/report/ for sharing.

    The page shows the last build: the film with subtitles, every scene and shot with its
    thumbnail, dialogue and waveform, failures with their manifest locations, and timings.
    """
    from pathlib import Path

    from storybuild.engine.session import Session, default_loader
    from storybuild.preview.report import engine_records, write_report

    manifest = default_loader(manifest_path(path))
    root = Path(manifest.root)
    session = Session(root, manifest.file)
    actions, rebuilds = engine_records(session)
    index = write_report(manifest, root / "build", Path(output) if output else None, actions, rebuilds)
    click.echo(f"wrote {os.path.relpath(index)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
