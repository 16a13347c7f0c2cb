"""A film whose shots use ComfyUI, built end to end through the CLI against the test server.

keyframes → image-to-video clips → lip-sync on the server; speech, visemes, the shots, the
mix and the assembly on the embedded backends. Then: a second build runs nothing and sends
nothing, an edit that moves lines regenerates nothing, and `takes: 2` makes two keyframe
candidates of which `take:` chooses one without regenerating either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from comfyui_project import cli, film_server, posts, prompts, write_project

from storybuild.backends.comfyui.backend import close_farms
from storybuild.backends.shared.ffmpeg import count_frames, probe
from storybuild.store.lockfile import read as read_lock
from storybuild.store.state import StateDB

REPO = Path(__file__).resolve().parent.parent

SHOTS = """\
      - id: lighthouse
        duration: 1
        prompt: a lighthouse at dusk, film still
        picture: {source: keyframe, params: {steps: 2}}
      - id: pier
        cast: [{ref: mara}]
        prompt: mara waves from the pier
        picture: {source: image_to_video, params: {steps: 2}}
        dialogue:
          - {character: mara, text: "Over here!"}
        lipsync: comfyui
      - id: dream
        duration: 1
        prompt: clocks melting into a starry sky
        picture: {source: text_to_video, params: {steps: 2}}
        lipsync: none
"""

GENERATED = ["clip/dream", "clip/pier", "keyframe/lighthouse", "keyframe/pier", "lipsync/pier"]


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    """The film built once: (project root, server, first build's output)."""
    base = tmp_path_factory.mktemp("film")
    server = film_server(base / "comfy")
    root = write_project(base / "project", server.url, SHOTS)
    first = cli(root, "build", "-j", "2")
    yield root, server, first
    close_farms()
    server.stop()


def test_the_film_builds_end_to_end_on_the_server(film):
    root, server, first = film
    assert first.exit_code == 0, first.output
    assert "failed 0" in first.output
    for action in GENERATED:
        assert action in first.output
    info = probe(root / "build" / "film.mp4")
    assert (info.video, info.audio, info.width, info.height) == ("h264", "aac", 160, 90)
    assert info.duration > 2.0  # three shots: 1 s, the line (≥ 1 s), 1 s
    assert count_frames(root / "build" / "clips" / "pier.lipsync.mp4") > 0
    for view in ("keyframes/lighthouse.png", "keyframes/pier.png", "clips/pier.mp4", "clips/dream.mp4",
                 "shots/pier.mp4", "dialogue/pier/00-mara.wav"):
        assert (root / "build" / view).is_file(), view


def test_the_server_ran_each_stage_with_the_shots_prompts(film):
    root, server, _ = film
    ran = prompts(server)
    assert posts(server) == len(ran) == len(GENERATED)
    classes = [{node["class_type"] for node in prompt.values()} for prompt in ran]
    texts = {node["inputs"].get("text") for prompt in ran for node in prompt.values()
             if node["class_type"] == "CLIPTextEncode"}
    assert {"a lighthouse at dusk, film still", "mara waves from the pier"} <= texts
    assert sum("SaveImage" in c and "KSampler" in c for c in classes) == 2  # the two keyframes
    assert any("WanImageToVideo" in c for c in classes)  # the keyframe animated
    assert any("EmptyHunyuanLatentVideo" in c for c in classes)  # text to video
    assert any("Wav2Lip" in c and "LoadAudio" in c for c in classes)  # the line lip-synced
    assert server.requests.count(("POST", "/upload/image")) >= 3  # keyframe, clip and dialogue uploaded


def test_a_second_build_runs_nothing_and_sends_nothing(film):
    root, server, _ = film
    before = len(server.requests)
    again = cli(root, "build")
    assert again.exit_code == 0 and again.output.startswith("nothing to do"), again.output
    # An edit that moves every shot down a line is planned anew (--explain skips the
    # up-to-date stamp) and leaves each action's key as it was.
    manifest = root / "storybuild.yaml"
    text = manifest.read_text()
    manifest.write_text("# Harbour lights, second draft\n" + text)
    try:
        moved = cli(root, "build", "--explain")
    finally:
        manifest.write_text(text)
    assert moved.exit_code == 0 and moved.output.startswith("nothing to do"), moved.output
    assert len(server.requests) == before


def test_a_no_op_build_imports_no_comfyui_code(film):
    root, server, _ = film
    assert cli(root, "build").exit_code == 0  # the up-to-date stamp is current, whatever ran before
    before = len(server.requests)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "storybuild", "build"], cwd=root,
                           env=env, check=True, capture_output=True, text=True)
    assert "nothing to do" in trace.stdout
    imported = {line.split("|")[-1].strip() for line in trace.stderr.splitlines() if "|" in line}
    assert not {name for name in imported if "comfyui" in name or name == "storybuild.engine.jobrecording"}
    assert len(server.requests) == before


TAKES = """\
      - id: lighthouse
        duration: 1
        prompt: a lighthouse at dusk, film still
        picture: {source: keyframe, params: {steps: 2}}
        takes: 2
"""


def test_takes_make_candidates_and_the_chosen_take_feeds_the_shot(tmp_path):
    server = film_server(tmp_path / "comfy")
    try:
        root = write_project(tmp_path / "project", server.url, TAKES)
        first = cli(root, "build")
        assert first.exit_code == 0, first.output
        assert posts(server) == 2
        a, b = (root / "build" / "keyframes" / f"lighthouse.take{n}.png" for n in (1, 2))
        assert a.read_bytes() != b.read_bytes()  # two seeds, two candidates
        lock = read_lock(root)
        candidates = {t: lock[f"keyframe/lighthouse/take{t}"] for t in (1, 2)}

        manifest = root / "storybuild.yaml"
        manifest.write_text(manifest.read_text().replace("takes: 2", "takes: 2\n        take: 2"))
        second = cli(root, "build")
        assert second.exit_code == 0, second.output
        assert "keyframe/" not in second.output and "shot/lighthouse" in second.output
        assert posts(server) == 2  # nothing regenerated
        lock = read_lock(root)
        assert {t: lock[f"keyframe/lighthouse/take{t}"] for t in (1, 2)} == candidates  # both pinned
        assert _image_input(root, "shot/lighthouse") == candidates[2].outputs["keyframe.png"]
    finally:
        close_farms()
        server.stop()


def _image_input(root: Path, action: str) -> str:
    """The digest of the `image` input an action was last built from."""
    db = StateDB(root / ".storybuild" / "state.sqlite")
    try:
        return json.loads(db.runs()[action].detail)["inputs"]["image"]
    finally:
        db.close()
