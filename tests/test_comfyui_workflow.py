"""Loading workflows and applying a manifest's bindings: values, files, LoRAs, optional parts."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import object_info, workflow  # noqa: E402

from storybuild.backends.comfyui import registry  # noqa: E402
from storybuild.backends.comfyui.validate import check_prompt  # noqa: E402
from storybuild.backends.comfyui.workflow import (BindingSpec, bind, check_bindings, find_node,  # noqa: E402
                                                  load_workflow, referenced_models)
from storybuild.errors import ManifestError, SourceLoc  # noqa: E402
from storybuild.model import Binding  # noqa: E402

LOC = SourceLoc("storybuild.yaml", 40, 3)
BLUR = [BindingSpec("radius", "Blur", "blur_radius", "storybuild.yaml:44:9"), BindingSpec("width", "2", "width"),
        BindingSpec("image", "Load source frame", "image")]


@pytest.fixture(scope="module")
def info():
    return object_info()


def test_values_go_where_the_bindings_say(info):
    prompt = workflow("load_scale_invert_blur_save.json")
    bound = bind(prompt, BLUR, {"radius": 7, "width": 120, "image": "plate"}, loc=LOC)
    assert bound["4"]["inputs"]["blur_radius"] == 7  # by title
    assert bound["2"]["inputs"]["width"] == 120  # by id
    assert bound["1"]["inputs"]["image"] == "<upload:plate>"  # a file: bound after its upload
    assert prompt["4"]["inputs"]["blur_radius"] == 2  # the template is not touched
    assert bind(prompt, BLUR, {"image": "plate"}, uploads={"plate": "storybuild/sb-1.png"})["1"]["inputs"] == \
        {"image": "storybuild/sb-1.png"}
    assert bind(prompt, BLUR, {})["4"]["inputs"]["blur_radius"] == 2  # no value: the workflow's own stays


def test_every_binding_problem_is_reported_at_once_with_its_location():
    prompt = workflow("load_scale_invert_blur_save.json")
    bindings = [Binding("radius", "Blurr", "blur_radius", SourceLoc("storybuild.yaml", 51, 11)),
                {"param": "width", "node": "Scale", "input": "widht", "loc": "storybuild.yaml:52:11"}]
    with pytest.raises(ManifestError) as caught:
        bind(prompt, bindings, {"radius": 3, "width": 64}, what="workflow 'grade'", loc=LOC)
    first, second = caught.value.diagnostics
    assert first.message == "workflow 'grade': binding for 'radius': no node has id or title 'Blurr'"
    assert first.loc == SourceLoc("storybuild.yaml", 51, 11) and "Blur, Invert" in first.hint
    assert second.message == "workflow 'grade': binding for 'width': node #2 (ImageScale) has no input 'widht'"
    assert second.loc == SourceLoc("storybuild.yaml", 52, 11) and "width" in second.hint


def test_ambiguous_titles_are_refused():
    prompt = workflow("load_scale_invert_blur_save.json")
    prompt["3"]["_meta"]["title"] = "Blur"
    assert find_node(prompt, "Blur") is None
    [problem] = check_bindings(prompt, [BindingSpec("radius", "Blur", "blur_radius")])
    assert "2 nodes are titled 'Blur'" in problem.message


def test_an_input_the_node_does_not_list_yet_is_known_from_object_info(info):
    prompt = workflow("load_scale_invert_blur_save.json")
    del prompt["4"]["inputs"]["sigma"]
    assert check_bindings(prompt, [BindingSpec("sigma", "Blur", "sigma")]) != []
    assert check_bindings(prompt, [BindingSpec("sigma", "Blur", "sigma")], object_info=info) == []
    assert bind(prompt, [BindingSpec("sigma", "Blur", "sigma")], {"sigma": 2.5}, object_info=info)["4"]["inputs"][
        "sigma"] == 2.5


def test_list_values_are_wrapped_and_maps_apply(info):
    prompt = workflow("primitive_boolean_preview_any.json")
    bound = bind(prompt, [{"param": "flag", "node": "50", "input": "value", "map": {"true": "yes"}},
                          BindingSpec("words", "52", "value")], {"flag": True, "words": ["a", "b"]})
    assert bound["50"]["inputs"]["value"] == "yes"
    assert bound["52"]["inputs"]["value"] == {"__value__": ["a", "b"]}


def test_loras_are_chained_after_the_model_loader(info):
    sdxl = registry.get("sdxl_text_to_image")
    loras = [{"name": "film_grain.safetensors", "strength": 0.6}, "noir.safetensors"]
    bound = bind(sdxl.prompt(), sdxl.bindings, {"loras": loras}, outputs=sdxl.outputs)
    first, second = bound["1:lora0"], bound["1:lora1"]
    assert first["class_type"] == "LoraLoader" and first["inputs"]["model"] == ["1", 0]
    assert first["inputs"]["clip"] == ["1", 1] and first["inputs"]["strength_model"] == 0.6
    assert second["inputs"]["model"] == ["1:lora0", 0] and second["inputs"]["clip"] == ["1:lora0", 1]
    assert bound["5"]["inputs"]["model"] == ["1:lora1", 0]  # the sampler
    assert bound["2"]["inputs"]["clip"] == ["1:lora1", 1] and bound["3"]["inputs"]["clip"] == ["1:lora1", 1]
    assert bound["6"]["inputs"]["vae"] == ["1", 2]  # the VAE does not pass through LoRAs
    models = {"checkpoints": ["sd_xl_base_1.0.safetensors"], "loras": ["film_grain.safetensors", "noir.safetensors"]}
    assert check_prompt(bound, info, models=models).ok
    assert referenced_models(bound) == ["film_grain.safetensors", "noir.safetensors", "sd_xl_base_1.0.safetensors"]
    flux = registry.get("flux_text_to_image")
    bound = bind(flux.prompt(), flux.bindings, {"loras": ["ink.safetensors"]})
    assert bound["1:lora0"]["class_type"] == "LoraLoaderModelOnly" and bound["8"]["inputs"]["model"] == ["1:lora0", 0]


def test_an_optional_part_is_bypassed_and_what_only_it_used_is_pruned():
    template = registry.get("wav2lip")
    off = bind(template.prompt(), template.bindings, {}, optional=template.optional, outputs=template.outputs)
    on = bind(template.prompt(), template.bindings, {"face_restore": True}, optional=template.optional,
              outputs=template.outputs)
    assert {n["class_type"] for n in off.values()} >= {"Wav2Lip", "SaveImage"}
    assert not {"FaceRestoreCFWithModel", "FaceRestoreModelLoader"} & {n["class_type"] for n in off.values()}
    assert off["7"]["inputs"]["images"] == ["4", 0]  # the save node now takes the lip-synced frames
    assert on["7"]["inputs"]["images"] == ["6", 0] and "5" in on


def test_loading_api_ui_and_saved_prompt_bodies(tmp_path, info):
    api = tmp_path / "api.json"
    api.write_text(json.dumps(workflow("empty_image_save.json")))
    assert load_workflow(api) == workflow("empty_image_save.json")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"prompt": workflow("empty_image_save.json"), "client_id": "x"}))
    assert load_workflow(body) == workflow("empty_image_save.json")
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps(workflow("ui_format/flux_schnell.json")))
    assert load_workflow(ui, info) == workflow("from_ui/flux_schnell.api.json")
    with pytest.raises(ManifestError) as caught:
        load_workflow(ui, None, loc=LOC)
    assert "UI-format" in caught.value.message and "Save (API)" in caught.value.hint
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_workflow(bad)
    with pytest.raises(ManifestError, match="does not exist"):
        load_workflow(tmp_path / "missing.json")
