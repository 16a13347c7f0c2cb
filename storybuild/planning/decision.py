"""Decide what must run, and say why. Pure: no files, no database, no clock.

Given the actions in dependency order, each action's static key part, the digests of the
source files, a lookup into the caches and what each action was last built from, `plan`
returns the Steps to run, each with the reasons that name the exact input that changed
and where the manifest wrote it:

    input changed: characters.mara.voice.rate (storybuild.yaml:14:9)

An action downstream of one that runs gets a Step with key None: its key depends on
bytes not yet made. The executor computes it once its inputs exist and, when the rebuilt
upstream made identical bytes, serves it from the cache instead (early cut-off).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from storybuild.errors import SourceLoc
from storybuild.hashing import action_key, jsonable, plain
from storybuild.model import Action, ActionInput, FileInput
from storybuild.planning.actiongraph import Static

Lookup = Callable[[str, str], "Mapping[str, str] | None"]  # (key, action id) → outputs
LocOf = Callable[[str], "SourceLoc | None"]

# Past this many reasons for one action, the rest are summarised in one line.
MAX_REASONS = 8


@dataclass(frozen=True)
class Reason:
    """Why a step runs: a short code, a message and, when known, where it was written."""

    code: str  # new | forced | failed | version | config | param | input | upstream | missing
    message: str
    loc: SourceLoc | None = None

    def __str__(self) -> str:
        return f"{self.message} ({self.loc})" if self.loc is not None else self.message


@dataclass(frozen=True)
class Step:
    """An action that runs in this build, with its reasons; key None until its inputs exist."""

    action: Action
    reasons: tuple[Reason, ...]
    key: str | None


class Fresh(NamedTuple):
    """An up-to-date action: its key and the digests of its cached outputs."""

    key: str
    outputs: Mapping[str, str]


class Previous(NamedTuple):
    """What an action was last built from (see `detail`)."""

    key: str
    detail: str  # JSON made by `detail`


@dataclass
class Plan:
    """Steps to run in dependency order, and the actions served from the cache."""

    steps: list[Step] = field(default_factory=list)
    fresh: dict[str, Fresh] = field(default_factory=dict)


def detail(action: Action, static: Static, inputs: Mapping[str, str]) -> str:
    """The JSON a build records per action so a later plan can diff against it."""
    return json.dumps({"static": static.digest, "version": static.version, "config": static.config,
                       "params": action.params, "inputs": inputs}, sort_keys=True, default=jsonable)


def input_digests(action: Action, sources: Mapping[str, str | None],
                  outputs: Mapping[str, Mapping[str, str]]) -> dict[str, str] | None:
    """Input name → digest, or None while an upstream output is not known yet."""
    digests = {}
    for inp in action.inputs:
        src = inp.source
        if isinstance(src, FileInput):
            digest = sources.get(src.path)
        else:
            made = outputs.get(src.action)
            digest = made.get(src.output) if made is not None else None
        if digest is None:
            return None
        digests[inp.name] = digest
    return digests


def plan(order: Sequence[Action], statics: Mapping[str, Static], sources: Mapping[str, str | None],
         lookup: Lookup, previous: Mapping[str, Previous], *, force: Iterable[str] = (),
         failed: Mapping[str, str] | None = None, loc_of: LocOf = lambda path: None,
         known: Mapping[str, Fresh] | None = None) -> Plan:
    """The steps that must run to bring `order` up to date, with their reasons.

    `known` are actions already decided up to date (not in `order`); actions in `order`
    may read their outputs."""
    forced = set(force)
    failed = failed or {}
    result = Plan(fresh=dict(known or {}))
    made: dict[str, Mapping[str, str]] = {i: f.outputs for i, f in result.fresh.items()}
    running: set[str] = set()
    for action in order:
        static = statics[action.id]
        upstream = sorted(dep for dep in action.deps() if dep in running)
        digests = None if upstream else input_digests(action, sources, made)
        key = action_key(static.digest, digests) if digests is not None else None
        if key is not None and action.id not in forced:
            outputs = lookup(key, action.id)
            if outputs is not None and all(name in outputs for name in action.outputs):
                result.fresh[action.id] = Fresh(key, outputs)
                made[action.id] = outputs
                continue
        reasons = explain(action, static, digests, key, previous.get(action.id), loc_of,
                          forced=action.id in forced, failed=failed.get(action.id), upstream=upstream)
        running.add(action.id)
        result.steps.append(Step(action, tuple(reasons), key))
    return result


def explain(action: Action, static: Static, inputs: Mapping[str, str] | None, key: str | None,
            prev: Previous | None, loc_of: LocOf, *, forced: bool = False, failed: str | None = None,
            upstream: Sequence[str] = ()) -> list[Reason]:
    """The reasons `action` must run, most specific first."""
    reasons: list[Reason] = []
    if forced:
        reasons.append(Reason("forced", "forced (--force)"))
    if failed is not None:
        reasons.append(Reason("failed", f"failed last time: {failed.splitlines()[0] if failed else 'error'}"))
    if prev is None:
        reasons.append(Reason("new", "new: never built", action.loc))
        return reasons
    old = json.loads(prev.detail)
    if old.get("version") != static.version:
        reasons.append(Reason("version", f"backend {action.backend} version changed: "
                                         f"{old.get('version')} → {static.version}"))
    if old.get("static") != static.digest:
        for path in _changed(old.get("config"), plain(static.config)):
            reasons.append(Reason("config", f"backend config changed: {action.backend}{path}"))
        for path in _changed(old.get("params"), plain(action.params)):
            reasons.append(_param_reason(action, path, loc_of))
    for name in upstream:
        reasons.append(Reason("upstream", f"upstream {name} runs first"))
    if inputs is not None:
        old_inputs = old.get("inputs", {})
        for inp in action.inputs:
            if old_inputs.get(inp.name) != inputs.get(inp.name):
                reasons.append(_input_reason(inp.name, inp.source, inp.name not in old_inputs))
        for name in sorted(set(old_inputs) - {i.name for i in action.inputs}):
            reasons.append(Reason("input", f"input removed: {name}"))
    elif not upstream:
        reasons.append(Reason("input", "an input is missing"))
    if key is not None and key == prev.key and not forced and failed is None:
        reasons.append(Reason("missing", "output missing from cache"))
    if not reasons:
        reasons.append(Reason("missing", "output missing from cache"))
    if len(reasons) > MAX_REASONS:
        more = len(reasons) - MAX_REASONS + 1
        reasons = reasons[:MAX_REASONS - 1] + [Reason(reasons[-1].code, f"… and {more} more changes")]
    return reasons


def _input_reason(name: str, source: FileInput | ActionInput, added: bool) -> Reason:
    verb = "input added" if added else "input changed"
    if isinstance(source, FileInput):
        return Reason("input", f"{verb}: {source.path}")
    return Reason("input", f"{verb}: {name} (from {source.action})")


def _param_reason(action: Action, path: str, loc_of: LocOf) -> Reason:
    # `path` starts at a param name: ".voice.rate" or "[0]"-style indices after it.
    top = path[1:].split(".", 1)[0].split("[", 1)[0]
    origin = action.origins.get(top)
    if origin:
        where = origin + path[1 + len(top):]
        return Reason("param", f"input changed: {where}", loc_of(where) or action.loc)
    return Reason("param", f"parameter changed: {action.id} params{path}", action.loc)


def _changed(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths (".a.b", "[2]") of the leaves that differ between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for name in sorted(set(old) | set(new)):
            out.extend(_changed(old.get(name), new.get(name), f"{path}.{name}"))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(_changed(a, b, f"{path}[{i}]"))
        return out
    return [] if old == new else [path]
