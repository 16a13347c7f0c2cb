"""Plan-time resolution: a capability or workflow id → the params a ComfyUI action carries.

Called through the backend's plan_speech and plan_picture (shotplan.py) for keyframe, clip, lipsync and speech actions. The
workflow is loaded (UI format converted with the cached object_info), its bindings are
applied once here so a wrong node title or input name is reported against the manifest
before anything runs, and everything the backend needs travels in the params:

    {"workflow": <API prompt, unbound>, "bindings": [...], "values": {...},
     "capability", "workflow_id", "template", "outputs", "optional", "models",
     "custom_nodes"}

Source locations stay out of the params: params go into the action key, and a line
number there would regenerate pinned media whenever an edit moves the shot down a line.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.comfyui import registry, settings
from storybuild.backends.comfyui.workflow import BindingSpec, bind, load_workflow, referenced_models
from storybuild.errors import Diagnostic, ManifestError, SourceLoc
from storybuild.model import Manifest, Workflow

DEFAULT_WPM = 165  # espeak's default rate: a voice rate of 165 wpm is speed 1.0


def plain(value: Any) -> Any:
    """JSON-like copies of Mapping proxies and tuples (params are hashed as canonical JSON)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def project_file(manifest: Manifest, relative: str, loc: SourceLoc | None) -> Path:
    """A project-relative path, refused if it is absolute or escapes the project (symlinks too)."""
    root = Path(manifest.root).resolve()
    if Path(relative).is_absolute():
        raise ManifestError([Diagnostic(f"workflow file {relative!r} must be relative to the project", loc)])
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ManifestError([Diagnostic(f"workflow file {relative!r} is outside the project", loc)])
    return path


def cached_object_info(manifest: Manifest) -> dict[str, Any] | None:
    """The object_info dump named by backends.comfyui.object_info, if any."""
    relative = settings.of(manifest).object_info
    if not relative:
        return None
    path = project_file(manifest, relative, manifest.loc_of("backends.comfyui.object_info"))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError([Diagnostic(f"cannot read the object_info dump {relative}: {exc}",
                                        manifest.loc_of("backends.comfyui.object_info"))]) from None


def derive_values(values: Mapping[str, Any], template: registry.Template | None) -> dict[str, Any]:
    """Values the manifest implies: frame counts the model accepts, a speed from a voice rate."""
    result = plain(values)
    if "frames" not in result and result.get("duration") and result.get("fps"):
        result["frames"] = int(math.ceil(float(result["duration"]) * float(result["fps"])))
    if "frames" in result and template is not None:
        result["frames"] = template.fit_frames(int(result["frames"]))
    if "speed" not in result and result.get("rate"):
        result["speed"] = round(float(result["rate"]) / DEFAULT_WPM, 3)
    return result


def _servers_models(manifest: Manifest) -> dict[str, tuple[str, ...]]:
    return {server.url: tuple(server.models) for server in settings.of(manifest).servers}


def _choose(manifest: Manifest, capability: str, workflow_id: str | None, kind: str | None,
            loc: SourceLoc | None) -> tuple[registry.Template | None, Workflow | None]:
    if not workflow_id:
        try:
            return registry.route(capability, _servers_models(manifest) or None, kind=kind), None
        except registry.NoTemplate as exc:
            raise ManifestError([Diagnostic(str(exc), loc, "name a workflow, or add the models to a server's "
                                                           "models list")]) from None
    declared = manifest.workflows.get(workflow_id)
    if declared is None:
        template = registry.get(workflow_id)
        if template is None:
            known = sorted(set(manifest.workflows) | set(registry.templates()))
            raise ManifestError([Diagnostic(f"unknown workflow {workflow_id!r}", loc,
                                            f"known workflows: {', '.join(known)}")])
        return template, None
    if declared.file.startswith(registry.BUILTIN_PREFIX):
        template = registry.get(declared.file)
        if template is None:
            raise ManifestError([Diagnostic(f"workflow {workflow_id!r}: no shipped template {declared.file!r}",
                                            declared.loc, f"shipped: {', '.join(registry.templates())}")])
        return template, declared
    return None, declared


def resolve_workflow(manifest: Manifest, capability: str, workflow_id: str | None, values: Mapping[str, Any], *,
                     kind: str | None = None, seed_key: str | None = None,
                     loc: SourceLoc | None = None) -> dict[str, Any]:
    """The params of a ComfyUI action; ManifestError lists every problem found."""
    template, declared = _choose(manifest, capability, workflow_id, kind, loc)
    where = declared.loc if declared is not None else loc
    if declared is not None and declared.capabilities and capability not in declared.capabilities:
        raise ManifestError([Diagnostic(f"workflow {declared.id!r} does not provide {capability!r} "
                                        f"(it provides {', '.join(declared.capabilities)})", loc or declared.loc)])
    bindings: list[BindingSpec] = list(template.bindings) if template else []
    outputs: tuple[str, ...] = template.outputs if template else ()
    if declared is not None:
        bindings += [BindingSpec.read(b) for b in declared.bindings]  # the manifest's win: applied last
        outputs = tuple(declared.outputs) or outputs
    if template is not None:
        prompt = template.prompt()
    else:
        path = project_file(manifest, declared.file, declared.loc)
        prompt = load_workflow(path, cached_object_info(manifest), loc=declared.loc)
    values = derive_values(values, template)
    if "seed" not in values and seed_key is not None:
        from storybuild.hashing import stable_seed

        values["seed"] = stable_seed(manifest.project.seed, seed_key)
    name = workflow_id or (template.id if template else "workflow")
    bound = bind(prompt, bindings, values, what=f"workflow {name!r}", loc=where, outputs=outputs,
                 optional=template.optional if template else None)
    models = sorted(set(referenced_models(bound)) | set(declared.models if declared else ()))
    return {
        "workflow": prompt,
        "bindings": [dataclasses.replace(b, loc="").to_json() for b in bindings],  # no locations: see above
        "values": values,
        "capability": capability,
        "workflow_id": name,
        "template": template.id if template else None,
        "outputs": list(outputs),
        "optional": plain(template.optional) if template else {},
        "models": models,
        "custom_nodes": dict(template.custom_nodes) if template else {},
    }
