"""The ComfyUI test double answers as the recorded server did (transcripts 05–21)."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import pytest
import requests
import websocket

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import WORKFLOWS, transcript, workflow, ws_events  # noqa: E402
from comfyui_server import FakeComfyUI  # noqa: E402

SOURCE = (WORKFLOWS / "inputs" / "storybuild_src.png").read_bytes()
LIFECYCLE = {"execution_start", "execution_cached", "executing", "executed", "execution_success",
             "execution_error", "execution_interrupted"}


@pytest.fixture
def server(tmp_path):
    fake = FakeComfyUI(tmp_path / "srv").start()
    (fake.root / "input" / "storybuild_src.png").write_bytes(SOURCE)
    yield fake
    fake.stop()


def listen(server, client_id):
    ws = websocket.create_connection(f"ws://127.0.0.1:{server.url.rsplit(':', 1)[1]}/ws?clientId={client_id}",
                                     timeout=10)
    greeting = json.loads(ws.recv())
    assert greeting == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}}
    return ws


def events_until_done(ws, prompt_id):
    seen = []
    while True:
        message = json.loads(ws.recv())
        if message["type"] in LIFECYCLE and message["data"].get("prompt_id") == prompt_id:
            seen.append((message["type"], message["data"].get("node")))
            if message["type"] == "executing" and message["data"]["node"] is None:
                return seen


def recorded_sequence(prefix, prompt_id):
    return [(e["msg"]["type"], e["msg"]["data"].get("node")) for e in ws_events(prefix)
            if e["dir"] == "recv" and e.get("kind") == "text" and e["msg"]["type"] in LIFECYCLE
            and e["msg"]["data"].get("prompt_id") == prompt_id]


def test_a_run_then_an_identical_resubmission_sends_the_recorded_events(server):
    ws = listen(server, "storybuild-test")
    prompt = workflow("load_scale_invert_blur_save.json")
    first = requests.post(server.url + "/prompt", json={"prompt": prompt, "client_id": "storybuild-test"}).json()
    assert first["number"] == 0 and first["node_errors"] == {}
    recorded_first = transcript("06")["steps"][0]["response"]["json"]["prompt_id"]
    assert events_until_done(ws, first["prompt_id"]) == recorded_sequence("06", recorded_first)
    second = requests.post(server.url + "/prompt", json={"prompt": prompt, "client_id": "storybuild-test"}).json()
    recorded_second = transcript("07")["steps"][0]["response"]["json"]["prompt_id"]
    assert events_until_done(ws, second["prompt_id"]) == recorded_sequence("07", recorded_second)
    history = requests.get(f"{server.url}/history/{second['prompt_id']}").json()[second["prompt_id"]]
    assert history["outputs"] == {"5": {"images": [{"filename": "frame_00001_.png", "subfolder": "storybuild/shot01",
                                                    "type": "output"}]}}
    assert [m[0] for m in history["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    ws.close()


def test_a_runtime_error_is_reported_like_transcript_18(server):
    ws = listen(server, "c18")
    body = requests.post(server.url + "/prompt", json={"prompt": workflow("runtime_error_save_outside_output.json"),
                                                       "client_id": "c18"}).json()
    while True:
        message = json.loads(ws.recv())
        if message["type"] == "execution_error":
            break
    recorded = next(e["msg"]["data"] for e in ws_events("18") if e.get("msg", {}).get("type") == "execution_error")
    assert set(message["data"]) == set(recorded)
    assert message["data"]["node_id"] == "61" and message["data"]["exception_message"].startswith(
        "**** ERROR: Saving image outside the output folder is not allowed.")
    entry = requests.get(f"{server.url}/history/{body['prompt_id']}").json()[body["prompt_id"]]
    assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
    ws.close()


def test_uploads_dedupe_rename_and_refuse_escapes(server):
    def upload(data, **fields):
        return requests.post(server.url + "/upload/image", files={"image": ("storybuild_src.png", data, "image/png")},
                             data=fields)

    expected = [s["response"] for s in transcript("05")["steps"]]
    assert upload(SOURCE).json() == expected[1]["json"]  # same bytes: same name
    assert upload(SOURCE + b"x").json() == expected[2]["json"]  # other bytes: "storybuild_src (1).png"
    assert upload(SOURCE + b"x", overwrite="true").json() == expected[3]["json"]
    assert upload(SOURCE, subfolder="../../outside").status_code == 400
    assert requests.post(server.url + "/upload/image", data={"not_image": "x"}).status_code == 400


def test_view_answers_like_transcript_06(server):
    run = requests.post(server.url + "/prompt", json={"prompt": workflow("load_scale_invert_blur_save.json")}).json()
    for _ in range(100):
        if requests.get(f"{server.url}/history/{run['prompt_id']}").json():
            break
        time.sleep(0.05)
    for step in transcript("06")["steps"][2:]:
        if step["request"]["path"] != "/view":
            continue
        response = requests.get(server.url + "/view", params=step["request"]["query"])
        assert response.status_code == step["response"]["status"], step["label"]


def test_post_prompt_edge_cases(server):
    assert requests.post(server.url + "/prompt", data=b"{not json").status_code == 500
    assert requests.post(server.url + "/prompt", json={}).json()["error"]["type"] == "no_prompt"
    bad_id = requests.post(server.url + "/prompt", json={"prompt": workflow("empty_image_save.json"),
                                                        "prompt_id": "not-a-uuid"})
    assert bad_id.status_code == 400 and bad_id.json()["error"]["type"] == "invalid_prompt_id"
    chosen = str(uuid.uuid4())
    body = requests.post(server.url + "/prompt", json={"prompt": workflow("empty_image_save.json"),
                                                      "prompt_id": chosen}).json()
    assert body["prompt_id"] == chosen and body["number"] == 2  # rejected POSTs count too (not the one that was not JSON)
    front = requests.post(server.url + "/prompt", json={"prompt": workflow("empty_image_save.json"), "front": True})
    assert front.json()["number"] == -3
    assert requests.get(server.url + "/object_info/NotANode").json() == {}
    assert requests.get(server.url + "/api/models/not_a_folder").status_code == 404
    assert requests.get(server.url + "/queue", headers={"Origin": "http://evil.example"}).status_code == 403


def test_without_client_id_only_broadcasts_arrive(server):
    ws = listen(server, "bystander")
    requests.post(server.url + "/prompt", json={"prompt": workflow("empty_image_ws_save.json")})
    kinds, binary = set(), 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            binary += 1
            assert data[:8] == bytes([0, 0, 0, 1, 0, 0, 0, 2]) and data[8:12] == b"\x89PNG"
            continue
        message = json.loads(data)
        kinds.add(message["type"])
        if message["type"] == "status" and message["data"]["status"]["exec_info"]["queue_remaining"] == 0:
            break
    assert binary == 3 and "progress" in kinds and not kinds & LIFECYCLE  # as in T21
    ws.close()
