"""How well the ComfyUI farm spreads work over servers of different speeds.

Three simulated ComfyUI servers (tests/comfyui_server.py, the protocol test double) run
at speeds 1 : 1 : 4; 120 keyframe jobs (SDXL template, distinct seeds, so nothing comes
from the server cache) go through the real client, WebSocket and farm. Printed: the
makespan against the ideal (total work / total speed), against an even split (each
server gets a third: the slowest decides, 2× the ideal), and each server's share.

    python3 benchmarks/bench_comfyui_farm.py [--jobs 120] [--work 0.6] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.backends.comfyui.client import ComfyClient  # noqa: E402
from storybuild.backends.comfyui.farm import Farm  # noqa: E402
from storybuild.backends.comfyui.jobrecords import stats  # noqa: E402
from storybuild.backends.comfyui.jobrunner import Job, Worker  # noqa: E402
from storybuild.backends.comfyui.settings import ComfyServer  # noqa: E402
from storybuild.backends.comfyui.workflow import bind  # noqa: E402

SPEEDS = (1.0, 1.0, 4.0)
STEPS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--work", type=float, default=0.6, help="seconds of sampling per job at speed 1")
    parser.add_argument("--concurrency", type=int, default=2, help="prompts kept queued per server")
    args = parser.parse_args()

    template = registry.get("sdxl_text_to_image")
    models = {folder: list(names) for folder, names in template.models.items()}
    root = Path(tempfile.mkdtemp(prefix="bench-comfy-"))
    servers = [FakeComfyUI(root / f"server{i}", speed=speed, step_seconds=args.work / STEPS, node_seconds=0.0,
                           models=models).start() for i, speed in enumerate(SPEEDS)]

    def make_worker(slot, index):
        client = ComfyClient(slot.url, timeout=30)
        return Worker(client, lambda refresh=False: slot.object_info(client, refresh), timeout=120)

    farm = Farm([ComfyServer(s.url, concurrency=args.concurrency) for s in servers], make_worker)
    try:
        for slot in farm.slots:  # fetch object_info before the clock starts, as a warm farm has it
            slot.object_info(ComfyClient(slot.url))
        started = time.monotonic()
        jobs = []
        for seed in range(args.jobs):
            values = {"prompt": "a harbour at dawn, film still", "seed": seed, "steps": STEPS, "width": 32, "height": 32}
            job = Job(prompt=bind(template.prompt(), template.bindings, values, outputs=template.outputs),
                      what=f"keyframe {seed}", outputs=template.outputs, workflow=template.id,
                      capability="text_to_image", models=template.model_files)
            out = root / "out" / str(seed)
            jobs.append(farm.submit(lambda worker, job=job, out=out: worker.run(job, out, lambda f, m: None,
                                                                                threading.Event()),
                                    workflow=template.id, capability="text_to_image", models=job.models))
        for job in jobs:
            farm.result(job)
        makespan = time.monotonic() - started
    finally:
        farm.close()
        for server in servers:
            server.stop()

    ideal = args.jobs * args.work / sum(SPEEDS)
    even = max(args.jobs / len(SPEEDS) * args.work / speed for speed in SPEEDS)
    shares = Counter(r.server for r in farm.records if r.ok)
    print(f"{args.jobs} jobs, {args.work:.2f} s of work each at speed 1, servers at speeds "
          f"{':'.join(f'{s:g}' for s in SPEEDS)}, concurrency {args.concurrency}")
    print(f"makespan        {makespan:7.2f} s")
    print(f"ideal           {ideal:7.2f} s   (total work / total speed)   ratio {makespan / ideal:.3f}")
    print(f"even split      {even:7.2f} s   (a third each)                ratio {even / ideal:.3f}")
    for server, speed in zip(servers, SPEEDS):
        count = shares[server.url]
        print(f"server speed {speed:g}: {count:4d} jobs ({count / args.jobs:6.1%}; ideal {speed / sum(SPEEDS):6.1%})")
    overall = stats(farm.records)["overall"]
    print(f"success rate {overall['success_rate']:.0%}, mean queue wait {overall['mean_queue_wait']:.2f} s")


if __name__ == "__main__":
    main()
