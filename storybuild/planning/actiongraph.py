"""Manifest → actions → graph.

`plan_actions` expands a manifest into every action of the film (the film pipeline lives
in planning/film.py) plus one action per custom command step; `build_graph` checks that every
action input has a producer and that there is no cycle, reporting each problem at its
manifest location. Edges point from producer to consumer:

    step/keyframe-1 ──► step/clip-1 ──► step/scene-1 ──► step/film
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from storybuild.actionids import STEP, step_id
from storybuild.backends.contract import STEPS
from storybuild.errors import DiagnosticList, StorybuildError
from storybuild.hashing import static_digest
from storybuild.model import Action, ActionInput, FileInput, Input, Manifest, Quality
from storybuild.planning.film import film_actions
from storybuild.projectpaths import BUILD_DIR



def plan_actions(manifest: Manifest, quality: Quality = Quality.FULL) -> list[Action]:
    """Every action of the manifest: the film's actions, then its custom steps."""
    film = list(film_actions(manifest, quality))
    return film + step_actions(manifest, film, check_build=quality is Quality.FULL)


def step_actions(manifest: Manifest, film: Sequence[Action] = (), check_build: bool = False) -> list[Action]:
    """One `command` action per custom step.

    A step input that another step declares as an output, or that names a file the film
    shows under build/, becomes an input from that action, so steps chain like make rules
    and can post-process the film.
    """
    producers: dict[str, tuple[str, str]] = {}
    for action in film:
        for name, path in action.view.items():
            producers[f"{BUILD_DIR}/{path}"] = (action.id, name)
    problems = DiagnosticList()
    for step in manifest.steps:
        for out in step.outputs:
            if out in producers and producers[out][0] != step_id(step.id):
                problems.error(f"step {step.id!r} declares output {out!r}, which {producers[out][0]!r} also makes",
                               step.loc, hint="every file must have exactly one producer")
            producers[out] = (step_id(step.id), out)
    problems.raise_if_errors()

    actions = []
    for index, step in enumerate(manifest.steps):
        path = step.path or f"steps[{index}]"
        inputs = []
        for rel in step.inputs:
            producer = producers.get(rel)
            # Steps post-process the full film; a preview pass shows its files under build/preview/.
            if check_build and producer is None and (rel == BUILD_DIR or rel.startswith(BUILD_DIR + "/")):
                problems.error(f"step {step.id!r} reads {rel!r}, which no action makes: build/ holds only what "
                               "the film's actions show there", step.loc,
                               hint="name a file the film makes (`storybuild graph` lists them), e.g. build/film.mp4")
            source = ActionInput(*producer) if producer else FileInput(rel)
            inputs.append(Input(rel, source))
        actions.append(Action(
            id=step_id(step.id), kind=STEP, backend=STEPS,
            params={"argv": list(step.argv), "env": dict(step.env), "outputs": list(step.outputs)},
            inputs=tuple(inputs), outputs=tuple(step.outputs), loc=step.loc,
            origins={"argv": f"{path}.argv", "env": f"{path}.env", "outputs": f"{path}.outputs"},
        ))
    problems.raise_if_errors()
    return actions


def _check(actions: Sequence[Action]) -> dict[str, Action]:
    by_id: dict[str, Action] = {}
    problems = DiagnosticList()
    for action in actions:
        if action.id in by_id:
            problems.error(f"two actions are named {action.id!r}", action.loc,
                           hint=f"the other one is at {by_id[action.id].loc}")
        by_id[action.id] = action
    for action in actions:
        for inp in action.inputs:
            src = inp.source
            if not isinstance(src, ActionInput):
                continue
            producer = by_id.get(src.action)
            if producer is None:
                problems.error(f"{action.id}: input {inp.name!r} needs {src.action!r}, which nothing produces",
                               action.loc)
            elif src.output not in producer.outputs:
                problems.error(f"{action.id}: input {inp.name!r} needs output {src.output!r} of {src.action!r}, "
                               f"which declares only {', '.join(producer.outputs) or 'no outputs'}", action.loc)
    problems.raise_if_errors()
    return by_id


def build_graph(actions: Sequence[Action]):
    """A networkx DiGraph of the actions (node attribute `action`), producer → consumer.

    Raises ManifestError for duplicate ids, inputs without a producer and cycles.
    """
    import networkx as nx

    by_id = _check(actions)
    graph = nx.DiGraph()
    for action in actions:
        graph.add_node(action.id, action=action)
    for action in actions:
        for dep in action.deps():
            graph.add_edge(dep, action.id)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return graph
    _raise_cycle([u for u, _ in cycle], by_id)


def _raise_cycle(ids: list[str], by_id: Mapping[str, Action]) -> None:
    problems = DiagnosticList()
    path = " → ".join(ids + [ids[0]])
    for i, node in enumerate(ids):
        message = f"dependency cycle: {path}" if i == 0 else f"{node} is part of the cycle"
        problems.error(message, by_id[node].loc, hint="an action cannot depend on its own output")
    problems.raise_if_errors()


def topological(actions: Sequence[Action]) -> list[Action]:
    """The actions in dependency order (Kahn's algorithm, stable in manifest order).

    Raises ManifestError like `build_graph` when the actions do not form a DAG.
    """
    by_id = _check(actions)
    waiting = {a.id: len(a.deps()) for a in actions}
    consumers: dict[str, list[str]] = {a.id: [] for a in actions}
    for action in actions:
        for dep in action.deps():
            consumers[dep].append(action.id)
    ready = deque(a.id for a in actions if waiting[a.id] == 0)
    order = []
    while ready:
        node = ready.popleft()
        order.append(by_id[node])
        for consumer in consumers[node]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                ready.append(consumer)
    if len(order) != len(actions):
        build_graph(actions)  # finds and reports the cycle with its locations
    return order


def backend_config(manifest: Manifest, backend: str) -> Mapping[str, Any]:
    """The manifest's `backends.<name>` section for one backend (what ctx.config holds)."""
    from storybuild.backends.contract import settings_of

    return settings_of(manifest.backends, backend)


def closure(roots: Iterable[str], actions: Mapping[str, Action]) -> set[str]:
    """The roots and everything they depend on."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(actions[node].deps())
    return seen


def dependents(roots: Iterable[str], order: Sequence[Action]) -> set[str]:
    """The roots and everything that depends on them; `order` is in dependency order."""
    seen = set(roots)
    for action in order:
        if action.id not in seen and not action.deps().isdisjoint(seen):
            seen.add(action.id)
    return seen


class Static(NamedTuple):
    """The input-independent part of an action's key, kept for explaining changes."""

    digest: str
    version: str
    config: Any


def statics(manifest: Manifest, actions: Sequence[Action]) -> dict[str, Static]:
    """Each action's Static: backend version and config_key hashed with kind and params.

    This asks each backend for its `config_key`, so it imports backend modules; the
    result is cached with the plan, keeping no-op and one-change builds off that path.
    """
    from storybuild.backends.contract import get_backend

    configs: dict[str, Mapping[str, Any]] = {}
    out: dict[str, Static] = {}
    for action in actions:
        name = action.backend
        backend = get_backend(name)
        if name not in configs:
            configs[name] = backend_config(manifest, name)
        version = str(backend.version)
        config = backend.config_key(action.kind, action.params, configs[name])
        try:
            digest = static_digest(action.kind, name, version, config, action.params)
        except (TypeError, ValueError) as exc:
            raise StorybuildError(f"{action.id}: its parameters cannot be hashed: {exc}", action.loc) from None
        out[action.id] = Static(digest, version, config)
    return out
