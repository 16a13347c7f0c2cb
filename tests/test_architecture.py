"""The layers, drawn from the sources: no import cycles, no import from a lower layer to a higher one.

Every `import` and `from … import` in storybuild/ counts, at module level or inside a
function (a lazy import is still an arrow). docs/architecture.md draws the same layers.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import networkx as nx
import pytest

from storybuild.backends.contract import BUILTIN

PACKAGE = Path(__file__).resolve().parents[1] / "storybuild"

# Each layer may import itself and the layers of lower rank; two layers of one rank not each other.
LAYERS = {
    "ground": 0,  # errors, model, events, hashing, projectpaths: used by all
    "store": 1,  # CAS, action cache, state DB, lock file, the build/ view
    "backends": 1,  # the backend contract and each backend's folder
    "manifest": 2,  # YAML → includes → schema → checks → Jinja text → model
    "planning": 3,  # model → actions → graph; targets; the pure decision
    "engine": 4,  # session, full build, scheduler, action runner, recorder
    "preview": 5,  # the preview page and its server
    "watch": 6,  # rebuild on save, serving the preview
    "cli": 7,  # the command line: the only layer that prints or exits
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "storybuild.__main__":
        return "cli"
    if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()):
        return parts[1]
    return "ground"


def imports(known: dict[str, Path]) -> nx.DiGraph:
    graph = nx.DiGraph()
    for name, path in known.items():
        graph.add_node(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            for target in targets:
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target.startswith("storybuild") and target not in (name, "storybuild"):
                    graph.add_edge(name, target)
    return graph


GRAPH = imports(modules())


def test_there_are_no_import_cycles() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    assert cycles == []


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer(m) for m in GRAPH} <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_goes_up_or_sideways(module: str) -> None:
    mine = layer(module)
    wrong = [f"{module} ({mine}) imports {target} ({layer(target)})" for target in sorted(GRAPH.successors(module))
             if layer(target) != mine and LAYERS[layer(target)] >= LAYERS[mine]]
    assert wrong == []


def test_no_two_modules_share_a_name_outside_backend_entry_points() -> None:
    # Each backend folder's entry module is backend.py, as each Blender add-on has its
    # __init__: the one place that declares it. Every other module name is unique.
    names = Counter(m.rpartition(".")[2] for m in GRAPH if not m.endswith((".__init__", ".backend"))
                    and m.count(".") > 0 and (PACKAGE / Path(*m.split(".")[1:])).with_suffix(".py").exists())
    assert sorted(n for n, count in names.items() if count > 1) == []


# The core names no backend: outside a backend's folder (and the registry, which must name
# the built-ins it ships and the defaults), no module imports it or spells its name in code.
BACKENDS = sorted(BUILTIN)
REGISTRY = "storybuild.backends.contract"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def mentions(module: str, path: Path, backend: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    own = f"storybuild.backends.{backend}"
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == own or n.startswith(own + ".") for n in names):
                found.append(f"{module}:{node.lineno} imports {own}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
            if text == backend or f"backends.{backend}" in text or f"/{backend}/" in text:
                found.append(f"{module}:{node.lineno} says {text!r}")
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_module_outside_a_backend_names_it(backend: str) -> None:
    outside = {m: p for m, p in modules().items()
               if not m.startswith(f"storybuild.backends.{backend}") and m != REGISTRY}
    assert [hit for m, p in sorted(outside.items()) for hit in mentions(m, p, backend)] == []
