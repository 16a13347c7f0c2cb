"""`validate --backends`, `backends models`, `stats` and the job records behind it, through the
CLI against the ComfyUI test server."""

from __future__ import annotations

import json
import sqlite3

import pytest
from comfyui_data import object_info
from comfyui_project import cli, film_server, posts, write_project

from storybuild.backends.comfyui.backend import close_farms
from storybuild.store.jobs import TABLE

KEYFRAME = """\
      - id: lighthouse
        duration: 1
        prompt: a lighthouse at dusk
        picture: {source: keyframe, params: {steps: 2, sampler: SAMPLER}}
"""
PICTURE_LINE = 14  # storybuild.yaml line of the shot's `picture:` (write_project's layout)

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    fake = film_server(tmp_path_factory.mktemp("comfy"))
    yield fake
    close_farms()
    fake.stop()


def keyframe_project(root, url, sampler="euler", comfyui=""):
    return write_project(root, url, KEYFRAME.replace("SAMPLER", sampler), comfyui=comfyui)


# --------------------------------------------------------------------------- validate --backends


def test_validate_backends_passes_against_a_live_server(server, tmp_path):
    root = keyframe_project(tmp_path, server.url)
    result = cli(root, "validate", "--backends")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("storybuild.yaml: valid")
    assert ("GET", "/object_info") in server.requests and posts(server) == 0  # checked, nothing queued


def test_validate_backends_names_the_manifest_line_and_the_workflow_node(server, tmp_path):
    root = keyframe_project(tmp_path, server.url, sampler="euler_fancy")
    result = cli(root, "validate", "--backends")
    assert result.exit_code == 2
    assert f"storybuild.yaml:{PICTURE_LINE}:9: error: keyframe workflow 'sdxl_text_to_image': " \
           "node #5 'Sampler' (KSampler): input 'sampler_name' = 'euler_fancy'" in result.stderr
    assert "storybuild.yaml: invalid (1 error)" in result.stderr
    as_json = json.loads(cli(root, "validate", "--backends", "--format", "json").stdout)
    [problem] = as_json["diagnostics"]
    assert not as_json["valid"] and problem["line"] == PICTURE_LINE and problem["code"] == "value_not_in_list"
    assert cli(root, "validate").exit_code == 0  # without --backends no server is asked


def test_validate_backends_with_a_saved_object_info_and_no_server(tmp_path):
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "object_info.json").write_text(json.dumps(object_info()))
    saved = "    object_info: comfy/object_info.json\n"
    root = keyframe_project(tmp_path, UNREACHABLE, comfyui=saved)
    assert cli(root, "validate", "--backends").exit_code == 0  # the dump alone: nothing to reach
    # The server is declared to have other models. Routing finds no template for the shot…
    text = (root / "storybuild.yaml").read_text()
    text = text.replace(f'{{url: "{UNREACHABLE}"}}', f'{{url: "{UNREACHABLE}", models: [noir_xl.safetensors]}}')
    (root / "storybuild.yaml").write_text(text)
    routed = cli(root, "validate", "--backends")
    assert routed.exit_code == 2
    assert f"storybuild.yaml:{PICTURE_LINE}:9: error: no server has the models" in routed.stderr
    # …and a declared workflow that the shot names has its checkpoint reported missing, at the node.
    text = text.replace("source: keyframe,", "source: keyframe, workflow: still,")
    text += "workflows:\n  still: {file: \"builtin:sdxl_text_to_image\", capabilities: [text_to_image]}\n"
    (root / "storybuild.yaml").write_text(text)
    named = cli(root, "validate", "--backends")
    assert named.exit_code == 2
    line = text.splitlines().index("workflows:") + 2
    assert f"storybuild.yaml:{line}:3: error: workflow 'still': node #1 'Checkpoint' (CheckpointLoaderSimple): " \
           "model 'sd_xl_base_1.0.safetensors' is not installed" in named.stderr
    assert "invalid (1 error)" in named.stderr  # the shot's bound workflow is not blamed a second time


def test_validate_backends_warns_when_a_server_is_unreachable(tmp_path):
    root = keyframe_project(tmp_path, UNREACHABLE)
    result = cli(root, "validate", "--backends")
    assert result.exit_code == 0  # a warning: the manifest itself is fine
    assert "warning: cannot check workflows against http://127.0.0.1:9" in result.stderr


# --------------------------------------------------------------------------- backends models


def test_backends_models_lists_each_servers_models_by_folder(server, tmp_path):
    root = keyframe_project(tmp_path, server.url)
    result = cli(root, "backends", "models")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == server.url
    at = lines.index("  checkpoints/")
    assert "    sd_xl_base_1.0.safetensors" in lines[at + 1:]
    listed = json.loads(cli(root, "backends", "models", "--json").stdout)
    assert listed["servers"][server.url]["upscale_models"] == ["4x-UltraSharp.pth"] and listed["errors"] == {}


def test_backends_models_names_an_unreachable_server_and_exits_1(server, tmp_path):
    root = keyframe_project(tmp_path, server.url)
    text = (root / "storybuild.yaml").read_text()
    (root / "storybuild.yaml").write_text(text.replace("    timeout: 60", f'      - {{url: "{UNREACHABLE}"}}\n'
                                                                          "    timeout: 60"))
    result = cli(root, "backends", "models")
    assert result.exit_code == 1
    assert f"{UNREACHABLE} (unreachable)" in result.stdout and "  checkpoints/" in result.stdout
    assert f"storybuild: {UNREACHABLE}" in result.stderr


def test_backends_models_without_servers_is_a_usage_error(tmp_path):
    (tmp_path / "storybuild.yaml").write_text("version: 1\nproject: {title: Silent}\n")
    result = cli(tmp_path, "backends", "models")
    assert result.exit_code == 2 and "no ComfyUI servers are configured" in result.stderr


# --------------------------------------------------------------------------- job records and stats


def test_stats_before_any_comfyui_job(server, tmp_path):
    root = keyframe_project(tmp_path, server.url)
    result = cli(root, "stats")
    assert result.exit_code == 0 and result.stdout.startswith("no jobs recorded yet")


def test_builds_record_each_attempt_and_stats_summarise_them(server, tmp_path):
    root = keyframe_project(tmp_path, server.url)
    server.http_failures["POST /prompt"] = 1  # one 500: a transient failure, retried
    try:
        assert cli(root, "build").exit_code == 0
    finally:
        server.http_failures.clear()
    rows = _rows(root)
    assert [(r["action_id"], r["workflow"], r["server"], r["ok"], r["attempt"]) for r in rows] == [
        ("keyframe/lighthouse", "sdxl_text_to_image", server.url, 0, 1),
        ("keyframe/lighthouse", "sdxl_text_to_image", server.url, 1, 2)]
    failed, done = rows
    assert "500" in failed["error"] and done["error"] == ""
    assert done["execution"] > 0 and done["server_time"] is not None and done["queue_wait"] >= 0
    assert len({r["build"] for r in rows}) == 1

    result = cli(root, "stats")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("comfyui jobs: 2 attempts, 1 succeeded (50%), 0 served from a server's cache")
    [row] = [line for line in result.stdout.splitlines() if line.startswith("sdxl_text_to_image")]
    assert row.split()[1:3] == ["2", "50%"]
    assert any(line.startswith(server.url) for line in result.stdout.splitlines())

    # A forced rebuild sends the identical prompt again: ComfyUI serves it from its cache.
    assert cli(root, "build", "--force", "keyframe/lighthouse").exit_code == 0
    everything = json.loads(cli(root, "stats", "--json").stdout)["comfyui"]  # by backend
    last = json.loads(cli(root, "stats", "--json", "--builds", "1").stdout)["comfyui"]
    assert everything["overall"]["jobs"] == 3 and everything["workflows"]["sdxl_text_to_image"]["succeeded"] == 2
    assert last["overall"] == {**last["overall"], "jobs": 1, "succeeded": 1, "cached": 1, "success_rate": 1.0}
    assert set(last["servers"]) == {server.url}


def test_a_build_records_only_the_jobs_of_its_own_comfyui_steps():
    from types import SimpleNamespace

    from storybuild.backends.comfyui import backend
    from storybuild.backends.comfyui.jobrecords import JobRecord
    from storybuild.engine.jobrecording import recording

    class Writer:
        def __init__(self):
            self.ops = []

        def put(self, ops):
            self.ops += list(ops)

    def step(action_id, backend_name):
        return SimpleNamespace(action=SimpleNamespace(id=action_id, backend=backend_name))

    writer = Writer()
    before = list(backend._recorders)  # other tests may have left theirs
    with recording([step("shot/a", "embedded")], writer, 7):
        assert backend._recorders == before  # nothing of ComfyUI's is touched
    assert writer.ops == []
    with recording([step("keyframe/a", "comfyui"), step("shot/a", "embedded")], writer, 7):
        assert len(backend._recorders) == len(before) + 1
        for action_id in ("keyframe/a", "keyframe/of-another-build"):  # farms are shared in-process
            backend._record(JobRecord("j", action_id, "sdxl_text_to_image", "http://gpu", ok=True, execution=1.5))
    assert backend._recorders == before
    create, prune, insert = writer.ops
    assert create[0].startswith(f"CREATE TABLE IF NOT EXISTS {TABLE}") and prune[0].startswith("DELETE")
    assert insert[1][:6] == (7, "comfyui", "j", "keyframe/a", "sdxl_text_to_image", "http://gpu")


def _rows(root) -> list[dict]:
    conn = sqlite3.connect(root / ".storybuild" / "state.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(f"SELECT * FROM {TABLE} ORDER BY rowid")]
    finally:
        conn.close()
