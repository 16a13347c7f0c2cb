"""An action's params → the API prompt it sends: its workflow with its values bound.

Used when a job runs, and for the action's key (the bound workflow is what the server
sees, so it is what the key hashes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.comfyui.workflow import FILE_PARAMS, BindingSpec, bind, lookup, parse_loc
from storybuild.errors import BackendError, ManifestError


def binding_values(params: Mapping[str, Any], inputs: Mapping[str, Path] | None) -> dict[str, Any]:
    """The values to bind: a file param with no value takes the action input of the same name."""
    values = dict(params.get("values") or {})
    for raw in params.get("bindings") or ():
        param = BindingSpec.read(raw).param
        present, _ = lookup(values, param)
        if param in FILE_PARAMS and not present and (inputs is None or param in inputs):
            values[param] = param
    return values


def bound_workflow(params: Mapping[str, Any], inputs: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """The action's workflow with its values applied (file params as upload placeholders)."""
    if not isinstance(params.get("workflow"), Mapping):
        raise BackendError("ComfyUI action params carry no workflow (the planner could not resolve one)",
                           parse_loc(params.get("loc")))
    try:
        return bind(params["workflow"], params.get("bindings") or (), binding_values(params, inputs),
                    what=f"workflow {params.get('workflow_id', 'workflow')!r}", loc=parse_loc(params.get("loc")),
                    optional=params.get("optional") or None, outputs=params.get("outputs") or ())
    except ManifestError as err:
        raise BackendError("\n".join(d.message for d in err.diagnostics), parse_loc(params.get("loc"))) from None
