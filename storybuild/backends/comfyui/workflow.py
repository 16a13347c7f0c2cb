"""API-format workflows: load them, find nodes, and apply a manifest's parameter bindings.

A binding (model.Binding) says where a manifest parameter goes: a node addressed by its
`_meta.title` or its id, and an input name. Applying bindings never mutates the template;
it returns a new prompt. Problems are collected and raised together, each naming the
binding's manifest location and the workflow node.

Structural parameters are more than a value: `loras` inserts a chain of LoRA loaders
after the bound model loader; an `optional` flag bypasses a node (its consumers are fed
its pass-through input) and the prompt is pruned of nodes no output needs any more.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from storybuild.backends.comfyui.convert import is_ui_format, ui_to_api
from storybuild.errors import Diagnostic, ManifestError, SourceLoc

# Params whose value names an input file of the action (ctx.inputs); the backend uploads
# the file and binds the name the server stored it under.
FILE_PARAMS = frozenset({"image", "mask", "audio", "video", "clip", "end_image", "controlnet.image",
                         "controlnet_image", "reference", "ipadapter.image", "reference_audio"})
UPLOAD_PLACEHOLDER = "<upload:{}>"  # what a file param binds to before the upload (config keys)


def upload_name(value: Any) -> str | None:
    """The input name inside an upload placeholder, or None for any other value."""
    if isinstance(value, str) and value.startswith("<upload:") and value.endswith(">"):
        return value[len("<upload:"):-1]
    return None


@dataclass(frozen=True)
class BindingSpec:
    """A binding as carried in action params: plain strings, JSON-friendly."""

    param: str
    node: str
    input: str
    loc: str = ""
    map: tuple[tuple[str, Any], ...] = ()  # value (as text) → what the node wants ("true" for True)

    @classmethod
    def read(cls, raw: Any) -> "BindingSpec":
        """From a model.Binding, a dict `{param, node, input, loc?, map?}` or a 3-list."""
        if isinstance(raw, BindingSpec):
            return raw
        if isinstance(raw, Mapping):
            return cls(str(raw["param"]), str(raw["node"]), str(raw["input"]), str(raw.get("loc") or ""),
                       tuple(sorted((str(k), v) for k, v in (raw.get("map") or {}).items())))
        if isinstance(raw, (list, tuple)):
            return cls(*(str(x) for x in raw))
        loc = getattr(raw, "loc", None)
        return cls(raw.param, raw.node, raw.input, str(loc) if loc is not None and loc.file != "<none>" else "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"param": self.param, "node": self.node, "input": self.input}
        if self.loc:
            out["loc"] = self.loc
        if self.map:
            out["map"] = dict(self.map)
        return out

    def convert(self, value: Any) -> Any:
        """The value after this binding's map (booleans read as "true"/"false")."""
        if not self.map:
            return value
        key = str(value).lower() if isinstance(value, bool) else str(value)
        return dict(self.map).get(key, value)


def parse_loc(text: str | None) -> SourceLoc | None:
    """`file:line:col` (as SourceLoc prints) back into a SourceLoc."""
    if not text:
        return None
    parts = str(text).rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return SourceLoc(parts[0], int(parts[1]), int(parts[2]))
    return SourceLoc(str(text))


def load_workflow(source: str | Path | Mapping[str, Any], object_info: Mapping[str, Any] | None = None,
                  *, loc: SourceLoc | None = None) -> dict[str, Any]:
    """An API-format prompt from a file or dict; UI-format documents are converted first."""
    if isinstance(source, Mapping):
        document: Any = copy.deepcopy(dict(source))
        name = "workflow"
    else:
        path = Path(source)
        name = path.name
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError([Diagnostic(f"workflow file {path} does not exist", loc)]) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError([Diagnostic(f"workflow file {name} is not valid JSON: {exc}", loc)]) from None
    if not isinstance(document, dict):
        raise ManifestError([Diagnostic(f"{name}: a workflow must be a JSON object", loc)])
    if is_ui_format(document):
        if object_info is None:
            raise ManifestError([Diagnostic(
                f"{name} is a UI-format workflow; converting it needs a server's object_info", loc,
                "set backends.comfyui.object_info to a saved GET /object_info, or export the "
                "workflow with 'Save (API)'")])
        return ui_to_api(document, object_info).prompt
    if isinstance(document.get("prompt"), dict):  # a saved POST /prompt body
        document = document["prompt"]
    bad = [key for key, node in document.items() if not isinstance(node, Mapping) or "inputs" not in node]
    if bad:
        raise ManifestError([Diagnostic(f"{name}: node {bad[0]!r} is not an API-format node "
                                        "({class_type, inputs})", loc)])
    return document


def find_node(prompt: Mapping[str, Any], ref: str) -> str | None:
    """The id of the node a binding addresses: its id, or its unique `_meta.title`."""
    if ref in prompt:
        return ref
    matches = [node_id for node_id, node in prompt.items()
               if isinstance(node.get("_meta"), Mapping) and node["_meta"].get("title") == ref]
    return matches[0] if len(matches) == 1 else None


def _titles(prompt: Mapping[str, Any]) -> list[str]:
    return sorted({str(n["_meta"]["title"]) for n in prompt.values()
                   if isinstance(n.get("_meta"), Mapping) and n["_meta"].get("title")})


def lookup(values: Mapping[str, Any], param: str) -> tuple[bool, Any]:
    """A value by param name; a dotted name reaches into a nested dict (`controlnet.model`)."""
    if param in values:
        return True, values[param]
    current: Any = values
    for part in param.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


class Binder:
    """Applies bindings to a copy of a prompt, collecting every problem."""

    def __init__(self, prompt: Mapping[str, Any], *, what: str, loc: SourceLoc | None,
                 object_info: Mapping[str, Any] | None = None):
        self.prompt: dict[str, Any] = copy.deepcopy(dict(prompt))
        self.what = what
        self.loc = loc
        self.object_info = object_info
        self.problems: list[Diagnostic] = []

    def problem(self, message: str, binding: BindingSpec | None = None, hint: str | None = None) -> None:
        loc = parse_loc(binding.loc) if binding is not None and binding.loc else self.loc
        self.problems.append(Diagnostic(f"{self.what}: {message}", loc, hint, code="binding"))

    def node(self, binding: BindingSpec) -> str | None:
        node_id = find_node(self.prompt, binding.node)
        if node_id is None:
            titles = _titles(self.prompt)
            ambiguous = sum(1 for n in self.prompt.values()
                            if isinstance(n.get("_meta"), Mapping) and n["_meta"].get("title") == binding.node)
            reason = f"{ambiguous} nodes are titled {binding.node!r}" if ambiguous > 1 else \
                f"no node has id or title {binding.node!r}"
            self.problem(f"binding for '{binding.param}': {reason}", binding,
                         f"titles in this workflow: {', '.join(titles) or 'none'}")
        return node_id

    def declared_inputs(self, node_id: str) -> set[str]:
        node = self.prompt[node_id]
        names = set(node.get("inputs", {}))
        raw = (self.object_info or {}).get(str(node.get("class_type")))
        if isinstance(raw, Mapping):
            for section in ("required", "optional"):
                names |= set((raw.get("input", {}) or {}).get(section, {}) or {})
        return names

    def input_known(self, binding: BindingSpec, node_id: str) -> bool:
        """Whether the bound node has the input; records a problem naming its inputs if not."""
        known = self.declared_inputs(node_id)
        if binding.input in known:
            return True
        self.problem(f"binding for '{binding.param}': node #{node_id} ({self.prompt[node_id].get('class_type')}) "
                     f"has no input {binding.input!r}", binding, f"its inputs: {', '.join(sorted(known)) or 'none'}")
        return False

    def set(self, binding: BindingSpec, value: Any) -> None:
        node_id = self.node(binding)
        if node_id is None or not self.input_known(binding, node_id):
            return
        # A list would be read as a link by the server (T28): wrap it.
        self.prompt[node_id]["inputs"][binding.input] = {"__value__": value} if isinstance(value, list) else value

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ManifestError(self.problems)


def insert_loras(prompt: dict[str, Any], loader_id: str, loras: Iterable[Any], with_clip: bool) -> list[str]:
    """Chain LoRA loaders after a model loader and feed its consumers from the last one.

    `loras`: names, or `{name, strength}` / `{name, strength_model, strength_clip}`.
    With `with_clip`, LoraLoader patches MODEL (slot 0) and CLIP (slot 1); otherwise
    LoraLoaderModelOnly patches MODEL only. Returns the new node ids.
    """
    consumers = [(node_id, name, value[1]) for node_id, node in prompt.items()
                 for name, value in node.get("inputs", {}).items()
                 if isinstance(value, list) and len(value) == 2 and str(value[0]) == loader_id
                 and value[1] in ((0, 1) if with_clip else (0,))]
    model_src, clip_src = [loader_id, 0], [loader_id, 1]
    added = []
    for index, lora in enumerate(loras):
        entry = {"name": lora} if isinstance(lora, str) else dict(lora)
        node_id = f"{loader_id}:lora{index}"
        strength = float(entry.get("strength", 1.0))
        inputs: dict[str, Any] = {"lora_name": entry["name"],
                                  "strength_model": float(entry.get("strength_model", strength)),
                                  "model": model_src}
        if with_clip:
            inputs.update(strength_clip=float(entry.get("strength_clip", strength)), clip=clip_src)
        prompt[node_id] = {"class_type": "LoraLoader" if with_clip else "LoraLoaderModelOnly", "inputs": inputs,
                           "_meta": {"title": f"LoRA {entry['name']}"}}
        model_src, clip_src = [node_id, 0], [node_id, 1]
        added.append(node_id)
    for node_id, name, slot in consumers:
        prompt[node_id]["inputs"][name] = list(model_src if slot == 0 else clip_src)
    return added


def bypass_node(prompt: dict[str, Any], node_id: str, through: str) -> None:
    """Remove a node, feeding its consumers from its input `through` (ComfyUI's bypass)."""
    source = prompt[node_id]["inputs"].get(through)
    del prompt[node_id]
    for node in prompt.values():
        for name, value in list(node.get("inputs", {}).items()):
            if isinstance(value, list) and len(value) == 2 and str(value[0]) == node_id:
                if isinstance(source, list):
                    node["inputs"][name] = list(source)
                else:
                    del node["inputs"][name]


def prune(prompt: dict[str, Any], outputs: Iterable[str]) -> None:
    """Drop every node that none of `outputs` depends on (e.g. a loader left by a bypass)."""
    keep: set[str] = set()
    stack = [o for o in outputs if o in prompt]
    while stack:
        node_id = stack.pop()
        if node_id in keep:
            continue
        keep.add(node_id)
        for value in prompt[node_id].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt:
                stack.append(str(value[0]))
    for node_id in [n for n in prompt if n not in keep]:
        del prompt[node_id]


def bind(prompt: Mapping[str, Any], bindings: Iterable[Any], values: Mapping[str, Any], *,
         what: str = "workflow", loc: SourceLoc | None = None, object_info: Mapping[str, Any] | None = None,
         uploads: Mapping[str, str] | None = None, optional: Mapping[str, Mapping[str, str]] | None = None,
         outputs: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of `prompt` with `values` applied through `bindings`.

    File params (FILE_PARAMS) bind the server-side name from `uploads` (input name →
    uploaded name); before the upload (planning, config keys) they bind a placeholder.
    `optional`: flag param → `{node, through}`; a falsy or absent flag bypasses the node.
    `outputs`: output node refs; when given, nodes they do not need are pruned.
    """
    binder = Binder(prompt, what=what, loc=loc, object_info=object_info)
    specs = [BindingSpec.read(raw) for raw in bindings]
    for spec in specs:
        present, value = lookup(values, spec.param)
        if not present or value is None:
            continue  # the workflow's own value stays
        if spec.param == "loras":
            node_id = binder.node(spec)
            if node_id is not None and value:
                insert_loras(binder.prompt, node_id, value, with_clip=spec.input == "model,clip")
            continue
        if spec.param in FILE_PARAMS:
            name = str(value)
            value = (uploads or {}).get(name, UPLOAD_PLACEHOLDER.format(name))
        binder.set(spec, spec.convert(value))
    for flag, target in (optional or {}).items():
        present, value = lookup(values, flag)
        if present and value:
            continue
        node_id = find_node(binder.prompt, str(target["node"]))
        if node_id is None:
            binder.problem(f"optional '{flag}': no node has id or title {target['node']!r}")
            continue
        bypass_node(binder.prompt, node_id, str(target["through"]))
    binder.raise_if_problems()
    output_ids = [find_node(binder.prompt, ref) for ref in outputs]
    if output_ids and all(output_ids):
        prune(binder.prompt, [o for o in output_ids if o])
    return binder.prompt


def check_bindings(prompt: Mapping[str, Any], bindings: Iterable[Any], *, what: str = "workflow",
                   loc: SourceLoc | None = None, object_info: Mapping[str, Any] | None = None) -> list[Diagnostic]:
    """Every binding that addresses no node, an ambiguous title, or an input the node lacks."""
    binder = Binder(prompt, what=what, loc=loc, object_info=object_info)
    for spec in (BindingSpec.read(raw) for raw in bindings):
        node_id = binder.node(spec)
        if node_id is not None and spec.param != "loras":  # a LoRA chain hangs off the loader's outputs
            binder.input_known(spec, node_id)
    return binder.problems


def referenced_models(prompt: Mapping[str, Any]) -> list[str]:
    """Model file names a prompt loads (for config keys and routing), sorted."""
    from storybuild.backends.comfyui.nodespec import model_folder

    names = set()
    for node in prompt.values():
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, str) and model_folder(str(node.get("class_type")), name):
                names.add(value)
    return sorted(names)
