"""Film projects whose generative shots run on the ComfyUI test double, built through the CLI.

    server = film_server(tmp_path / "comfy")          # a FakeComfyUI with every template's models
    root = write_project(tmp_path / "film", server.url, SHOTS)
    result = cli(root, "build")                      # `storybuild -C root build`, in-process

Low resolution, a low frame rate and short shots keep a whole film to a second or two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from click.testing import CliRunner, Result

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.cli.main import main  # noqa: E402


def all_models() -> dict[str, list[str]]:
    """Every model file the shipped templates load, by folder (plus the face restorer)."""
    models: dict[str, list[str]] = {"facerestore_models": ["codeformer-v0.1.0.pth"]}
    for template in registry.templates().values():
        for folder, names in template.models.items():
            models.setdefault(folder, []).extend(n for n in names if n not in models.get(folder, []))
    return models


def film_server(root: Path, **options) -> FakeComfyUI:
    """A started test server that has every template's models and custom nodes."""
    options.setdefault("models", all_models())
    return FakeComfyUI(root, custom_nodes=True, **options).start()


def write_project(root: Path, url: str, shots: str, *, comfyui: str = "") -> Path:
    """A project at `root`: one character, one scene of `shots` (YAML list items, indented 6),
    ComfyUI at `url` plus any extra `comfyui` settings (YAML, indented 4)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "storybuild.yaml").write_text(f"""\
version: 1
project:
  title: Harbour lights
  resolution: [160, 90]
  fps: 8
characters:
  mara: {{voice: {{name: en-us}}}}
scenes:
  - id: harbour
    shots:
{shots.rstrip()}
backends:
  comfyui:
    servers:
      - {{url: "{url}"}}
    timeout: 60
{comfyui.rstrip()}
""", encoding="utf-8")
    return root


def cli(root: Path, *args: str) -> Result:
    """`storybuild -C root ARGS` in-process, restoring the working directory after."""
    before = os.getcwd()
    try:
        return CliRunner().invoke(main, ["-C", str(root), *args], catch_exceptions=False)
    finally:
        os.chdir(before)


def prompts(server: FakeComfyUI) -> list[dict]:
    """Every prompt the server ran, in the order it ran them."""
    return [entry["prompt"][2] for entry in server.executor.history.values()]


def posts(server: FakeComfyUI) -> int:
    """How many prompts were posted to the server."""
    return server.requests.count(("POST", "/prompt"))
