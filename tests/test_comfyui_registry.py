"""The shipped templates are valid against the recorded object_info, and routing picks them."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import FIXTURES, object_info  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.backends.comfyui.backend import ComfyUIBackend  # noqa: E402
from storybuild.backends.comfyui.validate import check_prompt, validate_workflow  # noqa: E402
from storybuild.backends.comfyui.workflow import bind, check_bindings  # noqa: E402

TEMPLATES = sorted(registry.templates())
CUSTOM = json.loads((FIXTURES / "custom_nodes.json").read_text())


@pytest.fixture(scope="module")
def info():
    return object_info()


@pytest.fixture(scope="module")
def equipped(info):
    """object_info of a server with the custom node packs the templates name."""
    return {**info, **CUSTOM}


@pytest.mark.parametrize("template_id", TEMPLATES)
def test_each_template_validates_on_a_server_with_its_models(template_id, equipped):
    template = registry.get(template_id)
    models = {folder: list(names) for folder, names in template.models.items()}
    models.setdefault("facerestore_models", ["codeformer-v0.1.0.pth"])
    flags = {flag: True for flag in template.optional}
    prompt = bind(template.prompt(), template.bindings, flags, optional=template.optional, outputs=template.outputs)
    check = check_prompt(prompt, equipped, models=models)
    assert check.ok, check.body()
    assert check_bindings(template.prompt(), template.bindings, object_info=equipped) == []
    assert set(template.custom_nodes) <= set(CUSTOM)  # every custom class is one we can simulate
    core = {node["class_type"] for node in prompt.values()} - set(template.custom_nodes)
    assert core <= set(equipped)  # core classes exist in the recorded v0.33 object_info


@pytest.mark.parametrize("template_id", [t for t in TEMPLATES if registry.get(t).custom_nodes])
def test_missing_custom_nodes_are_named_with_their_pack(template_id, info):
    template = registry.get(template_id)
    diagnostics = validate_workflow(template.prompt(), info, None, what=template_id,
                                    custom_nodes=template.custom_nodes)
    assert diagnostics and all(d.code == "missing_node_type" for d in diagnostics)
    assert all("install the custom node pack" in d.hint and "https://github.com/" in d.hint for d in diagnostics)


def test_missing_models_are_reported_as_not_installed(info):
    template = registry.get("wan_text_to_video")
    messages = [d.message for d in validate_workflow(template.prompt(), info, None, what="wan")]
    assert any("model 'wan2.1_t2v_1.3B_fp16.safetensors' is not installed" in m for m in messages)
    assert any("its models/text_encoders folder has no files" in m for m in messages)


def test_every_backend_capability_has_a_template():
    provided = {c for t in registry.templates().values() for c in t.capabilities}
    assert provided == ComfyUIBackend.capabilities


def test_routing_prefers_the_first_template_some_server_can_run():
    assert registry.route("text_to_image").id == "sdxl_text_to_image"
    flux_only = {"http://gpu1": {"diffusion_models": ["flux1-dev.safetensors"], "vae": ["ae.safetensors"],
                                 "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors"]}}
    assert registry.route("text_to_image", flux_only).id == "flux_text_to_image"
    assert registry.route("text_to_image", {"http://gpu1": [], "http://gpu2": ["x"]}).id == "sdxl_text_to_image"
    assert registry.route("upscale", kind="clip").id == "esrgan_upscale_video"
    assert registry.route("upscale", kind="keyframe").id == "esrgan_upscale_image"
    with pytest.raises(registry.NoTemplate) as caught:
        registry.route("text_to_video", {"http://gpu1": ["sd_xl_base_1.0.safetensors"]})
    assert "wan_text_to_video needs" in str(caught.value) and "ltx-video-2b-v0.9.5.safetensors" in str(caught.value)
    with pytest.raises(registry.NoTemplate, match="no shipped ComfyUI template provides 'render3d'"):
        registry.route("render3d")


def test_frame_counts_fit_each_model():
    wan, ltx, sdxl = registry.get("wan_text_to_video"), registry.get("ltxv_text_to_video"), \
        registry.get("sdxl_text_to_image")
    assert [wan.fit_frames(n) for n in (1, 33, 34, 48)] == [1, 33, 37, 49]
    assert [ltx.fit_frames(n) for n in (97, 98, 24)] == [97, 105, 25]
    assert sdxl.fit_frames(12) == 12
    assert registry.get("builtin:wan_text_to_video") is wan
