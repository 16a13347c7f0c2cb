"""What the CLI asks of ComfyUI: models per server, workflow checks, job statistics.

    storybuild backends models       → list_models(manifest.backends.comfyui)
    storybuild validate --backends   → validate_workflows(manifest, planned actions)
    storybuild stats                 → stats(records from the state DB)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from storybuild.backends.comfyui import registry, settings
from storybuild.backends.comfyui.prompt import bound_workflow
from storybuild.backends.comfyui.settings import read_config, servers_of
from storybuild.backends.comfyui.expansion import cached_object_info, project_file
from storybuild.backends.comfyui.nodespec import MODEL_INPUTS
from storybuild.backends.comfyui.validate import validate_workflow
from storybuild.backends.comfyui.workflow import BindingSpec, check_bindings, load_workflow
from storybuild.errors import BackendError, Diagnostic, ManifestError, Severity, SourceLoc
from storybuild.model import Action, Manifest


def list_models(config: Any, *, errors: list[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """Every server's model files by folder; unreachable servers are left empty (see `errors`)."""
    from storybuild.backends.comfyui.client import ComfyClient

    result: dict[str, dict[str, list[str]]] = {}
    settings = read_config(config)
    for server in servers_of(settings):
        client = ComfyClient(server.url, timeout=min(float(settings.get("timeout") or 30.0), 30.0))
        result[server.url] = {}
        try:
            for folder in client.model_folders():
                names = client.models(folder)
                if names:
                    result[server.url][folder] = sorted(names)
        except BackendError as exc:
            if errors is not None:
                errors.append(exc.message)
        finally:
            client.close()
    return result


def _live_object_info(manifest: Manifest, problems: list[Diagnostic]) -> dict[str, dict[str, Any]]:
    from storybuild.backends.comfyui.client import ComfyClient

    infos: dict[str, dict[str, Any]] = {}
    for server in settings.of(manifest).servers:
        client = ComfyClient(server.url, timeout=30.0)
        try:
            infos[server.url] = client.object_info()
        except BackendError as exc:
            problems.append(Diagnostic(f"cannot check workflows against {server.url}: {exc.message}",
                                       manifest.loc_of("backends.comfyui.servers"), severity=Severity.WARNING,
                                       code="server_unreachable"))
        finally:
            client.close()
    return infos


def _declared_models(manifest: Manifest) -> dict[str, list[str]] | None:
    """Models the configuration says the servers have (file names, in any folder)."""
    names = sorted({name for server in settings.of(manifest).servers for name in server.models})
    return {folder: names for folder in set(MODEL_INPUTS.values())} if names else None


def validate_workflows(manifest: Manifest, actions: Iterable[Action] = ()) -> list[Diagnostic]:
    """Check every workflow the manifest declares against object_info, without running anything.

    object_info comes from `backends.comfyui.object_info` (a saved dump) when set, else
    from each configured server. Against a dump, model files are checked only against
    the models the servers are declared to have. A workflow passes when it is valid on
    at least one server; otherwise the problems on the server where it came closest are
    reported at the workflow's place in the manifest.

    `actions` (the planned film) adds the workflow of every comfyui action as it will be
    sent, its values bound: a routed template, a step count out of range, a sampler or a
    checkpoint the server does not have. Those problems are reported at the shot.
    """
    problems: list[Diagnostic] = []
    try:
        dump = cached_object_info(manifest)
    except ManifestError as err:
        return list(err.diagnostics)
    sources = {"object_info dump": dump} if dump is not None else _live_object_info(manifest, problems)
    if not sources:
        return problems
    declared_models = _declared_models(manifest) if dump is not None else None
    check = _Check(list(sources.values()), declared_models, dump is None or declared_models is not None)
    broken: set[str] = set()  # declared workflows already reported: their actions fail alike
    for workflow_id, declared in sorted(manifest.workflows.items()):
        template = registry.get(declared.file) if declared.file.startswith(registry.BUILTIN_PREFIX) else None
        bindings = list(template.bindings if template else ()) + [BindingSpec.read(b) for b in declared.bindings]
        custom_nodes = dict(template.custom_nodes) if template else {}
        best: list[Diagnostic] | None = None
        for info in sources.values():
            try:
                prompt = template.prompt() if template else load_workflow(
                    project_file(manifest, declared.file, declared.loc), info, loc=declared.loc)
            except ManifestError as err:
                best = list(err.diagnostics)
                break
            found = check_bindings(prompt, bindings, what=f"workflow {workflow_id!r}", loc=declared.loc,
                                   object_info=info)
            found += check.one(prompt, info, declared.loc, f"workflow {workflow_id!r}", custom_nodes)
            if best is None or len(found) < len(best):
                best = found
            if not found:
                break
        if best:
            broken.add(workflow_id)
            problems += best
    seen: set[tuple[str, str]] = set()
    for found in map(check.action, (a for a in actions if a.backend == "comfyui"
                                    and a.params.get("workflow_id") not in broken)):
        for problem in found:
            if (str(problem.loc), problem.message) not in seen:  # takes of one shot fail alike
                seen.add((str(problem.loc), problem.message))
                problems.append(problem)
    return problems


class _Check:
    """Prompts against the object_info of each source; the closest source's problems win."""

    def __init__(self, infos: list[dict[str, Any]], models: dict[str, list[str]] | None, check_models: bool):
        self.infos = infos
        self.models = models
        self.check_models = check_models

    def one(self, prompt: dict[str, Any], info: dict[str, Any], loc: SourceLoc | None, what: str,
            custom_nodes: dict[str, str]) -> list[Diagnostic]:
        return validate_workflow(prompt, info, loc, what=what, models=self.models, custom_nodes=custom_nodes,
                                 check_models=self.check_models)

    def action(self, action: Action) -> list[Diagnostic]:
        """The bound workflow of one planned action (file inputs stay placeholders: they are uploads)."""
        params = action.params
        what = f"{action.kind} workflow {params.get('workflow_id', 'workflow')!r}"
        if not isinstance(params.get("workflow"), Mapping):
            return []  # the planner has reported why it could not resolve one
        try:
            prompt = bound_workflow(params)
        except BackendError as err:
            return [Diagnostic(err.message, action.loc)]
        best: list[Diagnostic] | None = None
        for info in self.infos:
            found = self.one(prompt, info, action.loc, what, dict(params.get("custom_nodes") or {}))
            if best is None or len(found) < len(best):
                best = found
            if not found:
                break
        return best or []


def models_by_server(manifest: Manifest) -> tuple[dict[str, dict[str, list[str]]], dict[str, str]]:
    """`storybuild backends models`: each server's model files by folder, and the servers that
    could not be reached with why. UsageError when no server is configured."""
    from storybuild.errors import UsageError

    config = read_config(manifest.backends.settings.get("comfyui"))
    if not config.get("servers"):
        raise UsageError("no ComfyUI servers are configured", manifest.loc_of("backends"),
                         hint="list them under backends.comfyui.servers")
    listing: dict[str, dict[str, list[str]]] = {}
    errors: dict[str, str] = {}
    for server in config["servers"]:  # one at a time, so each error belongs to its server
        failed: list[str] = []
        listing.update(list_models({**config, "servers": [server]}, errors=failed))
        if failed:
            errors[server["url"]] = "; ".join(failed)
    return listing, errors


def check_live(manifest: Manifest, actions: Iterable[Action]) -> list[Diagnostic]:
    """`validate --backends`: every declared and bound workflow against object_info (the saved
    dump, else each server); a warning when there is nothing to check them against."""
    comfy = settings.of(manifest)
    if not comfy.servers and not comfy.object_info:
        if not manifest.workflows:
            return []
        return [Diagnostic("cannot check the workflows: no ComfyUI server and no saved object_info",
                           manifest.loc_of("backends"), "list servers under backends.comfyui.servers, or save a "
                           "server's GET /object_info and name it in backends.comfyui.object_info",
                           severity=Severity.WARNING, code="nothing_to_check")]
    return validate_workflows(manifest, actions)
