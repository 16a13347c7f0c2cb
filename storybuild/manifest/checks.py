"""Cross-reference checks: everything the schema cannot see.

Runs on the merged raw document even when the schema found problems, so a writer sees
every error at once; it therefore reads the document defensively (a value of the wrong
type is skipped: the schema has already reported it) and never assumes a shape.

Checked: ids that must exist (characters, assets of the right kind, presets, workflows,
look-at targets), ids that must be unique (scenes, shots across the film, exports, steps),
asset files (inside the project, present, a supported format for their kind), camera
keyframe order, takes, and step inputs and outputs. A dialogue line by a character who is
not in the shot's cast is a warning, not an error: off-screen voices are legitimate.
"""

from __future__ import annotations

import difflib
import os
import posixpath
from typing import Any, Iterable

from storybuild.backends.contract import setting_files, shipped_workflows
from storybuild.errors import DiagnosticList
from storybuild.manifest import assetcheck
from storybuild.manifest.locations import LocIndex, Path
from storybuild.projectpaths import BUILD_DIR, LOCK_NAME, STORE_DIR, Confiner, PathProblem, within

_BUILTIN_MOUTHS = ("default",)
# Parameters the planner fills in for workflows; a binding of any other name binds nothing,
# which is almost always a typo (a warning: a custom workflow may know better).
BINDABLE = {"prompt", "negative", "seed", "steps", "cfg", "sampler", "scheduler", "denoise", "width", "height",
            "frames", "fps", "image", "audio", "text", "mask", "video", "clip", "loras", "name", "speed",
            "multiplier", "face_restore", "reference_audio", "reference_text"}
_BINDABLE_GROUPS = ("extra.", "controlnet.", "ipadapter.")


def as_dict(value: Any) -> dict:
    """`value` if it is a mapping, else an empty one (the schema reported the wrong type)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """`value` if it is text, else None."""
    return value if isinstance(value, str) else None


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for a misspelt id, or None."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


class CrossChecker:
    """Checks one merged document; collects diagnostics into `diags`.

    `run` checks the film-wide sections; scenechecks.check_scenes adds the scenes.
    """

    def __init__(self, doc: dict, locs: LocIndex, root: str, presets: dict[str, set[str]], check_files: bool = True,
                 files: tuple[str, ...] = ()):
        self.doc, self.locs, self.root = doc, locs, root
        self.files = files  # the manifest files (root and includes), project-relative
        self.presets = presets  # category → known ids (shipped and manifest)
        self.check_files = check_files
        self.confine = Confiner(root)
        self.diags = DiagnosticList()
        self.characters = as_dict(doc.get("characters"))
        self.assets = as_dict(doc.get("assets"))
        self.workflows = as_dict(doc.get("workflows"))

    def run(self) -> DiagnosticList:
        """Run every check."""
        self.check_look(("project", "look"))
        for cid, character in self.characters.items():
            self._character(("characters", cid), as_dict(character))
        for aid, asset in self.assets.items():
            self._asset(("assets", aid), as_dict(asset))
        for wid, workflow in self.workflows.items():
            self._workflow(("workflows", wid), as_dict(workflow))
        self._unique("exports", "export")
        self._steps()
        for path, rel in setting_files(as_dict(self.doc.get("backends"))):
            self._file(path, rel, must_exist=True)
        return self.diags

    # ----------------------------------------------------------------- helpers

    def error(self, path: Path, message: str, hint: str | None = None, code: str = "reference",
              at_key: bool = False) -> None:
        """Report an error at the value at `path` (or at its key, with `at_key`)."""
        self.diags.error(message, self.locs.key(path) if at_key else self.locs.value(path), hint, code)

    def warning(self, path: Path, message: str, hint: str | None = None, code: str = "warning",
                at_key: bool = False) -> None:
        """Report a warning at the value at `path` (or at its key, with `at_key`)."""
        self.diags.warning(message, self.locs.key(path) if at_key else self.locs.value(path), hint, code)

    def ref(self, path: Path, value: Any, table: dict, noun: str, kinds: tuple[str, ...] = ()) -> bool:
        """Check that `value` names an entry of `table` (of one of `kinds`, for assets)."""
        ref = as_str(value)
        if ref is None:
            return False
        if ref not in table:
            what = "asset" if kinds else noun
            self.error(path, f"unknown {what} '{ref}'", did_you_mean(ref, table) or self._define_hint(what))
            return False
        if kinds:
            kind = as_dict(table[ref]).get("kind")
            if isinstance(kind, str) and kind not in kinds:
                wanted = " or ".join(kinds)
                self.error(path, f"asset '{ref}' is a {kind} asset; {noun} needs {wanted}",
                           did_you_mean(ref, [a for a, v in self.assets.items() if as_dict(v).get("kind") in kinds]),
                           "asset-kind")
                return False
        return True

    @staticmethod
    def _define_hint(noun: str) -> str | None:
        section = {"character": "characters", "workflow": "workflows", "asset": "assets"}.get(noun)
        return f"define it under `{section}:`" if section else None

    def asset_ref(self, path: Path, value: Any, noun: str, kinds: tuple[str, ...]) -> bool:
        """Check that `value` names an asset of one of `kinds`."""
        return self.ref(path, value, self.assets, noun, kinds)

    def check_look(self, path: Path) -> None:
        """Check that the look at `path` names known presets."""
        for category, preset in as_dict(self.get(path)).items():
            if isinstance(preset, str) and category in self.presets and preset not in self.presets[category]:
                self.error(path + (category,), f"unknown {category} preset '{preset}'",
                           did_you_mean(preset, self.presets[category]) or
                           f"{category} presets: {', '.join(sorted(self.presets[category]))}")

    def get(self, path: Path) -> Any:
        """The raw value at `path`, or None where the document has another shape."""
        node: Any = self.doc
        for part in path:
            if isinstance(node, dict) and isinstance(part, str):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return None
        return node

    def _file(self, path: Path, rel: str, must_exist: bool, directory: bool = False) -> str | None:
        """Confine a manifest path to the project; report it missing if `must_exist`."""
        try:
            clean = self.confine(rel)
        except PathProblem as problem:
            self.error(path, str(problem), problem.hint, "path")
            return None
        if must_exist and self.check_files:
            problem = assetcheck.missing(self.root, clean, directory)
            if problem:
                self.error(path, problem[0], problem[1], "missing-file")
                return None
        return clean

    def _unique(self, section: str, noun: str) -> None:
        seen: dict[str, int] = {}
        for index, item in enumerate(as_list(self.doc.get(section))):
            self.unique_id(seen, (section, index), as_dict(item), noun)

    def unique_id(self, seen: dict[str, Any], path: Path, item: dict, noun: str) -> None:
        """Report `item`'s id if `seen` (id → path of its first use) has it; else record it."""
        item_id = as_str(item.get("id"))
        if item_id is None:
            return
        if item_id in seen:
            first = self.locs.value(seen[item_id] + ("id",))
            where = f" (first at line {first.line})" if first and first.line else ""
            self.error(path + ("id",), f"duplicate {noun} id '{item_id}'{where}", f"{noun} ids must be unique",
                       "duplicate-id")
        else:
            seen[item_id] = path

    # ----------------------------------------------------------------- sections

    def _character(self, path: Path, character: dict) -> None:
        if "model" in character:
            self.asset_ref(path + ("model",), character["model"], "a character model", ("model",))
        for index, ref in enumerate(as_list(character.get("references"))):
            self.asset_ref(path + ("references", index), ref, "a reference image", ("image",))
        mouths = as_str(character.get("mouths"))
        if mouths is not None and mouths not in _BUILTIN_MOUTHS:
            if mouths in self.assets:
                self.asset_ref(path + ("mouths",), mouths, "a mouth set", ("mouths",))
            else:
                self.error(path + ("mouths",), f"unknown mouth set '{mouths}'",
                           did_you_mean(mouths, [*_BUILTIN_MOUTHS, *self.assets]) or
                           "use 'default' or the id of a `mouths` asset")
        voice = as_dict(character.get("voice"))
        if "workflow" in voice:
            self.ref(path + ("voice", "workflow"), voice["workflow"], self.workflows, "workflow")

    def _asset(self, path: Path, asset: dict) -> None:
        rel, kind = as_str(asset.get("path")), as_str(asset.get("kind"))
        if rel is None:
            return
        clean = self._file(path + ("path",), rel, must_exist=True, directory=kind == "mouths")
        if clean is None or kind is None:
            return
        for severity, message, hint in assetcheck.format_problems(self.root, clean, kind, self.check_files):
            (self.error if severity == "error" else self.warning)(path + ("path",), message, hint, "asset-format")

    def _workflow(self, path: Path, workflow: dict) -> None:
        file = as_str(workflow.get("file"))
        if file is not None and file.startswith("builtin:"):
            shipped = sorted(shipped_workflows())
            name = file[len("builtin:"):]
            if shipped and name not in shipped:
                self.error(path + ("file",), f"unknown shipped workflow '{file}'",
                           did_you_mean(name, shipped) or f"shipped: {', '.join(sorted(shipped))}")
        elif file is not None:
            clean = self._file(path + ("file",), file, must_exist=True)
            if clean is not None and not clean.endswith(".json"):
                self.error(path + ("file",), f"workflow file '{file}' is not a .json file",
                           "save the workflow as JSON from the tool that runs it", "asset-format")
        for param in as_dict(workflow.get("bindings")):
            if isinstance(param, str) and not param.startswith(_BINDABLE_GROUPS) and param not in BINDABLE:
                self.warning(path + ("bindings", param), f"'{param}' is not a parameter storybuild provides; "
                             "the binding will receive nothing",
                             did_you_mean(param, BINDABLE) or "use a known parameter or extra.<name>", "binding",
                             at_key=True)

    def _source_at(self, rel: str, sources: dict[str, tuple[str, Any]]) -> tuple[str, Any] | None:
        """(what, where it is declared) when writing `rel` would replace a file the writer owns.

        The writer's files: the manifest and its includes, the lock, assets (files, and
        everything inside a folder asset), workflow files, files the backends' settings name,
        and the steps' inputs that no step makes (their scripts and data). `rel` also hits one
        when it is a folder holding it, or a link (or under a linked folder) that leads to it.
        """
        candidates = {rel}
        real = os.path.realpath(os.path.join(self.root, rel))
        root = os.path.realpath(self.root)
        if within(real, root):
            candidates.add(posixpath.normpath(os.path.relpath(real, root).replace(os.sep, "/")))
        for candidate in candidates:
            for source, (what, where) in sources.items():
                if candidate == source or candidate == "." or source.startswith(candidate + "/"):
                    return (what if candidate == source else f"a folder holding {what}"), where
                if what.startswith("asset") and candidate.startswith(source + "/"):  # inside a folder asset
                    return what, where
        return None

    def _writers_files(self, steps: list[tuple[int, dict]], produced: set[str]) -> dict[str, tuple[str, Any]]:
        """Project-relative path → (what it is, where it is declared) for every file the writer owns."""
        found: dict[str, tuple[str, Any]] = {}
        for index, rel in enumerate(self.files):
            found[rel] = ("the manifest" if index == 0 else "a manifest file", None)
        found[LOCK_NAME] = ("the lock file", None)
        for aid, asset in self.assets.items():
            path = as_str(as_dict(asset).get("path"))
            if path is not None:
                found[posixpath.normpath(path)] = (f"asset '{aid}'", self.locs.value(("assets", aid, "path")))
        for wid, workflow in self.workflows.items():
            path = as_str(as_dict(workflow).get("file"))
            if path is not None and not path.startswith("builtin:"):
                found[posixpath.normpath(path)] = (f"workflow '{wid}'", self.locs.value(("workflows", wid, "file")))
        for where, path in setting_files(as_dict(self.doc.get("backends"))):
            found[posixpath.normpath(path)] = (f"the file {'.'.join(where)} names", self.locs.value(where))
        for index, step in steps:
            for n, item in enumerate(as_list(step.get("inputs"))):
                if isinstance(item, str) and posixpath.normpath(item) not in produced:
                    found.setdefault(posixpath.normpath(item), (f"an input of step '{step.get('id')}'",
                                                                self.locs.value(("steps", index, "inputs", n))))
        return found

    def _steps(self) -> None:
        seen: dict[str, Any] = {}
        produced: dict[str, Path] = {}
        steps = [(index, as_dict(step)) for index, step in enumerate(as_list(self.doc.get("steps")))]
        outputs = {posixpath.normpath(o) for _, step in steps for o in as_list(step.get("outputs")) if isinstance(o, str)}
        sources = self._writers_files(steps, outputs) if outputs else {}
        for index, step in steps:
            path = ("steps", index)
            self.unique_id(seen, path, step, "step")
            for n, output in enumerate(as_list(step.get("outputs"))):
                if not isinstance(output, str):
                    continue
                clean = self._file(path + ("outputs", n), output, must_exist=False)
                if clean is None:
                    continue
                top = clean.split("/", 1)[0]
                over = self._source_at(clean, sources) if top not in (STORE_DIR, BUILD_DIR, ".git") else None
                if top in (STORE_DIR, BUILD_DIR, ".git"):
                    self.error(path + ("outputs", n), f"step output '{output}' is inside {top}/, which storybuild "
                               "manages", "write step outputs elsewhere, e.g. out/", "path")
                elif clean in {posixpath.normpath(i) for i in as_list(step.get("inputs")) if isinstance(i, str)}:
                    self.error(path + ("outputs", n), f"step output '{output}' is also one of its inputs; a step "
                               "may only write files it makes", "write the result to a new file, e.g. under out/",
                               "output-overwrites-source")
                elif over is not None:
                    # The step would overwrite (and storybuild would first remove) a file the
                    # writer owns: refused here, where both places can be named.
                    what, where = over
                    self.error(path + ("outputs", n), f"step output '{output}' is {what}; a step may only write "
                               "files it makes", (f"{what} is declared at {where}; " if where else "")
                               + "write step outputs elsewhere, e.g. out/", "output-overwrites-source")
                elif clean in produced:
                    first = self.locs.value(produced[clean])
                    self.error(path + ("outputs", n), f"'{output}' is already produced by another step"
                               + (f" (line {first.line})" if first and first.line else ""),
                               "each file has one producer", "duplicate-output")
                else:
                    produced[clean] = path + ("outputs", n)
        for index, step in steps:
            for n, item in enumerate(as_list(step.get("inputs"))):
                if not isinstance(item, str):
                    continue
                clean = self._file(("steps", index, "inputs", n), item, must_exist=False)
                # An input is a source file, another step's output, or something storybuild
                # builds (build/...); anything else could never be satisfied.
                if clean is None or clean in produced or clean.split("/", 1)[0] == "build" or not self.check_files:
                    continue
                problem = assetcheck.missing(self.root, clean, directory=False)
                if problem:
                    self.error(("steps", index, "inputs", n), f"step input '{item}' does not exist and no step "
                               "produces it", problem[1], "missing-file")
