"""`storybuild init`: a new film project from the template under templates/project/.

The template's manifest validates and builds as it is (no asset files, embedded
backends only), and its first line points editors at a copy of the JSON Schema. `gitignore` is stored without its dot, because package data globs skip
dotfiles, and becomes `.gitignore` here.
"""

from __future__ import annotations

import json
import os
from importlib import resources

from storybuild.errors import UsageError
from storybuild.manifest.schema import SCHEMA_FILE, schema_text
from storybuild.projectpaths import MANIFEST_NAME

_IGNORED = (".storybuild/", "build/")


def create_project(directory: str, title: str | None = None) -> list[str]:
    """Write storybuild.yaml, its JSON Schema (for editors) and .gitignore into `directory`.

    Returns the names written. Refuses (UsageError) to overwrite an existing storybuild.yaml. An existing .gitignore
    is kept and gains the lines it lacks.
    """
    manifest = os.path.join(directory, MANIFEST_NAME)
    if os.path.exists(manifest):
        raise UsageError(f"{manifest} already exists; not overwriting it",
                         hint="choose another folder, or edit the existing film")
    template = resources.files("storybuild").joinpath("templates", "project")
    title = title or _title_from(directory)
    text = template.joinpath("storybuild.yaml").read_text(encoding="utf-8")
    # A JSON string is a valid YAML double-quoted scalar, so any title is written safely.
    text = text.replace("__TITLE__", json.dumps(title, ensure_ascii=False), 1)
    try:
        os.makedirs(directory, exist_ok=True)
        with open(manifest, "x", encoding="utf-8") as fh:
            fh.write(text)
        written = [MANIFEST_NAME]
        schema = os.path.join(directory, SCHEMA_FILE)
        if not os.path.exists(schema):  # an existing one may be newer; leave it
            with open(schema, "w", encoding="utf-8") as fh:
                fh.write(schema_text())
            written.append(SCHEMA_FILE)
        if _update_gitignore(os.path.join(directory, ".gitignore"), template.joinpath("gitignore").read_text()):
            written.append(".gitignore")
    except OSError as exc:
        raise UsageError(f"cannot create the project in {directory}: {exc.strerror or exc}") from None
    return written


def _update_gitignore(path: str, template: str) -> bool:
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(template)
        return True
    with open(path, encoding="utf-8") as fh:
        existing = fh.read()
    present = {line.strip() for line in existing.splitlines()}
    missing = [entry for entry in _IGNORED if entry not in present and entry.rstrip("/") not in present]
    if not missing:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("" if existing.endswith("\n") or not existing else "\n") + "\n".join(missing) + "\n")
    return True


def _title_from(directory: str) -> str:
    name = os.path.basename(os.path.abspath(directory)) or "My Film"
    words = name.replace("-", " ").replace("_", " ").split()
    return " ".join(w[:1].upper() + w[1:] for w in words) or "My Film"
