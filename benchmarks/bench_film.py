"""Demo film build times: full, per stage, one-line edit, preview (issue: embedded backends).

Copies the repo-root demo (storybuild.yaml + assets/) into a temporary project and runs
`storybuild build --json` through the CLI, so start-up and planning count. Per-stage
figures add up the `seconds` of each finished action by kind (CPU-parallel stages overlap,
so their sum can exceed the wall time). The one-line edit (a new text each time) and the
preview build (each on a copy of the project as the full build left it) run `--repeat`
times: the median is reported with the range, since a shared machine's speed wanders.
Targets on 2 cores: a 30 s 640×360 24 fps film ≤ 60 s, a one-line edit ≤ 10 s, a preview
build ≤ 15 s.

    python benchmarks/bench_film.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(project: Path, *args: str) -> tuple[float, dict[str, float], list[str], float]:
    """Run one build; return wall seconds, seconds per kind, the actions that ran, film length."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "storybuild", "build", "--json", *args], cwd=project,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"build failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    per_kind: dict[str, float] = defaultdict(float)
    ran = []
    for line in proc.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "finished":
            per_kind[event["kind"]] += float(event.get("seconds", 0.0))
            ran.append(event["action"])
    cut = project / "build" / ("preview/film.json" if "--preview" in args else "film.json")
    length = json.loads(cut.read_text())["duration"] if cut.exists() else 0.0
    return wall, dict(per_kind), ran, length


def fresh_project(parent: Path) -> Path:
    project = parent / "demo"
    project.mkdir()
    shutil.copy(ROOT / "storybuild.yaml", project / "storybuild.yaml")
    shutil.copytree(ROOT / "assets", project / "assets")
    return project


def edit_one_line(project: Path, take: int) -> None:
    """Give the demo's line 'A storm? Tonight?' a text it never had before."""
    manifest = project / "storybuild.yaml"
    text = manifest.read_text()
    old = "A storm? Tonight?"
    if old not in text:
        sys.exit("the demo's line 'A storm? Tonight?' is gone: update the benchmark")
    manifest.write_text(text.replace(old, f"A storm? Tonight? Take {take}.", 1).replace(f" Take {take - 1}.", "", 1))


def spread(walls: list[float]) -> str:
    return f"median of {len(walls)}, {min(walls):.2f}–{max(walls):.2f} s" if len(walls) > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of the edit and of the preview (median)")
    args = parser.parse_args()
    # Compiled as `pip install` leaves it: with PYTHONDONTWRITEBYTECODE set, every build
    # would otherwise recompile the package in each process.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "storybuild")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = fresh_project(Path(tmp))
        rows = []
        wall, per_kind, ran, length = build(project, "film")
        rows.append(("full film build", wall, len(ran), f"{length:.1f} s of film, {wall / max(length, 1e-9):.2f} s per film second"))
        print("per stage (sum of action seconds):")
        for kind, seconds in sorted(per_kind.items(), key=lambda kv: -kv[1]):
            print(f"  {kind:<10} {seconds:7.2f} s")
        wall, _, ran, _ = build(project, "film")
        rows.append(("no-op build", wall, len(ran), "must be 0 actions"))
        built = Path(tmp) / "built"
        shutil.copytree(project, built, symlinks=True)

        walls = []
        for take in range(1, args.repeat + 1):
            edit_one_line(project, take)
            wall, _, ran, _ = build(project, "film")
            walls.append(wall)
        rows.append(("one-line edit", statistics.median(walls), len(ran), f"{spread(walls)}; {', '.join(sorted(ran))}"))

        walls = []
        for n in range(args.repeat):
            copy = Path(tmp) / f"preview-{n}"
            shutil.copytree(built, copy, symlinks=True)
            wall, per_kind, ran, length = build(copy, "--preview", "preview/film")
            walls.append(wall)
            shutil.rmtree(copy)
        rows.append(("preview build", statistics.median(walls), len(ran), f"{length:.1f} s of film; {spread(walls)}"))
        print(f"\n{'measure':<18} {'seconds':>8} {'actions':>8}  notes")
        for name, seconds, count, note in rows:
            print(f"{name:<18} {seconds:8.2f} {count:8d}  {note}")


if __name__ == "__main__":
    main()
