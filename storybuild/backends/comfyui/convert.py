"""UI-format (litegraph) workflows → API-format prompts, using `/object_info`.

The web UI saves a graph of positioned nodes with positional `widgets_values`; the server
takes a flat `{id: {class_type, inputs, _meta}}`. Following API_NOTES §7, this:

* drops frontend-only nodes (notes, Reroutes, legacy PrimitiveNodes), muted (mode 2) and
  bypassed (mode 4) nodes;
* expands subgraph instances into their inner nodes with path ids (`"64:58"`);
* resolves each link to its real producer through Reroutes, bypassed nodes (pass-through
  by type) and subgraph boundaries; links to dropped producers disappear;
* maps widget values to input names in `input_order`, skipping the UI-only values stored
  after seed-like INTs (`control_after_generate`) and upload combos.

    UI graph ──walk scopes──► nodes in order ──widgets + resolved links──► API prompt
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from storybuild.backends.comfyui.nodespec import DYNAMIC_COMBO, VIRTUAL_NODES, NodeClass, node_class
from storybuild.errors import BackendError

SUBGRAPH_INPUT = -10  # the id of a subgraph's input boundary node
SUBGRAPH_OUTPUT = -20  # the id of a subgraph's output boundary node
MUTED, BYPASSED = 2, 4


@dataclass(frozen=True)
class Link:
    id: int
    origin: int
    origin_slot: int
    target: int
    target_slot: int
    type: str


@dataclass
class Scope:
    """One graph level: the top level, or the inside of one subgraph instance."""

    nodes: list[Mapping[str, Any]]
    links: dict[int, Link]
    prefix: str  # id prefix of the nodes emitted from here ("" or "64:")
    parent: "Scope | None" = None
    instance: Mapping[str, Any] | None = None  # the instance node in `parent`
    definition: Mapping[str, Any] | None = None  # the subgraph definition

    def node(self, node_id: int) -> Mapping[str, Any] | None:
        return next((node for node in self.nodes if node.get("id") == node_id), None)


@dataclass
class Conversion:
    """The API prompt plus what was left out and why."""

    prompt: dict[str, dict[str, Any]]
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (id, type, reason)
    warnings: list[str] = field(default_factory=list)


def is_ui_format(document: Mapping[str, Any]) -> bool:
    """Whether a loaded workflow JSON is the UI (litegraph) format rather than API format."""
    return isinstance(document.get("nodes"), list) and "links" in document


def _read_links(raw_links: Any) -> dict[int, Link]:
    links: dict[int, Link] = {}
    for raw in raw_links or []:
        if isinstance(raw, Mapping):
            link = Link(int(raw["id"]), int(raw["origin_id"]), int(raw["origin_slot"]),
                        int(raw["target_id"]), int(raw["target_slot"]), str(raw.get("type", "*")))
        else:
            link = Link(int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), int(raw[4]), str(raw[5]))
        links[link.id] = link
    return links


class Converter:
    """Converts one UI document; holds the subgraph definitions and the object_info."""

    def __init__(self, document: Mapping[str, Any], object_info: Mapping[str, Any]):
        self.object_info = object_info
        definitions = (document.get("definitions") or {}).get("subgraphs") or []
        self.subgraphs = {str(sg["id"]): sg for sg in definitions}
        self.root = Scope(list(document.get("nodes", [])), _read_links(document.get("links")), "")
        self.result = Conversion({})

    def convert(self) -> Conversion:
        self._emit_scope(self.root)
        emitted = self.result.prompt
        # Links to nodes that were not emitted (unknown ids) are removed, as the frontend does.
        for node in emitted.values():
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and str(value[0]) not in emitted:
                    del node["inputs"][name]
        return self.result

    # ------------------------------------------------------------------ emission

    def _emit_scope(self, scope: Scope) -> None:
        for node in scope.nodes:
            exec_id = f"{scope.prefix}{node['id']}"
            node_type = str(node.get("type"))
            mode = int(node.get("mode") or 0)
            if node_type in VIRTUAL_NODES:
                self.result.skipped.append((exec_id, node_type, "virtual"))
            elif mode in (MUTED, BYPASSED):
                self.result.skipped.append((exec_id, node_type, f"mode {mode}"))
            elif node_type in self.subgraphs:
                self._emit_scope(self._inner_scope(scope, node))
            else:
                self._emit_node(scope, node, exec_id)

    def _inner_scope(self, scope: Scope, instance: Mapping[str, Any]) -> Scope:
        definition = self.subgraphs[str(instance["type"])]
        inner = Scope(list(definition.get("nodes", [])), _read_links(definition.get("links")),
                      f"{scope.prefix}{instance['id']}:", scope, instance, definition)
        self._apply_proxy_widgets(inner, instance)
        return inner

    @staticmethod
    def _apply_proxy_widgets(inner: Scope, instance: Mapping[str, Any]) -> None:
        """Promoted widgets: values shown on the instance override the inner nodes' own."""
        proxies = (instance.get("properties") or {}).get("proxyWidgets") or []
        values = instance.get("widgets_values")
        if not isinstance(values, list) or len(values) != len(proxies):
            return  # nothing promoted with a value of its own (the common case: an empty list)
        overrides: dict[str, dict[str, Any]] = {}
        for (inner_id, widget), value in zip(proxies, values):
            overrides.setdefault(str(inner_id), {})[str(widget)] = value
        patched = []
        for node in inner.nodes:
            extra = overrides.get(str(node.get("id")))
            patched.append({**node, "_proxy_values": extra} if extra else node)
        inner.nodes = patched

    def _emit_node(self, scope: Scope, node: Mapping[str, Any], exec_id: str) -> None:
        class_type = str(node["type"])
        spec = node_class(self.object_info, class_type)
        inputs: dict[str, Any] = {}
        if spec is None:
            self.result.warnings.append(
                f"node {exec_id} ({class_type}) is not in object_info: its widget values cannot be named")
            values = node.get("widgets_values")
            if isinstance(values, Mapping):
                inputs.update({str(k): _wrap(v) for k, v in values.items()})
        else:
            inputs.update(self._widget_inputs(spec, node))
        for entry in node.get("inputs") or []:
            link_id = entry.get("link")
            if link_id is None:
                continue
            source = self._resolve(scope, int(link_id))
            if source is not None:
                inputs[str(entry["name"])] = [source[0], source[1]]
        api_node: dict[str, Any] = {"class_type": class_type, "inputs": inputs}
        if node.get("title"):
            api_node["_meta"] = {"title": node["title"]}
        self.result.prompt[exec_id] = api_node

    @staticmethod
    def _widget_inputs(spec: NodeClass, node: Mapping[str, Any]) -> dict[str, Any]:
        values = node.get("widgets_values")
        inputs: dict[str, Any] = {}
        if isinstance(values, Mapping):  # some custom nodes save widgets by name
            for widget in spec.widgets():
                if widget.name in values:
                    inputs[widget.name] = _wrap(values[widget.name])
        elif isinstance(values, list):
            position = 0
            for widget in spec.widgets():
                if position >= len(values):
                    break
                inputs[widget.name] = _wrap(values[position])
                position += 1 + widget.extra_widget_values
                if widget.type == DYNAMIC_COMBO:
                    # The chosen option's own widgets follow the combo's value (dotted names).
                    for sub in widget.dynamic_options().get(str(inputs[widget.name]), []):
                        if sub.is_widget and position < len(values):
                            inputs[sub.name] = _wrap(values[position])
                            position += 1 + sub.extra_widget_values
        for name, value in (node.get("_proxy_values") or {}).items():
            inputs[name] = _wrap(value)
        return inputs

    # ------------------------------------------------------------------ links

    def _resolve(self, scope: Scope, link_id: int, depth: int = 0) -> tuple[str, int] | None:
        """The real producer `(exec id, slot)` feeding a link, or None if it was dropped."""
        if depth > 256:
            raise BackendError(f"UI workflow: link {link_id} loops through reroutes/bypasses")
        link = scope.links.get(link_id)
        if link is None:
            return None
        if link.origin == SUBGRAPH_INPUT:
            return self._resolve_subgraph_input(scope, link.origin_slot, depth)
        origin = scope.node(link.origin)
        if origin is None:
            return None
        origin_type = str(origin.get("type"))
        mode = int(origin.get("mode") or 0)
        if origin_type == "Reroute":
            upstream = (origin.get("inputs") or [{}])[0].get("link")
            return None if upstream is None else self._resolve(scope, int(upstream), depth + 1)
        if origin_type in VIRTUAL_NODES or mode == MUTED:
            # A legacy PrimitiveNode's value already sits in the target's widgets_values.
            return None
        if mode == BYPASSED:
            through = _bypass_input(origin, link.origin_slot, link.type)
            return None if through is None else self._resolve(scope, through, depth + 1)
        if origin_type in self.subgraphs:
            return self._resolve_subgraph_output(scope, origin, link.origin_slot, depth)
        return f"{scope.prefix}{origin['id']}", link.origin_slot

    def _resolve_subgraph_input(self, scope: Scope, slot: int, depth: int) -> tuple[str, int] | None:
        if scope.parent is None or scope.instance is None or scope.definition is None:
            return None
        declared = scope.definition.get("inputs") or []
        name = declared[slot].get("name") if slot < len(declared) else None
        instance_inputs = scope.instance.get("inputs") or []
        match = next((i for i in instance_inputs if name is not None and i.get("name") == name), None)
        if match is None and name is None and slot < len(instance_inputs):
            match = instance_inputs[slot]
        if match is None or match.get("link") is None:
            return None  # not connected outside: the inner widget keeps its own value
        return self._resolve(scope.parent, int(match["link"]), depth + 1)

    def _resolve_subgraph_output(self, scope: Scope, instance: Mapping[str, Any], slot: int,
                                 depth: int) -> tuple[str, int] | None:
        inner = self._inner_scope(scope, instance)
        for link in inner.links.values():
            if link.target == SUBGRAPH_OUTPUT and link.target_slot == slot:
                return self._resolve(inner, link.id, depth + 1)
        return None


def _bypass_input(node: Mapping[str, Any], slot: int, link_type: str) -> int | None:
    """The link a bypassed node passes through for its output `slot`: an input of that type."""
    outputs = node.get("outputs") or []
    wanted = str(outputs[slot].get("type")) if slot < len(outputs) else link_type
    candidates = [(index, entry) for index, entry in enumerate(node.get("inputs") or [])
                  if entry.get("link") is not None and _types_match(str(entry.get("type", "*")), wanted)]
    if not candidates:
        return None
    # Prefer the input at the same position as the output, as the frontend does.
    for index, entry in candidates:
        if index == slot:
            return int(entry["link"])
    return int(candidates[0][1]["link"])


def _types_match(a: str, b: str) -> bool:
    return a == "*" or b == "*" or bool(set(a.split(",")) & set(b.split(",")))


def _wrap(value: Any) -> Any:
    # A JSON list as an input value is read as a link by the server (T28): wrap it.
    return {"__value__": value} if isinstance(value, list) else value


def ui_to_api(document: Mapping[str, Any], object_info: Mapping[str, Any]) -> Conversion:
    """Convert a UI-format workflow to an API-format prompt using object_info."""
    return Converter(document, object_info).convert()
