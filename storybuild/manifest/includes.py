"""One film over several files: `include:` resolution and merging.

Rules (docs/manifest.md, "Includes"):

* `include:` lists paths relative to the including file; `*`, `?` and `[...]` match
  within a folder, in sorted order. Paths must stay inside the project.
* Every file is a manifest of its own (`version: 1`) and is checked against the schema
  on its own, so errors point into the right file and editors agree.
* `project` and `backends` belong to the root file only.
* Mappings of ids (`characters`, `assets`, `workflows`, and `presets` per category) are
  merged; an id defined twice is an error that names both places.
* Lists (`scenes`, `exports`, `steps`) are concatenated: each included file's entries
  first, in `include:` order, then the including file's own.
* An include cycle, or one file included twice, is an error.
"""

from __future__ import annotations

import glob
import os
import posixpath
from dataclasses import dataclass, field
from typing import Callable

from storybuild.errors import Diagnostic, ManifestError, SourceLoc
from storybuild.manifest.locations import LocIndex, Path
from storybuild.manifest.yamlload import YamlDoc, load_yaml
from storybuild.projectpaths import PathProblem, confine

ID_MAPS = ("characters", "assets", "workflows")
LISTS = ("scenes", "exports", "steps")
ROOT_ONLY = ("project", "backends")
_NOUN = {"characters": "character", "assets": "asset", "workflows": "workflow"}
_GLOB = set("*?[")

Checker = Callable[[YamlDoc], list[Diagnostic]]


@dataclass
class Merged:
    """The merged document of a root manifest and its includes."""

    data: dict
    locs: LocIndex
    files: list[str]  # project-relative, in load order (root first)
    diags: list[Diagnostic] = field(default_factory=list)


def load_tree(root: str, rel: str, display: Callable[[str], str], check: Checker) -> Merged:
    """Load the manifest `rel` (project-relative) under the project `root` and its includes.

    `display` turns a project-relative path into the name shown in diagnostics; `check`
    validates one parsed file (the schema) and returns its diagnostics.
    """
    loader = _Loader(root, display, check)
    data, locs = loader.load(rel, None, ())
    return Merged(data if data is not None else {}, locs, loader.files, loader.diags)


class _Loader:
    def __init__(self, root: str, display: Callable[[str], str], check: Checker):
        self.root, self.display, self.check = root, display, check
        self.files: list[str] = []
        self.diags: list[Diagnostic] = []
        self.seen: dict[str, SourceLoc | None] = {}  # file → where it was first included

    def load(self, rel: str, included_at: SourceLoc | None, chain: tuple[str, ...]) -> tuple[dict | None, LocIndex]:
        self.files.append(rel)
        try:
            doc = load_yaml(os.path.join(self.root, rel), self.display(rel))
        except ManifestError as err:
            self.diags.extend(err.diagnostics)
            return None, LocIndex()
        self.diags.extend(self.check(doc))
        is_root = included_at is None
        acc: dict = {}
        acc_locs = LocIndex()
        includes = doc.data.get("include")
        for index, pattern in enumerate(includes if isinstance(includes, list) else ()):
            loc = doc.locs.value(("include", index))
            if not isinstance(pattern, str):
                continue  # the schema has reported it
            for child in self._expand(rel, pattern, loc):
                if child in chain + (rel,):
                    cycle = " → ".join(chain[chain.index(child):] + (rel, child)) if child in chain else f"{rel} → {rel}"
                    self.diags.append(Diagnostic(f"include cycle: {cycle}", loc, "remove one of these includes",
                                                 code="include-cycle"))
                    continue
                if child in self.seen:
                    first = self.seen[child]
                    self.diags.append(Diagnostic(f"'{child}' is included twice" + (f" (first at {first})" if first else ""),
                                                 loc, "include each file once", code="include-twice"))
                    continue
                self.seen[child] = loc
                data, locs = self.load(child, loc, chain + (rel,))
                if data is not None:
                    self._merge(acc, acc_locs, data, locs, rel=child, is_root=False)
        own = {k: v for k, v in doc.data.items() if not (k == "include" and not is_root)}
        if not is_root:
            own.pop("version", None)
        if not acc and is_root:
            return own, doc.locs  # nothing included: no need to move any location
        self._merge(acc, acc_locs, own, doc.locs, rel=rel, is_root=is_root)
        return acc, acc_locs

    def _expand(self, base_rel: str, pattern: str, loc: SourceLoc | None) -> list[str]:
        base = posixpath.dirname(base_rel)
        try:
            target = confine(self.root, pattern, base)
        except PathProblem as problem:
            self.diags.append(Diagnostic(f"include: {problem}", loc, problem.hint, code="path"))
            return []
        if not _GLOB & set(pattern):
            if not os.path.isfile(os.path.join(self.root, target)):
                self.diags.append(Diagnostic(f"included file '{pattern}' does not exist", loc,
                                             _near_files(self.root, target), code="include-missing"))
                return []
            return [target]
        matches = sorted(glob.glob(os.path.join(glob.escape(self.root), target)))
        out = []
        for match in matches:
            rel = posixpath.normpath(os.path.relpath(match, self.root).replace(os.sep, "/"))
            try:
                out.append(confine(self.root, rel))
            except PathProblem as problem:
                self.diags.append(Diagnostic(f"include: {problem}", loc, problem.hint, code="path"))
        out = [m for m in out if os.path.isfile(os.path.join(self.root, m))]
        if not out:
            self.diags.append(Diagnostic(f"include pattern '{pattern}' matches no files", loc, code="include-missing"))
        return out

    def _merge(self, acc: dict, acc_locs: LocIndex, data: dict, locs: LocIndex, rel: str, is_root: bool) -> None:
        """Merge one file's document into the accumulated one, moving its locations along."""
        offsets: dict[str, int] = {}  # list sections: index shift of this file's items
        dropped: set[Path] = set()  # paths (and everything under them) not merged
        for key, value in data.items():
            if key in ROOT_ONLY and not is_root:
                self.diags.append(Diagnostic(f"'{key}' may only be set in the root manifest", locs.key((key,)),
                                             f"move it to {self.files[0]}", code="root-only"))
                dropped.add((key,))
            elif key in LISTS and isinstance(value, list) and isinstance(acc.get(key, []), list):
                base = acc.setdefault(key, [])
                offsets[key] = len(base)
                base.extend(value)
            elif key in ID_MAPS and isinstance(value, dict) and isinstance(acc.get(key), dict):
                dropped |= self._merge_ids(acc[key], acc_locs, value, locs, (key,), _NOUN[key])
            elif key == "presets" and isinstance(value, dict) and isinstance(acc.get(key), dict):
                for category, group in value.items():
                    target = acc[key].get(category)
                    if isinstance(group, dict) and isinstance(target, dict):
                        dropped |= self._merge_ids(target, acc_locs, group, locs, (key, category),
                                                   f"{category} preset")
                    elif category not in acc[key]:
                        acc[key][category] = group
            elif key in acc:
                first = acc_locs.key((key,))
                self.diags.append(Diagnostic(f"'{key}' is set in more than one file" + (f" (also at {first})" if first else ""),
                                             locs.key((key,)), code="duplicate-section"))
                dropped.add((key,))
            else:
                acc[key] = value
        # One pass over this file's locations: keep what was merged, shift list items.
        for table, out in ((locs.values, acc_locs.values), (locs.keys, acc_locs.keys), (locs.texts, acc_locs.texts)):
            for path, pos in table.items():
                if not path:
                    if is_root:
                        out[path] = pos
                    continue
                key = path[0]
                if key not in data or (key,) in dropped or path[:2] in dropped or path[:3] in dropped:
                    continue
                shift = offsets.get(key)
                if shift and len(path) > 1:
                    path = (key, path[1] + shift) + path[2:]
                out[path] = pos

    def _merge_ids(self, target: dict, acc_locs: LocIndex, entries: dict, locs: LocIndex, prefix: Path,
                   noun: str) -> set[Path]:
        """Add `entries` to `target`; returns the paths of duplicates, which are not merged."""
        dropped = set()
        for entry_id, entry in entries.items():
            path = prefix + (entry_id,)
            if entry_id in target:
                first = acc_locs.key(path)
                self.diags.append(Diagnostic(f"duplicate {noun} id '{entry_id}'" + (f" (first defined at {first})" if first else ""),
                                             locs.key(path), "ids must be unique across all included files",
                                             code="duplicate-id"))
                dropped.add(path)
            else:
                target[entry_id] = entry
        return dropped


def _near_files(root: str, target: str) -> str | None:
    import difflib

    folder = os.path.join(root, posixpath.dirname(target))
    try:
        names = [n for n in os.listdir(folder) if n.endswith((".yaml", ".yml"))]
    except OSError:
        return None
    close = difflib.get_close_matches(posixpath.basename(target), names, n=1)
    return f"did you mean '{posixpath.join(posixpath.dirname(target), close[0])}'?" if close else None
