"""Validation against object_info mirrors ComfyUI's own answers, recorded in the transcripts."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import WORKFLOWS, object_info, prompt_exchanges, without_tracebacks, workflow  # noqa: E402

from storybuild.backends.comfyui.messages import describe_prompt_error  # noqa: E402
from storybuild.backends.comfyui.validate import check_prompt, validate_workflow  # noqa: E402
from storybuild.errors import SourceLoc  # noqa: E402

LOC = SourceLoc("storybuild.yaml", 31, 7)
# Files that were in the capture server's input folder.
INPUT_FILES = {"storybuild_src.png", "example.png"}
# What the server said is its own business, not validation's.
SERVER_ONLY = {"invalid_prompt_id", "no_prompt"}
EXCHANGES = [e for e in prompt_exchanges()
             if (e[2]["json"].get("error") or {}).get("type") not in SERVER_ONLY]


@pytest.fixture(scope="module")
def info():
    return object_info()


@pytest.mark.parametrize("label,request_body,response", EXCHANGES, ids=[e[0] for e in EXCHANGES])
def test_every_recorded_prompt_answer_is_reproduced(label, request_body, response, info):
    check = check_prompt(request_body["prompt"], info, input_files=INPUT_FILES,
                         targets=request_body.get("partial_execution_targets"))
    if response["status"] == 200:
        assert check.accepted
        assert without_tracebacks(check.node_errors) == without_tracebacks(response["json"]["node_errors"])
    else:
        assert response["status"] == 400
        assert without_tracebacks(check.body()) == without_tracebacks(response["json"])


def test_values_are_coerced_like_the_server(info):
    check = check_prompt(workflow("primitive_boolean_preview_any.json"), info)
    assert check.ok
    assert check.prompt["50"]["inputs"]["value"] is True  # "false" → True, Python semantics (T16)
    assert check.prompt["52"]["inputs"]["value"] == 7


EXPECTED_MESSAGES = {
    "unknown_class_type.json": "node #3 'Invert' (StoryboardMagicNode): the server has no node class "
                               "'StoryboardMagicNode'",
    "missing_required_input.json": "node #4 'Blur' (ImageBlur): required input 'sigma' is missing",
    "value_bigger_than_max.json": "node #4 'Blur' (ImageBlur): input 'blur_radius' = 99 is above the maximum 31",
    "value_smaller_than_min.json": "node #4 'Blur' (ImageBlur): input 'sigma' = 0.0 is below the minimum 0.1",
    "wrong_value_type.json": "node #2 'Scale' (ImageScale): input 'width' = 'wide' is not a valid INT",
    "combo_value_not_in_list.json": "node #2 'Scale' (ImageScale): input 'upscale_method' = 'super-resolution' "
                                    "is not one of: nearest-exact, bilinear, area, bicubic, lanczos",
    "checkpoint_not_installed.json": "node #4 (CheckpointLoaderSimple): model 'sd_xl_base_1.0.safetensors' is not "
                                     "installed on the server (its models/checkpoints folder has no files)",
    "link_type_mismatch.json": "node #3 'Invert' (ImageInvert): input 'image' expects IMAGE but is linked to a "
                               "LATENT output (node #9, slot 0)",
    "bad_link_missing_node.json": "node #3 'Invert' (ImageInvert): a link points at node #99, which is not in "
                                  "the workflow",
    "bad_link_slot_out_of_range.json": "node #3 'Invert' (ImageInvert): a link points at an output slot that its "
                                       "source node does not have",
    "bad_link_shape.json": "node #3 'Invert' (ImageInvert): input 'image' is not a valid link",
    "dependency_cycle.json": "node #4 'Blur' (ImageBlur): is part of a dependency cycle: 4 (ImageBlur) -> "
                             "3 (ImageInvert) -> 2 (ImageScale) -> 4 (ImageBlur)",
    "no_output_node.json": "the workflow has no output node",
    "missing_class_type.json": "node #3 'Invert' has no class_type",
    "checkpoint_name_missing.json": "node #4 (CheckpointLoaderSimple): required input 'ckpt_name' is missing",
}


LOCAL = sorted(p.name for p in (WORKFLOWS / "invalid").glob("*.json") if p.name != "loadimage_missing_file.json")


@pytest.mark.parametrize("name", LOCAL)
def test_each_invalid_workflow_gets_a_located_message(name, info):
    diagnostics = validate_workflow(workflow(f"invalid/{name}"), info, LOC, what="workflow 'grade'")
    assert diagnostics, name
    assert all(d.loc == LOC and d.message.startswith("workflow 'grade': ") for d in diagnostics)
    if name in EXPECTED_MESSAGES:
        assert any(EXPECTED_MESSAGES[name] in d.message for d in diagnostics), [d.message for d in diagnostics]
    # Never echo server internals.
    assert not any("Traceback" in d.message or "tensor(" in d.message for d in diagnostics)


def test_a_missing_upload_is_only_known_to_the_server(info):
    prompt = workflow("invalid/loadimage_missing_file.json")
    assert validate_workflow(prompt, info, LOC) == []  # the name is bound before upload
    body = check_prompt(prompt, info, input_files=INPUT_FILES).body()
    assert describe_prompt_error(body, prompt) == [
        "node #1 'Load source frame' (LoadImage): input 'image': Invalid image file: does_not_exist.png"]


def test_multiple_errors_are_all_reported(info):
    codes = [d.code for d in validate_workflow(workflow("invalid/multiple_errors.json"), info, LOC)]
    assert codes == ["value_smaller_than_min", "value_bigger_than_max"]


def test_every_missing_class_is_named_with_its_custom_node_pack(info):
    prompt = workflow("load_scale_invert_blur_save.json")
    prompt["3"]["class_type"] = "Wav2Lip"
    prompt["4"]["class_type"] = "RIFE VFI"
    diagnostics = validate_workflow(prompt, info, LOC, custom_nodes={"Wav2Lip": "ComfyUI_wav2lip"})
    assert [d.code for d in diagnostics] == ["missing_node_type", "missing_node_type"]
    assert "install the custom node pack ComfyUI_wav2lip" in diagnostics[0].hint
    assert "'RIFE VFI'" in diagnostics[1].message


def test_models_can_come_from_the_server_config(info):
    prompt = workflow("model_required/txt2img_checkpoint.json")
    installed = {"checkpoints": ["sd_xl_base_1.0.safetensors"]}
    assert validate_workflow(prompt, info, LOC, models=installed) == []
    # A cached dump knows nothing of the models: skip those lists, still check the rest.
    prompt["3"]["inputs"]["steps"] = 0
    diagnostics = validate_workflow(prompt, info, LOC, check_models=False)
    assert [d.code for d in diagnostics] == ["value_smaller_than_min"]


def test_v3_dynamic_combo_and_autogrow_inputs(info):
    dotted = workflow("v3/dynamic_combo_dotted_keys.json")
    assert check_prompt(dotted, info).ok
    undotted = check_prompt(workflow("v3/dynamic_combo_undotted_keys.json"), info)
    errors = undotted.node_errors["2"]["errors"]
    assert [(e["details"], e["extra_info"]["input_name"]) for e in errors] == [
        ("width", "resize_type.width"), ("height", "resize_type.height"), ("crop", "resize_type.crop")]
    assert check_prompt(workflow("v3/autogrow_values.json"), info).ok
