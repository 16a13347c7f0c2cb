"""The action graph as text: Graphviz dot, Mermaid, or JSON (`storybuild graph`).

Edges point from producer to consumer, as in the graph itself. Output is sorted so the
same graph always prints the same text.
"""

from __future__ import annotations

import json


def _nodes(graph) -> list[str]:
    return sorted(graph.nodes)


def _edges(graph) -> list[tuple[str, str]]:
    return sorted(graph.edges)


def to_dot(graph) -> str:
    """Graphviz dot; each node labelled with its id and kind."""
    lines = ["digraph storybuild {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for node in _nodes(graph):
        action = graph.nodes[node]["action"]
        label = json.dumps(node + "\n" + action.kind)
        lines.append(f"  {json.dumps(node)} [label={label}];")
    for a, b in _edges(graph):
        lines.append(f"  {json.dumps(a)} -> {json.dumps(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph) -> str:
    """A Mermaid flowchart (ids are mapped to n0, n1, … since Mermaid ids cannot hold '/')."""
    names = {node: f"n{i}" for i, node in enumerate(_nodes(graph))}
    lines = ["flowchart LR"]
    for node, name in names.items():
        label = node.replace('"', "'")
        lines.append(f'  {name}["{label}"]')
    for a, b in _edges(graph):
        lines.append(f"  {names[a]} --> {names[b]}")
    return "\n".join(lines) + "\n"


def to_json(graph) -> str:
    """{"nodes": [{id, kind, backend, outputs, loc}], "edges": [[producer, consumer]]}."""
    nodes = []
    for node in _nodes(graph):
        action = graph.nodes[node]["action"]
        nodes.append({"id": node, "kind": action.kind, "backend": action.backend,
                      "outputs": list(action.outputs), "loc": str(action.loc)})
    return json.dumps({"nodes": nodes, "edges": [list(e) for e in _edges(graph)]}, indent=2) + "\n"


FORMATS = {"dot": to_dot, "mermaid": to_mermaid, "json": to_json}
