"""One server, the real protocol: uploads, prompts, the WebSocket, outputs, errors, cancel."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import WORKFLOWS, object_info, workflow  # noqa: E402
from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui.client import ComfyClient, FileRef, safe_ref  # noqa: E402
from storybuild.backends.comfyui.jobrunner import Job, Worker  # noqa: E402
from storybuild.errors import BackendError, Cancelled, TransientError  # noqa: E402

SOURCE = WORKFLOWS / "inputs" / "storybuild_src.png"


@pytest.fixture
def server(tmp_path):
    fake = FakeComfyUI(tmp_path / "server").start()
    yield fake
    fake.stop()


@pytest.fixture
def worker(server):
    client = ComfyClient(server.url, timeout=10)
    info = {}

    def object_info(refresh=False):
        if refresh or not info:
            info["value"] = client.object_info()
        return info["value"]

    made = Worker(client, object_info, timeout=20)
    yield made
    made.close()


def blur_job(changes: dict | None = None) -> Job:
    prompt = workflow("load_scale_invert_blur_save.json")
    prompt["1"]["inputs"]["image"] = "<upload:image>"
    for (node, name), value in (changes or {}).items():
        prompt[node]["inputs"][name] = value
    return Job(prompt=prompt, what="workflow 'grade'", uploads={"image": SOURCE}, outputs=("Save",))


def run(worker, job, out, cancel=None):
    progress: list[tuple[float, str]] = []
    fetched = worker.run(job, out, lambda f, m: progress.append((f, m)), cancel or threading.Event())
    return fetched, progress


def output_files(server):
    return sorted(p.name for p in (server.root / "output").rglob("*") if p.is_file())


def test_a_job_runs_and_its_outputs_come_back(server, worker, tmp_path):
    fetched, progress = run(worker, blur_job(), tmp_path / "a")
    [(path, kind, node)] = fetched.files
    assert (kind, node) == ("image", "5") and path.read_bytes().startswith(b"\x89PNG")
    assert path.name == "comfy-0000.png"  # our name, never the server's
    assert not fetched.cached and fetched.server_seconds is not None
    assert progress[-1] == (1.0, "fetching outputs") and any(m == "Blur" for _, m in progress)
    # The upload is named by its content and lands in input/storybuild/.
    [uploaded] = (server.root / "input" / "storybuild").iterdir()
    assert uploaded.name.startswith("sb-") and uploaded.read_bytes() == SOURCE.read_bytes()


def test_identical_resubmission_is_served_from_the_cache(server, worker, tmp_path):
    first, _ = run(worker, blur_job(), tmp_path / "a")
    files_before = output_files(server)
    second, _ = run(worker, blur_job(), tmp_path / "b")
    # No node ran and no new file was written, yet the job still gets its picture (T07).
    assert second.cached and output_files(server) == files_before
    assert second.files[0][0].read_bytes() == first.files[0][0].read_bytes()
    # A re-upload of the same bytes dedupes on the server.
    assert len(list((server.root / "input" / "storybuild").iterdir())) == 1


def test_a_cached_output_deleted_on_the_server_is_made_again(server, worker, tmp_path):
    run(worker, blur_job(), tmp_path / "a")
    server.wipe_outputs()
    fetched, _ = run(worker, blur_job(), tmp_path / "b")
    assert fetched.files and output_files(server)  # re-run with a fresh prefix: only the save node


def test_without_a_websocket_the_job_is_followed_by_polling(server, tmp_path):
    server.websocket_enabled = False
    client = ComfyClient(server.url)
    info = object_info()
    worker = Worker(client, lambda refresh=False: info, timeout=20, poll_interval=0.05)
    try:
        fetched, progress = run(worker, blur_job(), tmp_path / "a")
    finally:
        worker.close()
    assert fetched.files and progress[0] == (0.0, "waiting (no WebSocket: polling)")
    assert ("GET", "/history/" + fetched.prompt_id) in server.requests


def test_pictures_sent_over_the_websocket_are_outputs_too(server, worker, tmp_path):
    job = Job(prompt=workflow("empty_image_ws_save.json"), what="workflow 'ws'")
    fetched, _ = run(worker, job, tmp_path / "a")
    assert [(kind, node) for _, kind, node in fetched.files] == [("image", "31")] * 3  # batch of 3, type-4 frames
    assert all(path.read_bytes().startswith(b"\x89PNG") for path, _, _ in fetched.files)


def test_a_changed_value_runs_again(server, worker, tmp_path):
    run(worker, blur_job(), tmp_path / "a")
    fetched, _ = run(worker, blur_job({("4", "blur_radius"): 5}), tmp_path / "b")
    assert not fetched.cached and len(output_files(server)) == 2


def test_partial_acceptance_with_node_errors_is_an_error_and_is_taken_back(server, tmp_path):
    client = ComfyClient(server.url)
    slow = workflow("two_outputs_one_invalid.json")
    with pytest.raises(BackendError) as caught:
        client.submit(slow, what="workflow 'two'")
    message = caught.value.message
    assert "node #72 (ImageBlur): input 'blur_radius' = 99 is above the maximum 31" in message
    assert ("POST", "/queue") in server.requests and ("POST", "/interrupt") in server.requests
    time.sleep(0.2)
    assert server.executor.snapshot() == {"queue_running": [], "queue_pending": []}


@pytest.mark.parametrize("name,expected", [
    ("unknown_class_type.json", "node #3 'Invert' (StoryboardMagicNode): the server has no node class"),
    ("missing_required_input.json", "node #4 'Blur' (ImageBlur): required input 'sigma' is missing"),
    ("value_bigger_than_max.json", "input 'blur_radius' = 99 is above the maximum 31"),
    ("combo_value_not_in_list.json", "input 'upscale_method' = 'super-resolution' is not one of"),
    ("loadimage_missing_file.json", "input 'image': Invalid image file: does_not_exist.png"),
    ("link_type_mismatch.json", "input 'image' expects IMAGE but is linked to a LATENT output"),
    ("dependency_cycle.json", "is part of a dependency cycle"),
    ("no_output_node.json", "the workflow has no output node"),
    ("checkpoint_not_installed.json", "model 'sd_xl_base_1.0.safetensors' is not installed on the server"),
])
def test_rejected_prompts_become_permanent_errors_with_good_messages(server, name, expected):
    client = ComfyClient(server.url)
    (server.root / "input" / "storybuild_src.png").write_bytes(SOURCE.read_bytes())
    with pytest.raises(BackendError) as caught:
        client.submit(workflow(f"invalid/{name}"), what="workflow 'grade'")
    assert not isinstance(caught.value, TransientError)
    assert caught.value.message.startswith(f"workflow 'grade' was rejected by {server.url}")
    assert expected in caught.value.message
    assert "Traceback" not in caught.value.message


def test_local_validation_stops_a_broken_workflow_before_it_is_queued(server, worker, tmp_path):
    with pytest.raises(BackendError) as caught:
        run(worker, blur_job({("4", "sigma"): 50}), tmp_path / "a")
    assert caught.value.message == (f"workflow 'grade' cannot run on {server.url}:\n"
                                    "  node #4 'Blur' (ImageBlur): input 'sigma' = 50.0 is above the maximum 10.0")
    assert ("POST", "/prompt") not in server.requests


def test_an_execution_error_names_the_node_and_the_exception_only(server, worker, tmp_path):
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are notes, not pixels")
    job = blur_job()
    job.uploads["image"] = not_a_picture  # passes validation (the file exists), fails when loaded
    with pytest.raises(BackendError) as caught:
        run(worker, job, tmp_path / "a")
    message = caught.value.message
    assert not isinstance(caught.value, TransientError)
    # The exception's own text is Pillow's (the double's LoadImage opens the file with it).
    assert message.startswith("workflow 'grade': node #1 'Load source frame' (LoadImage) failed on the server: "
                              "UnidentifiedImageError: ")
    assert str(server.root) not in message  # server paths are not echoed


def test_the_recorded_execution_error_reads_well():
    from comfyui_data import ws_events

    from storybuild.backends.comfyui.messages import describe_execution_error

    event = next(e["msg"]["data"] for e in ws_events("18") if e.get("msg", {}).get("type") == "execution_error")
    prompt = workflow("runtime_error_save_outside_output.json")
    assert describe_execution_error(event, prompt) == (
        "node #61 (SaveImage) failed on the server: Exception: Saving image outside the output folder is not allowed.")


def test_a_server_error_is_transient(server, worker, tmp_path):
    server.http_failures["POST /prompt"] = 1
    with pytest.raises(TransientError, match="HTTP 500"):
        run(worker, blur_job(), tmp_path / "a")
    fetched, _ = run(worker, blur_job(), tmp_path / "b")  # the next try goes through
    assert fetched.files


def test_a_dead_server_is_transient(tmp_path):
    client = ComfyClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(TransientError, match="cannot reach"):
        client.system_stats()


def test_cancel_interrupts_the_running_prompt(tmp_path):
    server = FakeComfyUI(tmp_path / "server", step_seconds=0.05).start()
    client = ComfyClient(server.url)
    info = object_info()
    worker = Worker(client, lambda refresh=False: info, timeout=20)
    cancel = threading.Event()
    job = Job(prompt=workflow("model_required/txt2img_checkpoint.json"), what="workflow 't2i'")
    server.models["checkpoints"] = ["sd_xl_base_1.0.safetensors"]
    info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["sd_xl_base_1.0.safetensors"]
    threading.Timer(0.4, cancel.set).start()
    try:
        with pytest.raises(Cancelled):
            run(worker, job, tmp_path / "a", cancel)
        time.sleep(0.3)
        [entry] = server.executor.history.values()
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
        assert ("POST", "/interrupt") in server.requests
    finally:
        worker.close()
        server.stop()


def test_a_job_over_its_time_is_transient_and_taken_back(tmp_path):
    server = FakeComfyUI(tmp_path / "server", step_seconds=0.05, models={"checkpoints": ["sd_xl_base_1.0.safetensors"]})
    server.start()
    client = ComfyClient(server.url)
    worker = Worker(client, lambda refresh=False: server.object_info(), timeout=0.4)
    try:
        with pytest.raises(TransientError, match="did not finish in time"):
            run(worker, Job(prompt=workflow("model_required/txt2img_checkpoint.json"), what="t2i"), tmp_path / "a")
        time.sleep(0.3)
        [entry] = server.executor.history.values()
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    finally:
        worker.close()
        server.stop()


def test_server_file_names_are_confined():
    assert safe_ref({"filename": "frame_00001_.png", "subfolder": "storybuild/ab", "type": "output"}) == \
        FileRef("frame_00001_.png", "storybuild/ab", "output")
    for bad in ({"filename": "../x.png"}, {"filename": "a/b.png"}, {"filename": "x.png", "subfolder": "../.."},
                {"filename": "x.png", "subfolder": "/etc"}, {"filename": "x.png", "type": "bogus"},
                {"filename": "x.png", "subfolder": "a\\..\\b"}, {"filename": ".."}, {"filename": ""}):
        with pytest.raises(BackendError, match="refusing"):
            safe_ref(bad)


def test_queue_is_read_in_run_order(server):
    client = ComfyClient(server.url)
    server.executor.stop()  # nothing runs: everything stays pending
    time.sleep(0.3)
    ids = [client.submit(workflow(f"variants/queued_filler_{i}.json")).prompt_id for i in range(3)]
    response = client.session.post(server.url + "/prompt", json={"prompt": workflow("empty_image_save.json"),
                                                                  "front": True})
    front = response.json()["prompt_id"]
    running, pending = client.queue()
    assert running == [] and pending == [front, *ids]
    client.cancel(ids[1])
    assert client.queue()[1] == [front, ids[0], ids[2]]
