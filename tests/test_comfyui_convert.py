"""UI-format → API-format conversion: the recorded pairs convert exactly; the rest by construction."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import WORKFLOWS, object_info, transcript, workflow  # noqa: E402

from storybuild.backends.comfyui.convert import is_ui_format, ui_to_api  # noqa: E402

RECORDED = sorted(p.stem for p in (WORKFLOWS / "ui_format").glob("*.json"))


@pytest.fixture(scope="module")
def info():
    return object_info()


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_ui_workflows_convert_exactly(name, info):
    expected = workflow(f"from_ui/{name}.api.json")
    converted = ui_to_api(workflow(f"ui_format/{name}.json"), info)
    assert converted.prompt == expected
    # Same node and input order too, so the JSON is byte-identical to the recording.
    assert json.dumps(converted.prompt) == json.dumps(expected)


def test_skipped_nodes_match_what_the_capture_reported(info):
    # Transcript 25 labels each conversion with the nodes it skipped and why.
    labels = [s["label"] for s in transcript("25")["steps"] if s.get("label")]
    switch = next(label for label in labels if label.startswith("basic_switch_node"))
    converted = ui_to_api(workflow("ui_format/basic_switch_node.json"), info)
    assert str(converted.skipped) in switch
    assert ("64:59", "ModelSamplingAuraFlow", "mode 4") in converted.skipped


def test_format_detection():
    assert is_ui_format(workflow("ui_format/flux_schnell.json"))
    assert not is_ui_format(workflow("from_ui/flux_schnell.api.json"))


def _node(node_id, node_type, *, inputs=(), outputs=(), widgets=None, mode=0, title=None):
    node = {"id": node_id, "type": node_type, "mode": mode, "inputs": list(inputs), "outputs": list(outputs),
            "widgets_values": widgets if widgets is not None else []}
    if title:
        node["title"] = title
    return node


def test_reroute_bypass_mute_and_primitive_nodes(info):
    ui = {
        "nodes": [
            _node(1, "EmptyImage", widgets=[64, 48, 1, 255],
                  outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
            _node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}],
                  outputs=[{"name": "", "type": "IMAGE", "links": [2]}]),
            # Bypassed: its IMAGE output passes its IMAGE input straight through.
            _node(3, "ImageInvert", mode=4, inputs=[{"name": "image", "type": "IMAGE", "link": 2}],
                  outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [3]}]),
            # A legacy PrimitiveNode drives the blur radius; its value is in the target's widgets.
            _node(4, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [4],
                                                "widget": {"name": "blur_radius"}}], widgets=[7, "fixed"]),
            _node(5, "ImageBlur", title="Soften",
                  inputs=[{"name": "image", "type": "IMAGE", "link": 3},
                          {"name": "blur_radius", "type": "INT", "link": 4, "widget": {"name": "blur_radius"}}],
                  outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [5, 6]}], widgets=[7, 1.5]),
            _node(6, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 5}], widgets=["kept"]),
            # Muted: dropped, and so is the output it would have written.
            _node(7, "SaveImage", mode=2, inputs=[{"name": "images", "type": "IMAGE", "link": 6}],
                  widgets=["muted"]),
            _node(8, "KSampler", widgets=[42, "randomize", 20, 7.5, "euler", "normal", 1.0]),
            _node(9, "LoadImage", widgets=["plate.png", "image"]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 5, 0, "IMAGE"],
                  [4, 4, 0, 5, 1, "INT"], [5, 5, 0, 6, 0, "IMAGE"], [6, 5, 0, 7, 0, "IMAGE"]],
    }
    converted = ui_to_api(ui, info)
    prompt = converted.prompt
    assert set(prompt) == {"1", "5", "6", "8", "9"}
    assert prompt["5"] == {"class_type": "ImageBlur", "inputs": {"blur_radius": 7, "sigma": 1.5, "image": ["1", 0]},
                           "_meta": {"title": "Soften"}}
    assert prompt["6"]["inputs"] == {"filename_prefix": "kept", "images": ["5", 0]}
    # control_after_generate ("randomize") and the upload button value are UI-only.
    assert prompt["8"]["inputs"] == {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
                                     "scheduler": "normal", "denoise": 1.0}
    assert prompt["9"]["inputs"] == {"image": "plate.png"}
    reasons = {node_id: reason for node_id, _, reason in converted.skipped}
    assert reasons == {"2": "virtual", "3": "mode 4", "4": "virtual", "7": "mode 2"}


def test_subgraph_output_feeds_outer_node_and_list_values_are_wrapped(info):
    inner_id = "5e1f0000-0000-4000-8000-000000000001"
    ui = {
        "nodes": [
            _node(1, "EmptyImage", widgets=[32, 32, 1, 0], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
            _node(2, inner_id, inputs=[{"name": "pixels", "type": "IMAGE", "link": 1}],
                  outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}]),
            _node(3, "SaveImage", inputs=[{"name": "images", "type": "IMAGE", "link": 2}], widgets=["sub"]),
            _node(4, "PrimitiveStringMultiline", widgets=[["a", "b"]]),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
        "definitions": {"subgraphs": [{
            "id": inner_id, "name": "invert twice",
            "inputs": [{"name": "pixels", "type": "IMAGE", "linkIds": [10]}],
            "outputs": [{"name": "IMAGE", "type": "IMAGE", "linkIds": [12]}],
            "nodes": [
                _node(7, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 10}]),
                _node(8, "ImageInvert", inputs=[{"name": "image", "type": "IMAGE", "link": 11}]),
            ],
            "links": [{"id": 10, "origin_id": -10, "origin_slot": 0, "target_id": 7, "target_slot": 0, "type": "IMAGE"},
                      {"id": 11, "origin_id": 7, "origin_slot": 0, "target_id": 8, "target_slot": 0, "type": "IMAGE"},
                      {"id": 12, "origin_id": 8, "origin_slot": 0, "target_id": -20, "target_slot": 0,
                       "type": "IMAGE"}],
        }]},
    }
    prompt = ui_to_api(ui, info).prompt
    assert prompt["2:7"]["inputs"] == {"image": ["1", 0]}
    assert prompt["2:8"]["inputs"] == {"image": ["2:7", 0]}
    assert prompt["3"]["inputs"]["images"] == ["2:8", 0]
    assert prompt["4"]["inputs"] == {"value": {"__value__": ["a", "b"]}}


def test_unknown_class_keeps_links_and_warns(info):
    ui = {"nodes": [_node(1, "EmptyImage", widgets=[8, 8, 1, 0], outputs=[{"name": "IMAGE", "type": "IMAGE",
                                                                          "links": [1]}]),
                    _node(2, "Wav2Lip", inputs=[{"name": "images", "type": "IMAGE", "link": 1}],
                          widgets={"mode": "sequential", "face_detect_batch": 8})],
          "links": [[1, 1, 0, 2, 0, "IMAGE"]]}
    converted = ui_to_api(ui, info)
    assert converted.prompt["2"]["inputs"] == {"mode": "sequential", "face_detect_batch": 8, "images": ["1", 0]}
    assert any("Wav2Lip" in warning for warning in converted.warnings)
