"""The backend commands: `backends models`, `stats`, and the checks of `validate --backends`.

cli.py adds COMMANDS to its group. As in cli_build.py, each command imports what it needs
in its body, so `storybuild --help` never loads the ComfyUI backend.
"""

from __future__ import annotations

import os
from typing import Any

import click

from storybuild.errors import EXIT_BUILD_FAILED, UsageError

_file = click.option("-f", "--file", "path", metavar="PATH", help="The manifest (default ./storybuild.yaml).")
_json = click.option("--json", "json_mode", is_flag=True, help="One JSON document on stdout.")


def _manifest_file(path: str | None) -> str:
    manifest = path or "storybuild.yaml"
    if os.path.isdir(manifest):
        manifest = os.path.join(manifest, "storybuild.yaml")
    if not os.path.isfile(manifest):
        raise UsageError(f"no manifest at {manifest}", hint="run in a project directory, or pass -f PATH")
    return manifest


def backend_problems(manifest) -> list:
    """What `validate --backends` adds: the planner's workflow errors, then every declared and
    bound ComfyUI workflow checked against object_info (the saved dump, else each server)."""
    from storybuild.backends.comfyui.commands import validate_workflows
    from storybuild.errors import Diagnostic, ManifestError, Severity
    from storybuild.planning.film import film_actions

    problems: list = []
    try:
        actions = film_actions(manifest)
    except ManifestError as err:  # an unknown workflow, a binding to a missing node…
        problems += err.diagnostics
        actions = []
    from storybuild.backends.comfyui import settings

    comfy = settings.of(manifest)
    if not comfy.servers and not comfy.object_info:
        if manifest.workflows:
            problems.append(Diagnostic(
                "cannot check the workflows: no ComfyUI server and no saved object_info",
                manifest.loc_of("backends"), "list servers under backends.comfyui.servers, or save a "
                "server's GET /object_info and name it in backends.comfyui.object_info",
                severity=Severity.WARNING, code="nothing_to_check"))
        return problems
    return problems + validate_workflows(manifest, actions)


@click.group()
def backends() -> None:
    """What the generative backends offer (ComfyUI servers)."""


@backends.command()
@_file
@_json
def models(path: str | None, json_mode: bool) -> None:
    """List each ComfyUI server's model files by folder.

    Exits 1 when a server cannot be reached (the others are still listed).
    """
    from storybuild.backends.comfyui.backend import read_config
    from storybuild.backends.comfyui.commands import list_models
    from storybuild.engine.session import default_loader

    manifest = default_loader(_manifest_file(path))
    settings = read_config(manifest.backends.settings.get("comfyui"))
    if not settings.get("servers"):
        raise UsageError("no ComfyUI servers are configured", manifest.loc_of("backends"),
                         hint="list them under backends.comfyui.servers")
    listing: dict[str, dict[str, list[str]]] = {}
    errors: dict[str, str] = {}
    for server in settings["servers"]:  # one at a time, so each error belongs to its server
        failed: list[str] = []
        listing.update(list_models({**settings, "servers": [server]}, errors=failed))
        if failed:
            errors[server["url"]] = "; ".join(failed)
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
              help="Only the last N builds that ran ComfyUI jobs (default: every one recorded).")
@_json
def stats(path: str | None, last: int | None, json_mode: bool) -> None:
    """Success rate and mean times of ComfyUI jobs, per workflow and per server.

    Read from the job records that builds keep in .storybuild/state.sqlite: every attempt
    of every job, with its queue wait, its time on the farm and the server's own time.
    """
    from storybuild.backends.comfyui.jobrecords import stats as summarise
    from storybuild.projectpaths import STORE_DIR

    root = os.path.dirname(os.path.abspath(_manifest_file(path)))
    records = _job_records(os.path.join(root, STORE_DIR, "state.sqlite"), last)
    summary = summarise(records)
    if json_mode:
        import json

        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    elif not records:
        click.echo("no ComfyUI jobs recorded yet (builds record them when they run ComfyUI actions)")
    else:
        click.echo(_format_stats(summary), nl=False)


def _job_records(db_path: str, last: int | None) -> list[dict[str, Any]]:
    if not os.path.exists(db_path):
        return []
    from storybuild.store.jobs import read_jobs
    from storybuild.store.state import StateDB

    db = StateDB(db_path)
    try:
        return read_jobs(db.conn, last)
    finally:
        db.close()


def _format_stats(summary: dict[str, Any]) -> str:
    overall = summary["overall"]
    lines = [f"ComfyUI jobs: {overall['jobs']} attempt{'s' if overall['jobs'] != 1 else ''}, "
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
