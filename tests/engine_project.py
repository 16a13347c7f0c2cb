"""Test projects for the build engine, described in project.json instead of YAML.

The engine tests must not depend on the YAML loader, so a project here is a JSON list of
custom steps that `load_project` turns into a Manifest. `film_steps` makes the benchmark's
shape in miniature: per shot prompt → keyframe → clip, a scene per `per_scene` shots, a film.
Run as a script it builds a project the way `storybuild build` does (for kill/lock tests).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from storybuild.engine.session import Session
from storybuild.errors import SourceLoc
from storybuild.model import Backends, Manifest, Project, RetryPolicy, Step

PROJECT = "project.json"
FAST_RETRY = {"max_attempts": 3, "backoff": 0.001, "max_backoff": 0.004}


def film_steps(shots: int, per_scene: int = 2, tool: str = "cp") -> list[dict]:
    """Steps of a tiny film: keyframe and clip per shot, scene concatenations, the film.

    The keyframe copies its prompt (`tool` "cp") or sorts its lines (`tool` "sort")."""
    steps = []
    for i in range(shots):
        argv = ["sort", "-o", f"out/kf{i}.txt", f"prompts/p{i}.txt"] if tool == "sort" else \
            [tool, f"prompts/p{i}.txt", f"out/kf{i}.txt"]
        steps.append({"id": f"kf{i}", "argv": argv,
                      "inputs": [f"prompts/p{i}.txt"], "outputs": [f"out/kf{i}.txt"]})
        steps.append({"id": f"clip{i}", "argv": ["cp", f"out/kf{i}.txt", f"out/clip{i}.txt"],
                      "inputs": [f"out/kf{i}.txt"], "outputs": [f"out/clip{i}.txt"]})
    scenes = []
    for s, start in enumerate(range(0, shots, per_scene)):
        clips = [f"out/clip{i}.txt" for i in range(start, min(shots, start + per_scene))]
        steps.append({"id": f"scene{s}", "argv": ["sort", "-o", f"out/scene{s}.txt", *clips],
                      "inputs": clips, "outputs": [f"out/scene{s}.txt"]})
        scenes.append(f"out/scene{s}.txt")
    steps.append({"id": "film", "argv": ["sort", "-o", "out/film.txt", *scenes], "inputs": scenes,
                  "outputs": ["out/film.txt"]})
    return steps


def write_project(root: Path, steps: list[dict], *, retry: dict | None = None, limits: dict | None = None,
                  prompts: int = 0) -> None:
    """Write project.json (and `prompts` prompt files) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(prompts):
        path = root / "prompts" / f"p{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"prompt {i}\n")
    doc = {"steps": steps, "retry": retry or FAST_RETRY, "limits": limits or {}}
    (root / PROJECT).write_text(json.dumps(doc, indent=1) + "\n")


def load_project(path: str) -> Manifest:
    """The Manifest a project.json describes; each step 'written' on its own line."""
    root = os.path.dirname(path)
    with open(path) as f:
        doc = json.load(f)
    steps, locs = [], {}
    for n, s in enumerate(doc["steps"]):
        loc = SourceLoc(PROJECT, 3 + n, 5)
        locs[f"steps[{n}]"] = loc
        locs[f"steps[{n}].argv"] = SourceLoc(PROJECT, 3 + n, 12)
        steps.append(Step(id=s["id"], argv=tuple(s["argv"]), inputs=tuple(s.get("inputs", ())),
                          outputs=tuple(s["outputs"]), env=s.get("env", {}), loc=loc, path=f"steps[{n}]"))
    return Manifest(root=root, file=PROJECT, files=(PROJECT,), version=1, project=Project(title="test"),
                    presets={}, characters={}, assets={}, scenes=(), workflows={}, exports=(),
                    steps=tuple(steps), backends=Backends(retry=RetryPolicy(**doc["retry"]), limits=doc["limits"]),
                    locs=locs)


def session(root: Path) -> Session:
    """A Session on a project.json project."""
    return Session(root, PROJECT, loader=load_project)


def tree(root: Path, under: str = "out") -> dict[str, bytes]:
    """Every file under root/under → its bytes."""
    base = root / under
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


if __name__ == "__main__":
    # python tests/engine_project.py ROOT [-j N] [--no-wait] [TARGET...]: build like the CLI does.
    from storybuild.cli.build import _run_build

    args = sys.argv[1:]
    root = Path(args.pop(0))
    jobs, wait = 2, True
    if "-j" in args:
        at = args.index("-j")
        jobs = int(args[at + 1])
        del args[at:at + 2]
    if "--no-wait" in args:
        args.remove("--no-wait")
        wait = False
    from storybuild.errors import StorybuildError

    try:
        _run_build(session(root), args, jobs=jobs, wait=wait)
    except StorybuildError as err:
        sys.stderr.write(f"storybuild: {err.message}\n")
        sys.exit(err.exit_code)
