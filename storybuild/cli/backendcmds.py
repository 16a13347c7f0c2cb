"""The backend commands: `backends models`, `stats`, and the checks of `validate --backends`.

Each asks the installed backends that have the hook (backends/contract.py: models,
job_stats, check_live); none is named here. cli/main.py adds COMMANDS to its group; each
command imports what it needs in its body, so `storybuild --help` loads no backend.
"""

from __future__ import annotations

import os
from typing import Any

import click

from storybuild.cli.manifestfile import existing_manifest
from storybuild.errors import EXIT_BUILD_FAILED

_file = click.option("-f", "--file", "path", metavar="PATH", help="The manifest (default ./storybuild.yaml).")
_json = click.option("--json", "json_mode", is_flag=True, help="One JSON document on stdout.")


def backend_problems(manifest) -> list:
    """What `validate --backends` adds: the planner's errors, then each backend's own live
    checks (e.g. workflows against its servers) for the backends that have them."""
    from storybuild.backends.contract import get_backend, installed
    from storybuild.errors import ManifestError
    from storybuild.planning.film import film_actions

    problems: list = []
    try:
        actions = film_actions(manifest)
    except ManifestError as err:  # an unknown workflow, a binding to a missing node…
        problems += err.diagnostics
        actions = []
    for name in sorted(installed()):
        check = getattr(get_backend(name), "check_live", None)
        if check is not None:
            problems += check(manifest, actions)
    return problems


def _with(hook: str) -> list[tuple[str, Any]]:
    """(name, backend) of the installed backends that have `hook`, by name."""
    from storybuild.backends.contract import get_backend, installed

    return [(name, get_backend(name)) for name in sorted(installed()) if hasattr(get_backend(name), hook)]


@click.group()
def backends() -> None:
    """What the backends that run on servers offer."""


@backends.command()
@_file
@_json
def models(path: str | None, json_mode: bool) -> None:
    """List each server's model files by folder (for every backend that runs on servers).

    Exits 1 when a server cannot be reached (the others are still listed).
    """
    from storybuild.engine.session import default_loader

    manifest = default_loader(existing_manifest(path))
    listing: dict[str, dict[str, list[str]]] = {}
    errors: dict[str, str] = {}
    for _, backend in _with("models"):
        found, failed = backend.models(manifest)
        listing.update(found)
        errors.update(failed)
    if json_mode:
        import json

        click.echo(json.dumps({"servers": listing, "errors": errors}, indent=2, sort_keys=True))
    else:
        for url, folders in listing.items():
            click.echo(url + (" (unreachable)" if url in errors else ""))
            for folder, names in sorted(folders.items()):
                click.echo(f"  {folder}/")
                click.echo("".join(f"    {name}\n" for name in names), nl=False)
            if not folders and url not in errors:
                click.echo("  (no models)")
    for message in errors.values():
        click.echo(f"storybuild: {message}", err=True)
    if errors:
        click.get_current_context().exit(EXIT_BUILD_FAILED)


@click.command()
@_file
@click.option("--builds", "last", type=click.IntRange(1), default=None, metavar="N",
              help="Only the last N builds that ran jobs on servers (default: every one recorded).")
@_json
def stats(path: str | None, last: int | None, json_mode: bool) -> None:
    """Success rate and mean times of jobs run on servers, per workflow and per server.

    Read from the job records that builds keep in .storybuild/state.sqlite: every attempt
    of every job, with its queue wait, its time on the farm and the server's own time.
    """
    from storybuild.backends.contract import get_backend
    from storybuild.projectpaths import STORE_DIR

    root = os.path.dirname(os.path.abspath(existing_manifest(path)))
    records = _job_records(os.path.join(root, STORE_DIR, "state.sqlite"), last)
    summaries = {name: get_backend(name).job_stats(rows) for name, rows in sorted(records.items())}
    if json_mode:
        import json

        click.echo(json.dumps(summaries, indent=2, sort_keys=True))
    elif not records:
        click.echo("no jobs recorded yet (builds record them when they run actions on servers)")
    else:
        click.echo("\n".join(_format_stats(name, summary) for name, summary in summaries.items()), nl=False)


def _job_records(db_path: str, last: int | None) -> dict[str, list[dict[str, Any]]]:
    if not os.path.exists(db_path):
        return {}
    from storybuild.store.jobs import read_jobs
    from storybuild.store.state import StateDB

    db = StateDB(db_path)
    try:
        return read_jobs(db.conn, last)
    finally:
        db.close()


def _format_stats(backend: str, summary: dict[str, Any]) -> str:
    overall = summary["overall"]
    lines = [f"{backend} jobs: {overall['jobs']} attempt{'s' if overall['jobs'] != 1 else ''}, "
             f"{overall['succeeded']} succeeded ({overall['success_rate']:.0%}), "
             f"{overall['cached']} served from a server's cache"]
    for title, groups in (("workflow", summary["workflows"]), ("server", summary["servers"])):
        lines.append("")
        lines += _table(title, groups)
    return "\n".join(lines) + "\n"


def _table(title: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    """Rows of one statistics table: jobs, success rate and mean times (of successful jobs)."""
    header = (title, "jobs", "ok", "mean time", "mean wait", "server time")
    rows = [header]
    for name, s in groups.items():
        server = f"{s['mean_server_time']:.2f} s" if s["mean_server_time"] is not None else "-"
        rows.append((name, str(s["jobs"]), f"{s['success_rate']:.0%}", f"{s['mean_execution']:.2f} s",
                     f"{s['mean_queue_wait']:.2f} s", server))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join([row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]).rstrip()
            for row in rows]


COMMANDS = (backends, stats)
