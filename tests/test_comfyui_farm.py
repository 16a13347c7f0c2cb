"""Many servers: pull scheduling, failover when a server dies, breakers, routing, records."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.backends.comfyui.breaker import CircuitBreaker  # noqa: E402
from storybuild.backends.comfyui.client import ComfyClient  # noqa: E402
from storybuild.backends.comfyui.farm import Farm  # noqa: E402
from storybuild.backends.comfyui.jobrecords import JobRecord, stats  # noqa: E402
from storybuild.backends.comfyui.jobrunner import Job, Worker  # noqa: E402
from storybuild.backends.comfyui.settings import ComfyServer  # noqa: E402
from storybuild.backends.comfyui.workflow import bind  # noqa: E402
from storybuild.errors import BackendError, Cancelled, TransientError  # noqa: E402

SDXL = registry.get("sdxl_text_to_image")
MODELS = {folder: list(names) for folder, names in SDXL.models.items()}


def tiny_clip(path, frames: int = 6):
    from storybuild.backends.shared.ffmpeg import encode_frames

    encode_frames((bytes([40 * k % 255]) * (32 * 32 * 3) for k in range(frames)), path, 12, 32, 32)
    return path


def tiny_wav(path, seconds: float = 0.5, rate: int = 16000):
    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype("float32"), rate)
    return path


def make_worker(slot, index):
    client = ComfyClient(slot.url, timeout=10)
    return Worker(client, lambda refresh=False: slot.object_info(client, refresh), timeout=20)


def keyframe_job(seed: int, steps: int = 10) -> Job:
    values = {"prompt": "a lighthouse", "seed": seed, "steps": steps, "width": 32, "height": 32}
    prompt = bind(SDXL.prompt(), SDXL.bindings, values, outputs=SDXL.outputs)
    return Job(prompt=prompt, what=f"keyframe {seed}", outputs=SDXL.outputs, workflow=SDXL.id,
               capability="text_to_image", models=SDXL.model_files)


def submit(farm, job, out, cancel=None):
    return farm.submit(lambda worker: worker.run(job, out, lambda f, m: None, cancel or threading.Event()),
                       workflow=job.workflow, capability=job.capability, models=job.models,
                       action_id=job.what, cancel=cancel)


@pytest.fixture
def servers(tmp_path):
    started: list[FakeComfyUI] = []

    def start(**options) -> FakeComfyUI:
        options.setdefault("models", MODELS)
        server = FakeComfyUI(tmp_path / f"server{len(started)}", **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_free_servers_pull_work_so_a_fast_server_takes_more(servers, tmp_path):
    fast = servers(speed=4.0, step_seconds=0.01)
    slow = [servers(speed=1.0, step_seconds=0.01) for _ in range(2)]
    farm = Farm([ComfyServer(s.url) for s in (fast, *slow)], make_worker)
    try:
        jobs = [submit(farm, keyframe_job(seed), tmp_path / f"out{seed}") for seed in range(24)]
        for job in jobs:
            assert farm.result(job).files
        shares = Counter(r.server for r in farm.records if r.ok)
    finally:
        farm.close()
    assert sum(shares.values()) == 24
    assert shares[fast.url] > 2 * max(shares[s.url] for s in slow), shares


def test_a_server_dying_mid_job_hands_its_jobs_to_the_others(servers, tmp_path):
    doomed = servers(step_seconds=0.01)
    doomed.die_after_steps = 5  # in the middle of its first sampler run
    healthy = servers(step_seconds=0.01)
    farm = Farm([ComfyServer(doomed.url, weight=2.0), ComfyServer(healthy.url)], make_worker,
                breaker_threshold=2, breaker_cooldown=60)
    try:
        jobs = [submit(farm, keyframe_job(seed), tmp_path / f"out{seed}") for seed in range(6)]
        results = [farm.result(job) for job in jobs]
    finally:
        farm.close()
    assert all(r.files for r in results)
    failures = [r for r in farm.records if not r.ok]
    assert failures and all(r.server == doomed.url for r in failures)
    assert all(r.server == healthy.url for r in farm.records if r.ok)
    moved = next(job for job in jobs if len(job.records) > 1)
    assert [r.ok for r in moved.records] == [False, True]
    assert "lost the WebSocket" in failures[0].error or "cannot reach" in failures[0].error
    assert farm.health()[0]["breaker"] == "open"


def test_a_server_without_the_custom_nodes_passes_the_job_on(servers, tmp_path):
    plain = servers()
    equipped = servers(custom_nodes=True)
    tiny_clip(equipped.root / "input" / "example.mp4")
    tiny_wav(equipped.root / "input" / "example.wav")
    lipsync = registry.get("wav2lip")
    prompt = bind(lipsync.prompt(), lipsync.bindings, {"face_restore": False}, optional=lipsync.optional,
                  outputs=lipsync.outputs)
    job = Job(prompt=prompt, what="workflow 'wav2lip'", outputs=lipsync.outputs, workflow="wav2lip",
              custom_nodes=lipsync.custom_nodes)
    farm = Farm([ComfyServer(plain.url, weight=5.0), ComfyServer(equipped.url)], make_worker)
    try:
        handle = submit(farm, job, tmp_path / "out")
        assert len(farm.result(handle).of_kind("image")) == 6  # the clip's frames, lips synced
    finally:
        farm.close()
    first, second = handle.records
    assert first.server == plain.url and not first.ok and "no node class 'Wav2Lip'" in first.error
    assert second.server == equipped.url and second.ok
    assert farm.health()[0]["breaker"] == "closed"  # lacking a node pack is not a server fault


def test_the_heavier_idle_server_is_preferred(servers, tmp_path):
    light, heavy = servers(), servers()
    farm = Farm([ComfyServer(light.url, weight=1.0), ComfyServer(heavy.url, weight=3.0)], make_worker)
    try:
        for seed in range(4):  # one at a time: both servers are idle for each
            farm.result(submit(farm, keyframe_job(seed, steps=1), tmp_path / f"o{seed}"))
    finally:
        farm.close()
    assert {r.server for r in farm.records} == {heavy.url}


def test_a_queued_job_can_be_cancelled_before_a_server_takes_it(servers, tmp_path):
    busy = servers(step_seconds=0.05)
    farm = Farm([ComfyServer(busy.url)], make_worker)
    try:
        first = submit(farm, keyframe_job(1, steps=20), tmp_path / "a")
        cancel = threading.Event()
        second = submit(farm, keyframe_job(2), tmp_path / "b", cancel)
        cancel.set()
        with pytest.raises(Cancelled):
            farm.result(second)
        assert farm.result(first).files
    finally:
        farm.close()
    assert second.records == [] and len(busy.executor.history) == 1


def test_health_probes_stats_and_queue(servers):
    server = servers()
    farm = Farm([ComfyServer(server.url), ComfyServer("http://127.0.0.1:9")], make_worker)
    try:
        up, down = farm.health(probe=True, client_factory=lambda url: ComfyClient(url, timeout=2))
    finally:
        farm.close()
    assert up["reachable"] and up["devices"][0]["type"] == "cpu" and up["queue_pending"] == 0
    assert up["breaker"] == "closed" and up["done"] == 0
    assert not down["reachable"] and "cannot reach" in down["error"]


def test_jobs_no_server_can_run_are_refused_at_once(servers):
    server = servers()
    farm = Farm([ComfyServer(server.url, capabilities=("tts",))], make_worker)
    try:
        with pytest.raises(BackendError, match="no configured ComfyUI server can run"):
            farm.submit(lambda worker: None, workflow="keyframe", capability="text_to_image")
    finally:
        farm.close()


def test_breaker_opens_half_opens_and_closes():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.failure("refused")
    assert breaker.allow()
    breaker.failure("refused")
    assert breaker.state == "open" and not breaker.allow() and not breaker.down  # maybe a blip
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.failure("still down")
    assert breaker.state == "open" and breaker.retry_in() == 20.0  # the cooldown doubled
    assert breaker.down  # it failed its trial too
    now[0] = 30.0
    assert breaker.allow() and not breaker.down
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()


def test_a_dead_farm_fails_its_jobs_after_one_trial_not_after_the_job_timeout(tmp_path):
    farm = Farm([ComfyServer("http://127.0.0.1:9")], make_worker, breaker_cooldown=0.2)
    began = time.monotonic()
    try:
        for n in range(3):  # the first attempts trip the breaker; later ones fail at once
            with pytest.raises(TransientError) as caught:
                farm.result(submit(farm, keyframe_job(n), tmp_path / str(n)), queue_timeout=60)
    finally:
        farm.close()
    assert time.monotonic() - began < 10
    assert "every ComfyUI server that can run it is down (http://127.0.0.1:9: cannot reach" in caught.value.message


def test_stats_by_workflow_and_server():
    records = [JobRecord("1", "a", "wan", "http://a", True, execution=4.0, server_time=3.0, queue_wait=1.0),
               JobRecord("2", "b", "wan", "http://b", False, error="lost", execution=1.0, queue_wait=0.0),
               JobRecord("2", "b", "wan", "http://a", True, execution=2.0, server_time=1.0, attempt=2).to_json(),
               JobRecord("3", "c", "sdxl", "http://a", True, execution=1.0, cached=True)]
    report = stats(records)
    assert report["overall"]["success_rate"] == 0.75
    assert report["workflows"]["wan"] == {"jobs": 3, "succeeded": 2, "success_rate": 2 / 3, "mean_execution": 3.0,
                                          "mean_queue_wait": 1 / 3, "mean_server_time": 2.0, "cached": 0}
    assert report["servers"]["http://b"]["success_rate"] == 0.0
    assert report["servers"]["http://a"]["cached"] == 1
    assert stats([])["overall"]["success_rate"] == 0.0


def test_records_reach_the_callback(servers, tmp_path):
    server = servers()
    seen: list[JobRecord] = []
    farm = Farm([ComfyServer(server.url)], make_worker, on_record=seen.append)
    try:
        farm.result(submit(farm, keyframe_job(5, steps=2), tmp_path / "a"))
        farm.result(submit(farm, keyframe_job(5, steps=2), tmp_path / "b"))
    finally:
        farm.close()
    assert [r.cached for r in seen] == [False, True]
    assert all(r.ok and r.server == server.url and r.workflow == "sdxl_text_to_image" for r in seen)
    assert seen[0].server_time is not None and seen[0].execution >= seen[0].server_time
    assert time.time() - seen[-1].finished_at < 60
