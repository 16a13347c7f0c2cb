"""Benchmark the build engine against make, ninja, Snakemake and DVC on the same workload.

The workload (issue 3): N shots; per shot a prompt file → keyframe → clip; per 10 shots a
scene concatenation; one film concatenation: 2N + N/10 + 1 actions, each a tiny coreutils
command (`cp`, `sort -o`), the same for every tool (storybuild runs them as argv lists,
the others through their usual shell). Each tool gets its own copy of the project and is
measured on:

  full        from a clean state (no outputs, no tool state)
  no-op       nothing changed
  one-change  a line appended to one prompt: 4 actions should run
  touch-only  one prompt's mtime bumped, same bytes: ideally 0 actions

Times are wall-clock medians of --repeat runs, Python start-up included. Actions run is
counted from the outputs whose mtime changed, the same way for every tool. Tools that are
not installed are skipped.

    python benchmarks/bench_engine.py              # N=1000
    python benchmarks/bench_engine.py --n 100 --repeat 3 --tools storybuild,ninja
    python benchmarks/bench_engine.py --big        # also N=10000: no-op time and peak memory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("storybuild", "make", "ninja", "snakemake", "dvc")


# --------------------------------------------------------------------------- the workload


class Workload:
    """The N-shot project's files and the commands that make them."""

    def __init__(self, n: int):
        self.n = n
        self.shots = [f"s{i:05d}" for i in range(n)]
        self.scenes = [self.shots[i:i + 10] for i in range(0, n, 10)]

    def prompt(self, shot: str) -> str:
        return f"prompts/{shot}.txt"

    def actions(self) -> list[tuple[str, list[str], str, list[str]]]:
        """(name, inputs, output, argv) for every action, producers first."""
        out = []
        for s in self.shots:
            out.append((f"kf-{s}", [self.prompt(s)], f"out/kf/{s}.txt", ["cp", self.prompt(s), f"out/kf/{s}.txt"]))
            out.append((f"clip-{s}", [f"out/kf/{s}.txt"], f"out/clip/{s}.txt",
                        ["cp", f"out/kf/{s}.txt", f"out/clip/{s}.txt"]))
        scene_files = []
        for c, shots in enumerate(self.scenes):
            clips = [f"out/clip/{s}.txt" for s in shots]
            scene = f"out/scene/c{c:04d}.txt"
            out.append((f"scene-c{c:04d}", clips, scene, ["sort", "-o", scene, *clips]))
            scene_files.append(scene)
        out.append(("film", scene_files, "out/film.txt", ["sort", "-o", "out/film.txt", *scene_files]))
        return out

    def write_sources(self, root: Path) -> None:
        (root / "prompts").mkdir(parents=True)
        for i, s in enumerate(self.shots):
            (root / self.prompt(s)).write_text(f"shot {i}: a lighthouse keeper looks out to sea\n")


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


class Tool(ABC):
    """One build tool on its own copy of the project."""

    name = ""
    state: tuple[str, ...] = ()  # what "clean" removes besides out/

    def __init__(self, root: Path, work: Workload, jobs: int):
        self.root, self.work, self.jobs = root, work, jobs

    def available(self) -> bool:
        return shutil.which(self.name) is not None

    def setup(self) -> None:
        self.work.write_sources(self.root)
        self.write()

    @abstractmethod
    def write(self) -> None:
        """Write the tool's build file for the workload."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv of one build."""

    def clean(self) -> None:
        for name in ("out", *self.state):
            path = self.root / name
            if path.is_dir():
                subprocess.run(["chmod", "-R", "u+w", str(path)], check=True)
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        for sub in ("kf", "clip", "scene"):
            (self.root / "out" / sub).mkdir(parents=True, exist_ok=True)

    def build(self) -> float:
        start = time.perf_counter()
        proc = subprocess.run(self.command(), cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, env=self.env())
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return seconds

    def env(self) -> dict[str, str]:
        return dict(os.environ)


class Storybuild(Tool):
    name = "storybuild"
    state = (".storybuild", "storybuild.lock")

    def available(self) -> bool:
        return True

    def setup(self) -> None:
        super().setup()
        # Byte-compile the package as `pip install` does: with PYTHONDONTWRITEBYTECODE set
        # (as in some sandboxes) every run would otherwise recompile it, and time that.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "storybuild")], check=True)

    def write(self) -> None:
        lines = ["version: 1", "project:", "  title: engine benchmark", "steps:"]
        for name, inputs, output, argv in self.work.actions():
            lines.append(f"  - id: {name}")
            lines.append(f"    argv: [{', '.join(_q(a) for a in argv)}]")
            lines.append(f"    inputs: [{', '.join(_q(i) for i in inputs)}]")
            lines.append(f"    outputs: [{_q(output)}]")
        (self.root / "storybuild.yaml").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "storybuild", "build", "-j", str(self.jobs)]

    def env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


class Make(Tool):
    name = "make"

    def write(self) -> None:
        lines = ["all: out/film.txt", ""]
        for _, inputs, output, argv in self.work.actions():
            lines.append(f"{output}: {' '.join(inputs)}")
            lines.append("\t" + " ".join(argv))
        (self.root / "Makefile").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return ["make", "-s", f"-j{self.jobs}"]


class Ninja(Tool):
    name = "ninja"
    state = (".ninja_log", ".ninja_deps")

    def write(self) -> None:
        lines = ["rule cp", "  command = cp $in $out", "rule sort", "  command = sort -o $out $in", ""]
        for _, inputs, output, argv in self.work.actions():
            lines.append(f"build {output}: {argv[0]} {' '.join(inputs)}")
        lines.append("default out/film.txt")
        (self.root / "build.ninja").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return ["ninja", "-j", str(self.jobs), "--quiet"]


class Snakemake(Tool):
    name = "snakemake"
    state = (".snakemake",)

    def write(self) -> None:
        scenes = {f"c{c:04d}": [f"out/clip/{s}.txt" for s in shots] for c, shots in enumerate(self.work.scenes)}
        text = f"""SCENES = {json.dumps(scenes)}

rule all:
    input: "out/film.txt"

rule keyframe:
    input: "prompts/{{s}}.txt"
    output: "out/kf/{{s}}.txt"
    shell: "cp {{input}} {{output}}"

rule clip:
    input: "out/kf/{{s}}.txt"
    output: "out/clip/{{s}}.txt"
    shell: "cp {{input}} {{output}}"

rule scene:
    input: lambda wc: SCENES[wc.c]
    output: "out/scene/{{c}}.txt"
    shell: "sort -o {{output}} {{input}}"

rule film:
    input: [f"out/scene/{{c}}.txt" for c in SCENES]
    output: "out/film.txt"
    shell: "sort -o {{output}} {{input}}"
"""
        (self.root / "Snakefile").write_text(text)

    def command(self) -> list[str]:
        return ["snakemake", "-j", str(self.jobs), "--quiet", "all"]


class Dvc(Tool):
    name = "dvc"
    state = (".dvc/cache", "dvc.lock", ".dvc/tmp")

    def setup(self) -> None:
        super().setup()
        subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=self.root, check=True)

    def write(self) -> None:
        lines = ["stages:"]
        for name, inputs, output, argv in self.work.actions():
            lines += [f"  {name}:", f"    cmd: {_q(' '.join(argv))}", "    deps:"]
            lines += [f"      - {_q(i)}" for i in inputs]
            lines += ["    outs:", f"      - {_q(output)}"]
        (self.root / "dvc.yaml").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return ["dvc", "repro", "-q"]


CLASSES = {"storybuild": Storybuild, "make": Make, "ninja": Ninja, "snakemake": Snakemake, "dvc": Dvc}


# --------------------------------------------------------------------------- measuring


def snapshot(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, _, files in os.walk(root / "out"):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = os.stat(p).st_mtime_ns
    return out


def changed(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(1 for p, m in after.items() if before.get(p) != m)


def measure(tool: Tool, repeat: int, full_repeat: int) -> dict[str, object]:
    """Times (medians) and actions run for the four scenarios."""
    res: dict[str, object] = {}
    fulls = []
    for _ in range(full_repeat):
        tool.clean()
        fulls.append(tool.build())
    res["full"] = statistics.median(fulls)
    noops = []
    for _ in range(repeat):
        before = snapshot(tool.root)
        noops.append(tool.build())
        res["noop_ran"] = changed(before, snapshot(tool.root))
    res["noop"] = statistics.median(noops)
    ones, ran = [], []
    for i in range(repeat):
        shot = tool.work.shots[(i * 37 + 11) % tool.work.n]
        with open(tool.root / tool.work.prompt(shot), "a") as f:
            f.write(f"take {i}\n")
        before = snapshot(tool.root)
        ones.append(tool.build())
        ran.append(changed(before, snapshot(tool.root)))
    res["one"], res["one_ran"] = statistics.median(ones), max(ran)
    touches, ran = [], []
    for i in range(repeat):
        path = tool.root / tool.work.prompt(tool.work.shots[(i * 53 + 7) % tool.work.n])
        os.utime(path)  # now: like `touch` (a future time would keep make rebuilding)
        before = snapshot(tool.root)
        touches.append(tool.build())
        ran.append(changed(before, snapshot(tool.root)))
    res["touch"], res["touch_ran"] = statistics.median(touches), max(ran)
    return res


def peak_memory(tool: Tool) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one build, measured in a fresh child process."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "subprocess.run(json.loads(sys.argv[1]), stdout=subprocess.DEVNULL, check=True)\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(tool.command())], cwd=tool.root,
                         env=tool.env(), check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def fmt(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def table(n: int, jobs: int, results: dict[str, dict]) -> str:
    actions = 2 * n + -(-n // 10) + 1
    rows = [f"N={n} ({actions} actions), -j{jobs}, medians",
            f"{'tool':<11} {'full':>10} {'no-op':>10} {'one-change':>16} {'touch-only':>16}"]
    for name, r in results.items():
        rows.append(f"{name:<11} {fmt(r['full']):>10} {fmt(r['noop']):>10} "
                    f"{fmt(r['one']) + ' (' + str(r['one_ran']) + ')':>16} "
                    f"{fmt(r['touch']) + ' (' + str(r['touch_ran']) + ')':>16}")
    if "storybuild" in results:
        sb = results["storybuild"]
        for name, r in results.items():
            if name != "storybuild":
                rows.append(f"storybuild / {name}: full {sb['full'] / r['full']:.2f}x, "
                            f"no-op {sb['noop'] / r['noop']:.2f}x, one-change {sb['one'] / r['one']:.2f}x, "
                            f"touch-only {sb['touch'] / r['touch']:.2f}x")
    rows.append("(n) = actions that ran, counted from outputs whose mtime changed")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="shots (default 1000: 2,101 actions)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per incremental scenario (median)")
    parser.add_argument("--full-repeat", type=int, default=3, help="full builds per tool (median)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--big", action="store_true", help="also N=10000: storybuild no-op time and peak memory")
    parser.add_argument("--workdir", help="where to generate projects (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    work = Workload(args.n)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="sb-bench-"))
    results: dict[str, dict] = {}
    load_before = f"{os.getloadavg()[0]:.2f}"  # a shared machine's load skews every wall time
    try:
        for name in args.tools.split(","):
            tool = CLASSES[name](base / name, work, args.jobs)
            if not tool.available():
                print(f"skipping {name}: not installed", file=sys.stderr)
                continue
            shutil.rmtree(tool.root, ignore_errors=True)
            tool.root.mkdir(parents=True)
            tool.setup()
            slow = name in ("snakemake", "dvc")
            results[name] = measure(tool, 1 if name == "dvc" else args.repeat, 1 if slow else args.full_repeat)
            print(f"{name}: {json.dumps({k: round(v, 4) for k, v in results[name].items()})}", file=sys.stderr)
        print(table(args.n, args.jobs, results))
        print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        if args.big:
            big = Storybuild(base / "storybuild-10k", Workload(10_000), args.jobs)
            shutil.rmtree(big.root, ignore_errors=True)
            big.root.mkdir(parents=True)
            big.setup()
            big.clean()
            full, full_rss = peak_memory(big)
            noops = [peak_memory(big) for _ in range(args.repeat)]
            print(f"N=10000 (21001 actions) storybuild: full {fmt(full)} (peak {full_rss / 1024:.0f} MB), "
                  f"no-op {fmt(statistics.median(t for t, _ in noops))} "
                  f"(peak {max(m for _, m in noops) / 1024:.0f} MB)")
    finally:
        if not args.workdir:
            subprocess.run(["chmod", "-R", "u+w", str(base)], check=False)
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
