"""Benchmark loading manifests: the demo, a film of N shots, and N custom steps.

Prints the median wall time of `load_manifest` (YAML with locations, schema, cross-
references, templates, model) and, for comparison, of PyYAML's own `yaml.load` with the
C loader on the same text (no locations, no checks): the price of everything storybuild
adds on top of parsing. Also times `storybuild validate` as a process (Python start-up
and imports included), the number a writer waits for.

    python benchmarks/bench_manifest.py               # 1000 shots, 3000 steps
    python benchmarks/bench_manifest.py --shots 5000 --steps 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from storybuild.manifest.load import load_manifest  # noqa: E402


def film(shots: int) -> str:
    """A film of `shots` shots in scenes of 10, each with cast, camera, dialogue and sfx."""
    out = ["version: 1", "project: {title: Big film, look: {style: cinematic}}", "characters:",
           "  mara: {name: Mara, voice: {emotions: {warm: {rate: 0.95}}}}", "  theo: {name: Theo}",
           "assets:", "  gull: {path: gull.wav, kind: sfx}", "scenes:"]
    for n in range(shots):
        if n % 10 == 0:
            out += [f"  - id: scene-{n // 10}", "    location: the harbour", "    shots:"]
        out += [f"      - id: shot-{n}",
                "        prompt: \"{{ scene.location }}, shot %d\"" % n,
                "        cast:",
                "          - {ref: mara, position: [-0.6, 0, 0.5], facing: 20}",
                "          - {ref: theo, position: [0.7, 0, 0.8], facing: -25}",
                "        camera: {lens: 35, position: [0, 1.6, 5], look_at: mara, move: {type: dolly, distance: 1}}",
                "        dialogue:",
                f"          - {{character: mara, text: \"Line number {n}, said warmly.\", emotion: warm, offset: 0.3}}",
                "        sfx: [{asset: gull, at: 0.5}]"]
    return "\n".join(out) + "\n"


def steps(count: int) -> str:
    """A manifest of `count` chained command steps."""
    out = ["version: 1", "project: {title: Steps}", "steps:"]
    for n in range(count):
        source = "in.txt" if n == 0 else f"out/{n - 1}.txt"
        out += [f"  - id: step-{n}", f"    argv: [python, tool.py, {source}, out/{n}.txt]",
                f"    inputs: [tool.py, {source}]", f"    outputs: [out/{n}.txt]", f"    env: {{N: \"{n}\"}}"]
    return "\n".join(out) + "\n"


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, folder: Path, repeat: int) -> None:
    path = folder / "storybuild.yaml"
    text = path.read_text()
    load_manifest(path)  # warm imports and caches, as in a long-running `watch`
    ours = median_time(lambda: load_manifest(path), repeat)
    pyyaml = median_time(lambda: yaml.load(text, Loader=yaml.CSafeLoader), repeat)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = median_time(lambda: subprocess.run([sys.executable, "-m", "storybuild", "validate", str(folder)],
                                                 env=env, capture_output=True, check=True), max(1, repeat // 2))
    print(f"{name:<24} {len(text) / 1024:8.0f} KiB   load_manifest {ours * 1000:7.1f} ms   "
          f"yaml.load (C) {pyyaml * 1000:7.1f} ms   ratio {ours / pyyaml:4.2f}   "
          f"`storybuild validate` {process * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bench("demo film", ROOT, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        big, many = Path(tmp, "film"), Path(tmp, "steps")
        big.mkdir()
        many.mkdir()
        (big / "storybuild.yaml").write_text(film(args.shots))
        (big / "gull.wav").write_bytes(b"RIFF")
        (many / "storybuild.yaml").write_text(steps(args.steps))
        (many / "tool.py").write_text("")
        (many / "in.txt").write_text("")
        bench(f"{args.shots} shots", big, args.repeat)
        bench(f"{args.steps} steps", many, args.repeat)


if __name__ == "__main__":
    main()
