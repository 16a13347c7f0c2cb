"""Which manifest a command works on: PATH, PATH/storybuild.yaml, or ./storybuild.yaml.

Light on purpose (os and the ground only): a no-op `storybuild build` imports it.
"""

from __future__ import annotations

import os

from storybuild.errors import UsageError
from storybuild.projectpaths import MANIFEST_NAME


def manifest_path(path: str | None) -> str:
    """The manifest PATH names: PATH itself, PATH/storybuild.yaml for a folder, or
    ./storybuild.yaml when no PATH is given. It need not exist."""
    if not path:
        return MANIFEST_NAME
    if os.path.isdir(path):
        return os.path.join(path, MANIFEST_NAME)
    return path


def existing_manifest(path: str | None) -> str:
    """`manifest_path(path)`, or a UsageError ("no manifest at …") when there is no such file."""
    manifest = manifest_path(path)
    if not os.path.isfile(manifest):
        raise UsageError(f"no manifest at {manifest}", hint="run in a project directory, or pass -f PATH")
    return manifest
