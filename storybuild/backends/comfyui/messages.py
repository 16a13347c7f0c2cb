"""Text a filmmaker can act on, from ComfyUI's error payloads.

ComfyUI reports problems as `{type, message, details, extra_info}` (validation) or as an
`execution_error` event with a traceback and tensor reprs. These functions name the
workflow node (id, class, title) and say what is wrong in plain words, never echoing
tracebacks, tensors or server paths (API_NOTES §8.11).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from storybuild.backends.comfyui.nodespec import model_folder

MAX_CHOICES_SHOWN = 8


def node_label(node_id: str, prompt: Mapping[str, Any], class_type: str | None = None) -> str:
    """`node #4 'Blur' (ImageBlur)`: the id, title if any, and class of a workflow node."""
    node = prompt.get(str(node_id)) if isinstance(prompt, Mapping) else None
    node = node if isinstance(node, Mapping) else {}
    class_type = class_type or node.get("class_type") or "?"
    meta = node.get("_meta") if isinstance(node.get("_meta"), Mapping) else {}
    title = meta.get("title")
    if title and title != class_type:
        return f"node #{node_id} '{title}' ({class_type})"
    return f"node #{node_id} ({class_type})"


def _choices(values: Any) -> str:
    items = list(values) if isinstance(values, (list, tuple)) else []
    if not items:
        return "none"
    shown = ", ".join(str(v) for v in items[:MAX_CHOICES_SHOWN])
    more = len(items) - MAX_CHOICES_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _combo_choices(extra: Mapping[str, Any]) -> Any:
    config = extra.get("input_config")
    if not isinstance(config, list) or not config:
        return None
    head = config[0]
    if isinstance(head, list):
        return head
    options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
    return options.get("options")


def describe_node_error(class_type: str, error: Mapping[str, Any]) -> str:
    """One ComfyUI node error as a phrase (without the node label)."""
    kind = error.get("type", "")
    extra = error.get("extra_info") or {}
    details = str(error.get("details", ""))
    name = extra.get("input_name") or details.split(",")[0].split(":")[0]
    value = extra.get("received_value")
    if kind == "required_input_missing":
        return f"required input '{name}' is missing"
    if kind == "invalid_input_type":
        config = extra.get("input_config") or ["?"]
        return f"input '{name}' = {value!r} is not a valid {config[0]}"
    if kind == "value_bigger_than_max":
        limit = re.search(r"max of (\S+)", str(error.get("message", "")))
        return f"input '{name}' = {value!r} is above the maximum {limit[1] if limit else '?'}"
    if kind == "value_smaller_than_min":
        limit = re.search(r"min of (\S+)", str(error.get("message", "")))
        return f"input '{name}' = {value!r} is below the minimum {limit[1] if limit else '?'}"
    if kind == "value_not_in_list":
        choices = _combo_choices(extra)
        folder = model_folder(class_type, str(name))
        if folder is not None:
            listed = "no files" if not choices else _choices(choices)
            return (f"model '{value}' is not installed on the server "
                    f"(its models/{folder} folder has {listed})")
        shown = _choices(choices) if choices is not None else details.partition(" not in ")[2]
        return f"input '{name}' = {value!r} is not one of: {shown}"
    if kind == "custom_validation_failed":
        return f"input '{name}': {details.partition(' - ')[2] or details}"
    if kind == "bad_linked_input":
        return f"input '{name}' is not a valid link (expected [node id, output slot], got {value!r})"
    if kind == "return_type_mismatch":
        linked = extra.get("linked_node") or ["?", "?"]
        config = extra.get("input_config") or ["?"]
        return (f"input '{name}' expects {config[0]} but is linked to a {extra.get('received_type')} "
                f"output (node #{linked[0]}, slot {linked[1]})")
    if kind == "exception_during_inner_validation":
        if extra.get("exception_type") == "KeyError":
            return f"a link points at node #{details.strip(chr(39))}, which is not in the workflow"
        if extra.get("exception_type") == "IndexError":
            return "a link points at an output slot that its source node does not have"
        return f"could not be validated ({details})"
    if kind == "dependency_cycle":
        return f"is part of a dependency cycle: {details}"
    return f"{error.get('message', kind)}{': ' + details if details else ''}"


def describe_prompt_error(body: Mapping[str, Any], prompt: Mapping[str, Any]) -> list[str]:
    """Every problem in a POST /prompt answer (`{error, node_errors}`), one line each."""
    lines: list[str] = []
    error = body.get("error") if isinstance(body.get("error"), Mapping) else None
    node_errors = body.get("node_errors") if isinstance(body.get("node_errors"), Mapping) else {}
    if error is not None and error.get("type") == "missing_node_type":
        extra = error.get("extra_info") or {}
        node_id = str(extra.get("node_id", "?"))
        class_type = extra.get("class_type")
        if class_type is None:
            title = error.get("extra_info", {}).get("node_title")
            named = f"node #{node_id}" + (f" '{title}'" if title else "")
            lines.append(f"{named} has no class_type (the workflow file is damaged)")
        else:
            label = node_label(node_id, prompt, class_type)
            lines.append(f"{label}: the server has no node class '{class_type}' "
                         "(a custom node that is not installed there?)")
    elif error is not None and error.get("type") == "prompt_no_outputs":
        lines.append("the workflow has no output node (SaveImage, SaveAnimatedWEBP, SaveAudio, …), "
                     "so the server would not run anything")
    elif error is not None and error.get("type") not in (None, "prompt_outputs_failed_validation"):
        lines.append(f"the server rejected the prompt: {error.get('message')} ({error.get('type')})")
    for node_id, entry in node_errors.items():
        class_type = entry.get("class_type") or "?"
        for node_error in entry.get("errors") or []:
            lines.append(f"{node_label(str(node_id), prompt, class_type)}: {describe_node_error(class_type, node_error)}")
    if not lines and error is not None:
        lines.append(f"the server rejected the prompt: {error.get('message')}")
    return lines


def clean_exception_message(message: Any) -> str:
    """The useful first line of a server exception, without banners, paths or tensors."""
    for line in str(message or "").splitlines():
        line = line.strip().strip("*").strip()
        line = re.sub(r"^ERROR:\s*", "", line)
        if line:
            line = re.sub(r"(?:[A-Za-z]:)?(?:/[\w.\-<>]+){2,}", "<path>", line)
            return line[:300]
    return "no message"


def describe_execution_error(event: Mapping[str, Any], prompt: Mapping[str, Any]) -> str:
    """An `execution_error` event as one line naming the node and the exception."""
    node_id = str(event.get("node_id", "?"))
    label = node_label(node_id, prompt, event.get("node_type"))
    exception = event.get("exception_type") or "error"
    return f"{label} failed on the server: {exception}: {clean_exception_message(event.get('exception_message'))}"
