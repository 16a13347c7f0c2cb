"""Check an API-format prompt against `/object_info` the way ComfyUI's `validate_prompt` does.

The result has ComfyUI's own shape — a body-level `error` and per-node `node_errors` with
the same `type`, `message`, `details` and `extra_info` (API_NOTES §5, transcript 19) — so
that one reading of a failure serves both a local check before anything is queued and a
server's 400/200 answer. `messages.py` turns either into text a filmmaker can act on.

Walk: every output node → its inputs (links recursively, values coerced and range/enum
checked) → per-node errors; a node broken only by something upstream is not listed, but
every listed node names the outputs it blocks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from storybuild.backends.comfyui.messages import describe_prompt_error, node_label
from storybuild.backends.comfyui.nodespec import (AUTOGROW, DYNAMIC_COMBO, InputSpec, NodeClass,
                                                  model_folder, node_class)
from storybuild.errors import Diagnostic, SourceLoc

# Loader nodes whose file input is checked by the node itself (VALIDATE_INPUTS), not by the
# combo list: the uploaded file must exist in the server's input folder.
FILE_INPUTS: dict[tuple[str, str], str] = {
    ("LoadImage", "image"): "image",
    ("LoadImageMask", "image"): "image",
    ("LoadAudio", "audio"): "audio",
    ("LoadVideo", "file"): "video",
}
COERCE = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass
class PromptCheck:
    """What ComfyUI would answer to POST /prompt with this prompt."""

    error: dict[str, Any] | None = None  # body-level error, or None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    good_outputs: list[str] = field(default_factory=list)
    prompt: dict[str, Any] = field(default_factory=dict)  # with values coerced as the server stores them

    @property
    def accepted(self) -> bool:
        """Whether the server would queue it (HTTP 200), possibly with node_errors."""
        return self.error is None

    @property
    def ok(self) -> bool:
        """Accepted with no node errors at all: the only outcome storybuild treats as success."""
        return self.error is None and not self.node_errors

    def body(self) -> dict[str, Any]:
        """The JSON body a server sends for a rejected prompt."""
        return {"error": self.error, "node_errors": self.node_errors}


class _LinkFault(Exception):
    """A link that cannot be followed (missing node, slot out of range): ComfyUI's inner exception."""

    def __init__(self, message: str, exception_type: str):
        super().__init__(message)
        self.exception_type = exception_type


def _error(kind: str, message: str, details: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _title(node: Mapping[str, Any]) -> str | None:
    meta = node.get("_meta")
    return meta.get("title") if isinstance(meta, Mapping) else None


class _Checker:
    def __init__(self, prompt: Mapping[str, Any], object_info: Mapping[str, Any],
                 input_files: Collection[str] | None, models: Mapping[str, Collection[str]] | None):
        self.prompt = copy.deepcopy(dict(prompt))
        self.object_info = object_info
        self.input_files = input_files
        self.models = models
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        self.classes: dict[str, NodeClass] = {}

    def check(self, targets: Collection[str] | None) -> PromptCheck:
        result = PromptCheck(prompt=self.prompt)
        for node_id, node in self.prompt.items():
            if not isinstance(node, Mapping) or "class_type" not in node:
                result.error = _error(
                    "missing_node_type",
                    f"Node '{_title(node) or 'unknown'}' has no class_type. The workflow may be corrupted "
                    "or a custom node is missing.", f"Node ID '#{node_id}'",
                    {"node_id": node_id, "class_type": None, "node_title": _title(node)})
                return result
            spec = node_class(self.object_info, str(node["class_type"]))
            if spec is None:
                result.error = _error(
                    "missing_node_type",
                    f"Node '{_title(node) or node['class_type']}' not found. The custom node may not be installed.",
                    f"Node ID '#{node_id}'",
                    {"node_id": node_id, "class_type": node["class_type"], "node_title": _title(node) or node["class_type"]})
                return result
            self.classes[node_id] = spec
        outputs = [nid for nid, spec in self.classes.items() if spec.output_node]
        if targets is not None:
            outputs = [nid for nid in outputs if nid in set(map(str, targets))]
        if not outputs:
            result.error = _error("prompt_no_outputs", "Prompt has no outputs", "", {})
            return result
        output_errors: list[str] = []
        for output in outputs:
            try:
                valid, reasons = self._validate(output, [])
            except _LinkFault as fault:
                valid = False
                reasons = [_error("exception_during_validation", "Exception when validating node", str(fault),
                                  {"exception_type": fault.exception_type, "traceback": []})]
                self.validated[output] = (False, reasons)
            if valid:
                result.good_outputs.append(output)
                continue
            output_errors += [f"{r['message']}: {r['details']}" for r in reasons]
            for node_id, (node_valid, node_reasons) in self.validated.items():
                if node_valid or not node_reasons:
                    continue
                entry = result.node_errors.setdefault(node_id, {
                    "errors": node_reasons, "dependent_outputs": [],
                    "class_type": self.prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
        if not result.good_outputs:
            result.error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                  "\n".join(output_errors), {})
        return result

    # ------------------------------------------------------------------ one node

    def _validate(self, node_id: str, visiting: list[str]) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        spec = self.classes[node_id]
        inputs = node.setdefault("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        visiting = visiting + [node_id]
        for input_spec in self._expected_inputs(spec, inputs):
            name = input_spec.name
            if name not in inputs:
                if input_spec.required:
                    errors.append(_error("required_input_missing", "Required input is missing",
                                         name.rsplit(".", 1)[-1], {"input_name": name}))
                continue
            value = inputs[name]
            if isinstance(value, list):
                ok = self._check_link(node_id, input_spec, value, visiting, errors)
                valid = valid and ok
            else:
                self._check_value(spec, input_spec, inputs, errors)
        if node_id in self.validated:  # a cycle through this node was found below it
            return self.validated[node_id]
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result

    def _expected_inputs(self, spec: NodeClass, inputs: Mapping[str, Any]) -> list[InputSpec]:
        """Declared inputs plus the dotted sub-inputs of V3 dynamic combos and autogrow inputs."""
        expected: list[InputSpec] = []
        for input_spec in spec.inputs:
            if input_spec.type == AUTOGROW:
                names, minimum = input_spec.autogrow_names()
                template = (input_spec.options.get("template", {}).get("input", {}).get("required", {}) or {})
                raw = next(iter(template.values()), ["*", {}])
                for index, sub in enumerate(names):
                    dotted = f"{input_spec.name}.{sub}"
                    if index < minimum or dotted in inputs:
                        section = "required" if index < minimum else "optional"
                        expected.append(InputSpec(dotted, section, str(raw[0]), raw[1] if len(raw) > 1 else {},
                                                  raw=raw))
                continue
            expected.append(input_spec)
            if input_spec.type == DYNAMIC_COMBO and isinstance(inputs.get(input_spec.name), str):
                expected += input_spec.dynamic_options().get(inputs[input_spec.name], [])
        return expected

    def _check_link(self, node_id: str, input_spec: InputSpec, value: list, visiting: list[str],
                    errors: list[dict[str, Any]]) -> bool:
        name = input_spec.name
        if len(value) != 2:
            errors.append(_error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                                 name, {"input_name": name, "input_config": input_spec.config, "received_value": value}))
            return False
        source_id = str(value[0])
        if source_id in visiting:
            self._record_cycle(visiting[visiting.index(source_id):])
            return False
        # A link that cannot be followed raises out of this node, as in ComfyUI, where the
        # consumer one level up catches it and charges it to this node.
        source = self.classes.get(source_id)
        if source is None:
            raise _LinkFault(repr(source_id), "KeyError")
        try:
            received = source.outputs[int(value[1])]
        except (IndexError, ValueError, TypeError):
            raise _LinkFault("tuple index out of range", "IndexError") from None
        if not input_spec.accepts_link_type(received):
            errors.append(_error(
                "return_type_mismatch", "Return type mismatch between linked nodes",
                f"{name}, received_type({received}) mismatch input_type({input_spec.type})",
                {"input_name": name, "input_config": input_spec.config, "received_type": received,
                 "linked_node": value}))
            return True  # its own error; the upstream is not followed
        try:
            upstream_ok, _ = self._validate(source_id, visiting)
        except _LinkFault as fault:
            self.validated[source_id] = (False, [_error(
                "exception_during_inner_validation", "Exception when validating inner node", str(fault),
                {"input_name": name, "input_config": input_spec.config, "exception_message": str(fault),
                 "exception_type": fault.exception_type, "traceback": [], "linked_node": value})])
            return False
        return upstream_ok

    def _record_cycle(self, cycle: list[str]) -> None:
        path = " -> ".join(f"{n} ({self.prompt[n]['class_type']})" for n in cycle + cycle[:1])
        for member in cycle:
            self.validated[member] = (False, [_error("dependency_cycle", "Dependency cycle detected", path,
                                                     {"node_id": member, "cycle_nodes": list(cycle)})])

    def _check_value(self, spec: NodeClass, input_spec: InputSpec, inputs: dict[str, Any],
                     errors: list[dict[str, Any]]) -> None:
        name = input_spec.name
        value = inputs[name]
        if isinstance(value, Mapping) and "__value__" in value:
            value = value["__value__"]
        convert = COERCE.get(input_spec.type)
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError) as exc:
                errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {input_spec.type} value",
                                     f"{name}, {value}, {exc}",
                                     {"input_name": name, "input_config": input_spec.config, "received_value": value,
                                      "exception_message": str(exc)}))
                return
            inputs[name] = value
        options = input_spec.options
        if convert in (int, float):
            if "min" in options and value < options["min"]:
                errors.append(_error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}",
                                     name, {"input_name": name, "input_config": input_spec.config, "received_value": value}))
                return
            if "max" in options and value > options["max"]:
                errors.append(_error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}",
                                     name, {"input_name": name, "input_config": input_spec.config, "received_value": value}))
                return
        if (spec.name, name) in FILE_INPUTS:
            self._check_file(spec, name, value, errors)
            return
        if input_spec.choices is not None:
            choices = list(input_spec.choices)
            config = input_spec.config
            folder = model_folder(spec.name, name)
            if folder is not None and self.models is not None:
                choices = sorted(set(choices) | set(self.models.get(folder, ())))
                config = [choices, dict(input_spec.options)]  # what this server has, not the dump's day
            if value not in choices:
                shown = f"(list of length {len(choices)})" if len(choices) > 20 else str(choices)
                errors.append(_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}",
                                     {"input_name": name, "input_config": None if len(choices) > 20 else config,
                                      "received_value": value}))

    def _check_file(self, spec: NodeClass, name: str, value: Any, errors: list[dict[str, Any]]) -> None:
        if self.input_files is None:
            return  # checked by the server once the file is uploaded
        if str(value).split(" [")[0] not in self.input_files:
            kind = FILE_INPUTS[(spec.name, name)]
            errors.append(_error("custom_validation_failed", "Custom validation failed for node",
                                 f"{name} - Invalid {kind} file: {value}", {"input_name": name}))


def check_prompt(prompt: Mapping[str, Any], object_info: Mapping[str, Any], *,
                 input_files: Collection[str] | None = None,
                 models: Mapping[str, Collection[str]] | None = None,
                 targets: Collection[str] | None = None) -> PromptCheck:
    """Validate like ComfyUI's POST /prompt.

    `input_files`: names in the server's input folder (None: don't check uploaded files);
    `models`: folder → model file names that exist, added to a loader's own list (a cached
    object_info dump lists the models of the day it was taken); `targets`: only these
    output nodes (`partial_execution_targets`).
    """
    return _Checker(prompt, object_info, input_files, models).check(targets)


def validate_workflow(prompt: Mapping[str, Any], object_info: Mapping[str, Any], loc: SourceLoc | None, *,
                      what: str = "workflow", models: Mapping[str, Collection[str]] | None = None,
                      custom_nodes: Mapping[str, str] | None = None,
                      check_models: bool = True) -> list[Diagnostic]:
    """Every problem in a bound workflow, as diagnostics at the manifest location `loc`.

    Unlike the server, which stops at the first unknown class, this names every node
    whose class is missing, with the custom-node pack that provides it when known
    (`custom_nodes`: class → pack). `check_models=False` skips model-file lists (a cached
    object_info dump does not know what a server has installed).
    """
    custom_nodes = custom_nodes or {}
    prefix = f"{what}: " if what else ""
    diagnostics: list[Diagnostic] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type") if isinstance(node, Mapping) else None
        if class_type is not None and node_class(object_info, str(class_type)) is None:
            pack = custom_nodes.get(str(class_type))
            hint = (f"install the custom node pack {pack} on the server" if pack
                    else "a custom node that is not installed on the server, or a typo in class_type")
            diagnostics.append(Diagnostic(f"{prefix}{node_label(str(node_id), prompt)}: the server has no node "
                                          f"class '{class_type}'", loc, hint, code="missing_node_type"))
    if diagnostics:
        return diagnostics
    info = object_info if check_models else _without_model_lists(object_info, prompt)
    check = check_prompt(prompt, info, models=models if check_models else None)
    for line, code in _lines_with_codes(check, prompt):
        hint = "install the model on the server or pick one it has" if code == "value_not_in_list" and \
            "not installed" in line else None
        diagnostics.append(Diagnostic(f"{prefix}{line}", loc, hint, code=code))
    return diagnostics


def _lines_with_codes(check: PromptCheck, prompt: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    body = check.body()
    if check.error is not None and check.error.get("type") != "prompt_outputs_failed_validation":
        pairs += [(line, str(check.error.get("type"))) for line in describe_prompt_error(
            {"error": check.error, "node_errors": {}}, prompt)]
    for node_id, entry in (body.get("node_errors") or {}).items():
        for error in entry.get("errors", []):
            text = describe_prompt_error({"node_errors": {node_id: {**entry, "errors": [error]}}}, prompt)
            pairs += [(line, str(error.get("type"))) for line in text]
    return pairs


def _without_model_lists(object_info: Mapping[str, Any], prompt: Mapping[str, Any]) -> Mapping[str, Any]:
    """object_info where the model-file combos used by `prompt` accept any name."""
    patched = dict(object_info)
    for node in prompt.values():
        class_type = str(node.get("class_type")) if isinstance(node, Mapping) else ""
        raw = object_info.get(class_type)
        if not isinstance(raw, Mapping):
            continue
        for name, value in (node.get("inputs") or {}).items():
            if model_folder(class_type, name) is None or isinstance(value, list):
                continue
            raw = copy.deepcopy(raw)
            for section in ("required", "optional"):
                entry = (raw.get("input", {}).get(section) or {}).get(name)
                if entry is None:
                    continue
                if isinstance(entry[0], list):
                    entry[0] = sorted(set(entry[0]) | {value})
                elif len(entry) > 1 and isinstance(entry[1], dict):
                    entry[1]["options"] = sorted(set(entry[1].get("options", [])) | {value})
            patched[class_type] = raw
    return patched
