"""The plan cache: the planned actions, kept while the manifest files stay the same.

Planning parses YAML, validates a schema, renders Jinja and asks backends for their
config keys. None of that can change while the files it read are unchanged, so the
result (actions in dependency order, their static key parts, backend settings and the
manifest's source locations) is pickled, keyed by storybuild's and the backends'
versions and by the stat and digest of every file planning read. A file whose stat
changed but whose bytes did not keeps the cache valid.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Mapping

from storybuild.hashing import FileHasher, FileStat, Hashed

CACHE_FORMAT = 5
_NEVER = FileStat(-1, -1, -1)


@dataclass
class CachedPlan:
    """Everything a build needs from its manifest, without the manifest."""

    order: list  # Actions in dependency order
    statics: dict  # action id → planner.Static
    configs: Mapping[str, Mapping[str, Any]]  # backend → its `backends.<name>` section
    limits: Mapping[str, int]
    retry: Any  # model.RetryPolicy
    placed: dict = field(default_factory=dict)  # action id → ((output name, project path), …)
    files: dict[str, Hashed] = field(default_factory=dict)  # what planning read
    locs: Mapping[str, Any] | None = None  # manifest dotted path → SourceLoc (loaded on demand)
    marks: tuple = ()  # the used backends' versions and dependency releases (contract.marks)
    replanned: bool = False  # planned from the manifest by this process (never true when loaded)


def _path(store_dir: str, quality: str) -> str:
    return os.path.join(store_dir, f"plan-{quality}.pickle")


def load(root: str, store_dir: str, quality: str, header: tuple) -> CachedPlan | None:
    """The cached plan if every file planning read still has the same bytes, else None."""
    path = _path(store_dir, quality)
    try:
        with open(path, "rb") as f:
            stored_header, files = pickle.load(f)
            if stored_header != header:
                return None
            hasher = FileHasher(root, files)
            for rel, known in files.items():
                if hasher.digest(rel) != known.digest:
                    return None
            plan: CachedPlan = pickle.load(f)
            trusted = hasher.trusted()
            if trusted:  # the cache is written again below, locations included
                plan.locs = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError):
        return None
    plan.files = {**files, **trusted}
    if trusted:  # re-stamp touched-but-identical files so the next build trusts their stat
        save(store_dir, quality, header, plan)
    return plan


def save(store_dir: str, quality: str, header: tuple, plan: CachedPlan) -> None:
    """Store `plan` (written to a temp file, then renamed)."""
    path = _path(store_dir, quality)
    tmp = f"{path}.{os.getpid()}.tmp"
    locs, plan.locs = plan.locs, None
    try:
        with open(tmp, "wb") as f:
            # A racy file is kept with a stat that never matches, so it is always re-hashed.
            files = {rel: Hashed(h.digest, _NEVER) if h.racy else h for rel, h in plan.files.items()}
            pickle.dump((header, files), f, protocol=5)
            pickle.dump(plan, f, protocol=5)
            pickle.dump(dict(locs or {}), f, protocol=5)
        os.replace(tmp, path)
    finally:
        plan.locs = locs


def load_locs(store_dir: str, quality: str) -> Mapping[str, Any]:
    """The manifest locations saved with the plan (only explanations need them)."""
    try:
        with open(_path(store_dir, quality), "rb") as f:
            pickle.load(f)
            pickle.load(f)
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return {}
