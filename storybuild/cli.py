"""The storybuild command line: the only module that prints for users or exits.

Commands import what they need inside their bodies, so `storybuild --help` and a no-op
`storybuild build` don't pay for jsonschema, jinja2, networkx or the media libraries.
"""

from __future__ import annotations

import os
import sys

import click

from storybuild import __version__
from storybuild.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, StorybuildError


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
    from storybuild.diagnostics import format_diagnostics

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


def manifest_path(path: str | None) -> str:
    """The manifest a command works on: PATH, PATH/storybuild.yaml, or ./storybuild.yaml."""
    if path is None:
        return "storybuild.yaml"
    if os.path.isdir(path):
        return os.path.join(path, "storybuild.yaml")
    return path


# --------------------------------------------------------------------------- manifest commands
# (validate, schema, init) — owned by the manifest work.


# --------------------------------------------------------------------------- build commands
# (build, plan, graph, status, retry, gc, clean) — owned by the engine work.


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
