"""Load storybuild.yaml into the typed model, or say precisely what is wrong with it.

    YAML with line:col (yamlload) → includes merged (includes), each file checked against
    the JSON Schema (schema) → cross-references (checks, scenechecks) → Jinja text fields
    rendered in a sandbox (render) → the frozen model (modelbuild)

Every stage collects diagnostics instead of stopping at the first, so a writer sees all
problems at once. Warnings (an off-screen voice, an emotion a voice does not define) never
stop a load; they are kept on `Manifest.warnings`.
"""

from __future__ import annotations

import os
from typing import Any

from storybuild.errors import Diagnostic, ManifestError, Severity, SourceLoc
from storybuild.manifest.includes import load_tree
from storybuild.manifest.locations import LocIndex
from storybuild.model import Manifest, Preset
from storybuild.projectpaths import MANIFEST_NAME


def load_manifest(path: str | os.PathLike = MANIFEST_NAME, *, check_files: bool = True) -> Manifest:
    """Load and validate a manifest (a file, or a folder holding storybuild.yaml).

    Raises ManifestError carrying every problem found. With `check_files=False`, files
    the manifest names are not required to exist (paths must still stay in the project).
    """
    manifest, diagnostics = check_manifest(path, check_files=check_files)
    if manifest is None:
        raise ManifestError(diagnostics)
    return manifest


def check_manifest(path: str | os.PathLike = MANIFEST_NAME, *,
                   check_files: bool = True) -> tuple[Manifest | None, list[Diagnostic]]:
    """(the Manifest or None if it has errors, every diagnostic, warnings included)."""
    given = os.fspath(path)
    if os.path.isdir(given):
        given = os.path.join(given, MANIFEST_NAME)
    if not os.path.isfile(given):
        hint = "run `storybuild init` to start a film here" if os.path.basename(given) == MANIFEST_NAME else None
        return None, [Diagnostic(f"no manifest at {given}", SourceLoc(given), hint, code="no-manifest")]
    root = os.path.abspath(os.path.dirname(given) or ".")
    shown_dir = os.path.dirname(given)
    rel = os.path.basename(given)

    def display(project_rel: str) -> str:
        return os.path.normpath(os.path.join(shown_dir, project_rel)) if shown_dir else project_rel

    return _Load(root, rel, display, check_files).run()


class _Load:
    """One load: its stages share the document, locations and diagnostics."""

    def __init__(self, root: str, rel: str, display: Any, check_files: bool):
        self.root, self.rel, self.display, self.check_files = root, rel, display, check_files
        self.diags: list[Diagnostic] = []

    def run(self) -> tuple[Manifest | None, list[Diagnostic]]:
        from storybuild.manifest.schema import validate

        merged = load_tree(self.root, self.rel, self.display, lambda doc: validate(doc.data, doc.locs))
        self.diags.extend(merged.diags)
        doc, locs = merged.data, merged.locs
        if not doc:  # unreadable, or `{}`, which the schema has reported
            return None, _sorted(self.diags)
        if "project" not in doc:
            self.diags.append(Diagnostic("the root manifest needs a `project:` section", locs.value(()),
                                         "add `project: {title: My Film}`", code="missing-key"))
        presets = self._presets(doc, locs)
        self._cross_references(doc, locs, presets, tuple(merged.files))
        from storybuild.manifest.jinjatext import render_texts

        rendered, template_diags = render_texts(doc, locs)
        self.diags.extend(template_diags)
        diags = _sorted(self.diags)
        if any(d.severity is Severity.ERROR for d in diags):
            return None, diags
        from storybuild.manifest.modelbuild import ModelBuilder

        manifest = ModelBuilder(doc, locs, rendered, self.root).build(
            self.rel, tuple(merged.files), presets)
        warnings = tuple(d for d in diags if d.severity is Severity.WARNING)
        return _with_warnings(manifest, warnings), diags

    def _presets(self, doc: dict, locs: LocIndex) -> dict[str, dict[str, Preset]]:
        """Shipped presets, extended and overridden by the manifest's; templates checked."""
        from storybuild.manifest.templating import CATEGORIES, check_syntax, shipped_presets, template_variables

        presets = {category: dict(group) for category, group in shipped_presets().items()}
        section = doc.get("presets")
        for category in CATEGORIES:
            group = section.get(category) if isinstance(section, dict) else None
            for preset_id, entry in group.items() if isinstance(group, dict) else ():
                path = ("presets", category, preset_id)
                template = entry if isinstance(entry, str) else entry.get("template") if isinstance(entry, dict) else None
                if not isinstance(template, str):
                    continue  # the schema has reported it
                negative = entry.get("negative", "") if isinstance(entry, dict) else ""
                loc = locs.text(path if isinstance(entry, str) else path + ("template",))
                errors = check_syntax(template, loc)
                self.diags.extend(errors)
                if not errors and "prompt" not in template_variables(template):
                    self.diags.append(Diagnostic(f"{category} preset '{preset_id}' ignores the shot's prompt", loc,
                                                 "include {{ prompt }} in the template", Severity.WARNING, "preset"))
                presets[category][preset_id] = Preset(category, preset_id, template,
                                                      negative if isinstance(negative, str) else "", loc)
        return presets

    def _cross_references(self, doc: dict, locs: LocIndex, presets: dict[str, dict[str, Preset]],
                          files: tuple[str, ...]) -> None:
        from storybuild.manifest.checks import CrossChecker
        from storybuild.manifest.scenechecks import check_scenes

        checker = CrossChecker(doc, locs, self.root, {c: set(g) for c, g in presets.items()}, self.check_files,
                               files)
        checker.run()
        check_scenes(checker)
        self.diags.extend(checker.diags.items)


def _with_warnings(manifest: Manifest, warnings: tuple[Diagnostic, ...]) -> Manifest:
    if not warnings:
        return manifest
    from dataclasses import replace

    return replace(manifest, warnings=warnings)


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics in file order (then line, column); duplicates dropped."""
    seen: set[tuple] = set()
    out = []
    for d in diags:
        key = (d.loc, d.message, d.severity)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return sorted(out, key=lambda d: (d.loc.file if d.loc else "", d.loc.line if d.loc else 0,
                                      d.loc.col if d.loc else 0))

