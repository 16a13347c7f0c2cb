"""Plan time: workflows resolved from the manifest, and `storybuild validate --backends`."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from comfyui_data import object_info, workflow  # noqa: E402
from comfyui_server import FakeComfyUI  # noqa: E402

from storybuild.backends.comfyui.commands import list_models, validate_workflows  # noqa: E402
from storybuild.backends.comfyui.expansion import resolve_workflow  # noqa: E402
from storybuild.errors import ManifestError, SourceLoc  # noqa: E402
from storybuild.model import (Backends, Binding, Manifest, Project,  # noqa: E402
                              Workflow)

WF_LOC = SourceLoc("storybuild.yaml", 60, 5)


def make_manifest(root, workflows=(), servers=("http://127.0.0.1:9",), object_info_path=None, models=()):
    return Manifest(root=str(root), file="storybuild.yaml", files=("storybuild.yaml",), version=1,
                    project=Project("test", seed=3), presets={}, characters={}, assets={}, scenes=(),
                    workflows={w.id: w for w in workflows}, exports=(), steps=(),
                    backends=Backends(settings={"comfyui": {
                        "servers": [{"url": url, "models": list(models)} for url in servers],
                        **({"object_info": object_info_path} if object_info_path else {})}}))


@pytest.fixture
def project(tmp_path):
    (tmp_path / "comfy").mkdir()
    (tmp_path / "comfy" / "object_info.json").write_text(json.dumps(object_info()))
    (tmp_path / "comfy" / "grade.json").write_text(json.dumps(workflow("load_scale_invert_blur_save.json")))
    (tmp_path / "comfy" / "flux_ui.json").write_text(json.dumps(workflow("ui_format/flux_schnell.json")))
    return tmp_path


GRADE = Workflow("grade", "comfy/grade.json", capabilities=("upscale",), outputs=("Save",), loc=WF_LOC,
                 bindings=(Binding("image", "Load source frame", "image", SourceLoc("storybuild.yaml", 63, 9)),
                           Binding("width", "Scale", "width", SourceLoc("storybuild.yaml", 64, 9))))


def test_a_routed_template_carries_everything_the_backend_needs(project):
    manifest = make_manifest(project)
    params = resolve_workflow(manifest, "text_to_image", None, {"prompt": "a gull", "width": 640}, seed_key="s1")
    assert params["template"] == params["workflow_id"] == "sdxl_text_to_image"
    assert params["workflow"]["5"]["class_type"] == "KSampler" and params["outputs"] == ["Save"]
    assert params["models"] == ["sd_xl_base_1.0.safetensors"]
    assert isinstance(params["values"]["seed"], int)  # a stable seed when none was given
    again = resolve_workflow(manifest, "text_to_image", None, {"prompt": "a gull"}, seed_key="s1")
    other = resolve_workflow(manifest, "text_to_image", None, {"prompt": "a gull"}, seed_key="s2")
    assert again["values"]["seed"] == params["values"]["seed"] != other["values"]["seed"]
    json.dumps(params)  # plain JSON: params are hashed as canonical JSON


def test_a_manifest_workflow_file_with_its_bindings(project):
    manifest = make_manifest(project, [GRADE])
    params = resolve_workflow(manifest, "upscale", "grade", {"width": 128})
    assert params["template"] is None and [b["node"] for b in params["bindings"]] == ["Load source frame", "Scale"]
    # Params are hashed into the action key: no line numbers, or moving a shot would regenerate it.
    assert "loc" not in params and not any("loc" in b for b in params["bindings"])
    with pytest.raises(ManifestError, match="does not provide 'lipsync'"):
        resolve_workflow(manifest, "lipsync", "grade", {})


def test_ui_format_files_are_converted_with_the_saved_object_info(project):
    flux = Workflow("flux", "comfy/flux_ui.json", capabilities=("text_to_image",), loc=WF_LOC,
                    bindings=(Binding("prompt", "CLIP Text Encode (Positive Prompt)", "text"),))
    manifest = make_manifest(project, [flux], object_info_path="comfy/object_info.json")
    params = resolve_workflow(manifest, "text_to_image", "flux", {"prompt": "a gull"})
    assert params["workflow"] == workflow("from_ui/flux_schnell.api.json")
    assert params["models"] == ["flux1-schnell-fp8.safetensors"]
    with pytest.raises(ManifestError, match="UI-format"):
        resolve_workflow(make_manifest(project, [flux]), "text_to_image", "flux", {})


def test_binding_mistakes_are_reported_at_the_binding(project):
    broken = Workflow("grade", "comfy/grade.json", loc=WF_LOC,
                      bindings=(Binding("width", "Scaler", "width", SourceLoc("storybuild.yaml", 64, 9)),))
    with pytest.raises(ManifestError) as caught:
        resolve_workflow(make_manifest(project, [broken]), "upscale", "grade", {"width": 9})
    [problem] = caught.value.diagnostics
    assert problem.loc == SourceLoc("storybuild.yaml", 64, 9) and "'Scaler'" in problem.message


def test_unknown_workflows_and_escaping_files_are_refused(project):
    with pytest.raises(ManifestError) as caught:
        resolve_workflow(make_manifest(project), "text_to_image", "sdxl_txt2img", {}, loc=WF_LOC)
    assert "unknown workflow 'sdxl_txt2img'" in caught.value.message and "sdxl_text_to_image" in caught.value.hint
    outside = Workflow("evil", "../../etc/passwd", loc=WF_LOC)
    with pytest.raises(ManifestError, match="outside the project"):
        resolve_workflow(make_manifest(project, [outside]), "upscale", "evil", {})
    builtin = Workflow("wan", "builtin:wan_text_to_video", loc=WF_LOC,
                       bindings=(Binding("prompt", "Positive", "text"),))
    params = resolve_workflow(make_manifest(project, [builtin]), "text_to_video", "wan", {"frames": 30})
    assert params["template"] == "wan_text_to_video" and params["values"]["frames"] == 33


def test_validate_workflows_against_a_saved_object_info(project):
    bad = json.loads((project / "comfy" / "grade.json").read_text())
    bad["4"]["inputs"]["blur_radius"] = 99
    (project / "comfy" / "bad.json").write_text(json.dumps(bad))
    workflows = [GRADE, Workflow("bad", "comfy/bad.json", loc=SourceLoc("storybuild.yaml", 70, 5)),
                 Workflow("lips", "builtin:wav2lip", loc=SourceLoc("storybuild.yaml", 75, 5)),
                 Workflow("sdxl", "builtin:sdxl_text_to_image", loc=SourceLoc("storybuild.yaml", 78, 5))]
    manifest = make_manifest(project, workflows, object_info_path="comfy/object_info.json")
    problems = validate_workflows(manifest)
    by_line = {}
    for problem in problems:
        by_line.setdefault(problem.loc.line, []).append(problem)
    assert set(by_line) == {70, 75}  # a cached dump does not know the models: sdxl is not blamed
    assert "input 'blur_radius' = 99 is above the maximum 31" in by_line[70][0].message
    assert all(p.code == "missing_node_type" for p in by_line[75])
    declared = make_manifest(project, workflows[3:], object_info_path="comfy/object_info.json",
                             models=["other.safetensors"])
    [missing] = validate_workflows(declared)
    assert missing.message.endswith("model 'sd_xl_base_1.0.safetensors' is not installed on the server "
                                    "(its models/checkpoints folder has other.safetensors)")


def test_validate_workflows_and_list_models_against_live_servers(project, tmp_path):
    server = FakeComfyUI(tmp_path / "srv", models={"checkpoints": ["sd_xl_base_1.0.safetensors"],
                                                  "loras": ["ink.safetensors"]}).start()
    try:
        sdxl = Workflow("sdxl", "builtin:sdxl_text_to_image", loc=WF_LOC)
        problems = validate_workflows(make_manifest(project, [sdxl], servers=(server.url, "http://127.0.0.1:9")))
        assert [p.code for p in problems] == ["server_unreachable"]
        errors: list[str] = []
        models = list_models({"servers": [server.url, "http://127.0.0.1:9"]}, errors=errors)
        assert models[server.url] == {"checkpoints": ["sd_xl_base_1.0.safetensors"], "loras": ["ink.safetensors"]}
        assert models["http://127.0.0.1:9"] == {} and len(errors) == 1
    finally:
        server.stop()
