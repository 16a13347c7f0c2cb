"""load_manifest: the demo as a typed model, includes, cross-references, rendering, locations."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from storybuild.errors import ManifestError, Severity
from storybuild.manifest.load import check_manifest, load_manifest
from storybuild.model import (
    AssetKind, Easing, MoveType, PictureSource, Prosody, Reverb, TransitionType,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return folder / "storybuild.yaml"


def messages(path: Path, **kwargs) -> list[str]:
    manifest, diags = check_manifest(path, **kwargs)
    return [f"{d.severity.value} {d.loc}: {d.message}" if d.loc else d.message for d in diags]


@pytest.fixture(scope="module")
def demo():
    return load_manifest(REPO / "storybuild.yaml")


def test_demo_film_model(demo) -> None:
    assert demo.root == str(REPO) and demo.file == "storybuild.yaml" and demo.files == ("storybuild.yaml",)
    assert demo.version == 1
    assert (demo.project.title, demo.project.fps, demo.project.width, demo.project.height) == \
        ("The Lighthouse Keeper", 24, 640, 360)
    assert demo.project.look.style == "storybook" and demo.project.seed == 1207
    assert len(demo.scenes) >= 3 and sum(len(s.shots) for s in demo.scenes) >= 8
    assert len(demo.characters) >= 3 and len({c.voice.name for c in demo.characters.values()}) == len(demo.characters)
    mara = demo.characters["mara"]
    assert (mara.archetype, mara.traits) == ("mentor", ("stubborn", "warm", "dry humour"))
    assert mara.voice.emotions["worried"] == Prosody(rate=1.1, pitch=6.0, volume=1.0)
    assert mara.model == "mara_model" and demo.assets["mara_model"].kind is AssetKind.MODEL
    assert demo.assets["cottage"].rotation == (0.0, 20.0, 0.0)
    assert demo.characters["theo"].description.endswith("Mara's grandson")  # Jinja rendered


def test_demo_scenes_and_shots(demo) -> None:
    harbour = demo.scenes[0]
    assert harbour.reverb is Reverb.OUTDOOR and harbour.transition.type is TransitionType.CROSSFADE
    assert harbour.music.duck == 0.35 and harbour.ambience.asset == "sea"
    assert [p.ref for p in harbour.set] == ["pier", "boat", "lighthouse", "rock"]
    wide, theo = harbour.shots[0], harbour.shots[1]
    assert wide.prompt == "the harbour below the lighthouse at golden-hour, a lighthouse on the cliff"
    assert wide.camera.move.type is MoveType.DOLLY and wide.camera.look_at == (0.0, 1.2, -1.0)
    assert theo.camera.look_at == "theo" and theo.duration is None
    assert wide.picture.source is PictureSource.RENDER3D and wide.picture.backend == "auto"
    assert theo.lipsync == "embedded"
    keys = demo.scenes[1].shots[2].camera.keyframes
    assert [k.at for k in keys] == [0.0, 1.0] and keys[1].easing is Easing.EASE_IN_OUT
    line = theo.dialogue[0]
    assert (line.character, line.emotion, line.offset) == ("theo", "excited", 0.3)


def test_paths_and_locations(demo) -> None:
    rate = demo.locs["characters.mara.voice.rate"]
    assert (rate.file, rate.line, rate.col) == (str(REPO / "storybuild.yaml"), 22, 7)  # files named as given
    line = demo.scenes[0].shots[1].dialogue[0]
    assert line.path == "scenes[0].shots[1].dialogue[0]"
    assert demo.locs["scenes[0].shots[1].dialogue[0].text"].line == line.loc.line
    assert demo.scenes[0].path == "scenes[0]" and demo.scenes[0].shots[1].path == "scenes[0].shots[1]"
    assert demo.characters["mara"].path == "characters.mara" and demo.characters["mara"].voice.path == \
        "characters.mara.voice"
    assert demo.assets["boat"].path_in_manifest == "assets.boat"
    # A path that was never written resolves to its nearest written ancestor.
    assert demo.loc_of("scenes[0].shots[1].picture.params.seed") == demo.locs["scenes[0].shots[1]"]
    assert demo.raw["project"]["title"] == "The Lighthouse Keeper"


def test_presets_include_shipped_and_manifest_ones() -> None:
    manifest = load_manifest(EXAMPLES / "everything")
    assert "noir" in manifest.presets["style"] and "ink" in manifest.presets["style"]
    assert manifest.presets["quality"]["standard"].template == "{{ prompt }}, clean detailed illustration"
    assert manifest.presets["lighting"]["lantern"].negative == "harsh daylight"


def test_everything_example_model() -> None:
    m = load_manifest(EXAMPLES / "everything")
    assert m.files == ("storybuild.yaml", "characters.yaml")
    assert m.project.title == "Ada and the CLOCKWORK Market"
    assert m.characters["ada"].mouths == "ada_mouths" and m.characters["bo"].voice.workflow == "tts"
    shots = {shot.id: shot for _, shot in m.shots()}
    keyframe = shots["workshop-keyframe"]
    assert keyframe.picture.params["controlnet"]["strength"] == 0.8 and (keyframe.takes, keyframe.take) == (3, 2)
    assert shots["workshop-animated"].lipsync == "comfyui"
    assert shots["workshop-animated"].lipsync_workflow == "lipsync"
    assert shots["market-ada"].dialogue[1].text == "It is open every night, Ada."
    assert m.workflows["keyframe"].bindings[0].node == "Positive"
    assert m.steps[0].argv[0] == "python" and m.steps[0].env == {"GRADE": "warm"}
    assert m.backends.settings["comfyui"]["servers"][0]["url"] == "http://127.0.0.1:8188"
    assert m.backends.retry.max_attempts == 3 and m.backends.limits == {"espeak": 4, "comfyui": 2}
    assert [e.id for e in m.exports] == ["web", "social", "square", "master"]


def test_includes_merge_in_order_and_keep_their_locations() -> None:
    m = load_manifest(EXAMPLES / "split")
    assert m.files == ("storybuild.yaml", "characters.yaml", "scenes/01-corridor.yaml", "scenes/02-ward.yaml")
    assert [s.id for s in m.scenes] == ["corridor", "ward"]
    assert m.scenes[1].path == "scenes[1]" and m.scenes[1].loc.file.endswith("scenes/02-ward.yaml")
    assert m.locs["characters.nell.voice"].file.endswith("characters.yaml")
    assert m.scenes[0].shots[0].prompt.startswith("a night-shift nurse with a silver watch walking")


def test_include_errors(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "storybuild.yaml": """\
            version: 1
            include: [a.yaml, a.yaml, scenes/*.yaml, ../x.yaml]
            project: {title: x}
            characters:
              mara: {name: Mara}
            """,
        "a.yaml": "version: 1\ncharacters:\n  mara: {name: Other}\n",
    })
    found = messages(root)
    assert any("duplicate character id 'mara' (first defined at" in m and "storybuild.yaml" in m for m in found)
    assert any("'a.yaml' is included twice" in m for m in found)
    assert any("include pattern 'scenes/*.yaml' matches no files" in m for m in found)
    assert any("include: path '../x.yaml' escapes the project folder" in m for m in found)


def test_included_files_are_checked_against_the_schema_on_their_own(tmp_path: Path) -> None:
    root = write(tmp_path, {"storybuild.yaml": "version: 1\ninclude: [c.yaml]\nproject: {title: x}\n",
                            "c.yaml": "version: 1\ncharacters:\n  mara: {nmae: Mara}\n"})
    assert messages(root) == [f"error {tmp_path / 'c.yaml'}:3:10: unknown key 'nmae' in characters.mara"]


def test_every_kind_of_problem_is_reported_together(tmp_path: Path) -> None:
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: x, fps: 0}
        characters:
          mara: {name: Mara}
        scenes:
          - id: s
            shots:
              - id: a
                prompt: "{{ scene.nope }}"
                cast: [{ref: mara}]
                dialogue: [{character: mra, text: Hi}]
        """})
    found = messages(root)
    assert [m.split(": ", 1)[1] for m in found] == [
        "project.fps must be at least 1, found 0",
        "undefined key 'nope' in template",
        "unknown character 'mra'",
    ]


def test_templates_see_rendered_text_and_cycles_are_errors(tmp_path: Path) -> None:
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: "{{ characters.a.name }}'s film"}
        characters:
          a: {name: "Ann {{ characters.b.name }}"}
          b: {name: Bell}
          c: {description: "{{ characters.d.description }}"}
          d: {description: "{{ characters.c.description }}"}
        """})
    manifest, diags = check_manifest(root)
    assert [d.message for d in diags] == ["template refers to itself: characters.c.description → "
                                          "characters.d.description → characters.c.description"]
    root.write_text(root.read_text().replace("c: {", "c: {name: C, x: ").split("  c:")[0])
    assert load_manifest(root).project.title == "Ann Bell's film"


def test_missing_files_and_check_files_false(tmp_path: Path) -> None:
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: x}
        assets:
          boat: {path: models/boat.glb, kind: model}
          escape: {path: ../boat.glb, kind: model}
        """})
    assert len(messages(root)) == 2
    assert messages(root, check_files=False) == [f"error {root}:5:18: path '../boat.glb' escapes the project folder"]


def test_symlinks_inside_the_project_are_fine(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "boat.glb").write_bytes(b"glTF")
    os.symlink("real", tmp_path / "linked")
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: x}
        assets:
          boat: {path: linked/boat.glb, kind: model}
        """})
    assert load_manifest(root).assets["boat"].path == "linked/boat.glb"


def test_optional_model_formats_warn_without_their_importer(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    (tmp_path / "set.usdz").write_bytes(b"PK")
    (tmp_path / "set.usda").write_text("#usda 1.0\n")
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: x}
        assets:
          stage: {path: set.usda, kind: model}
        """})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    manifest = load_manifest(root)
    (warning,) = manifest.warnings
    assert warning.severity is Severity.WARNING and "optional importer ('pxr' is not installed)" in warning.message
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert load_manifest(root).warnings == ()
    # fbx is read through either assimp binding: one of them is enough.
    (tmp_path / "boat.fbx").write_bytes(b"Kaydara FBX Binary  \x00")
    (tmp_path / "storybuild.yaml").write_text((tmp_path / "storybuild.yaml").read_text().replace(
        "stage: {path: set.usda, kind: model}", "stage: {path: boat.fbx, kind: model}"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    (warning,) = load_manifest(root).warnings
    assert "('pyassimp' or 'impasse' is not installed)" in warning.message and "libassimp" in warning.hint
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "impasse" else None)
    assert load_manifest(root).warnings == ()


def test_off_screen_speakers_are_warnings_kept_on_the_manifest() -> None:
    manifest = load_manifest(EXAMPLES / "warnings" / "offscreen-voice")
    (warning,) = manifest.warnings
    assert warning.code == "off-screen" and warning.loc.line == 14


def test_step_inputs_may_come_from_other_steps_or_the_build(tmp_path: Path) -> None:
    (tmp_path / "make.py").write_text("")
    root = write(tmp_path, {"storybuild.yaml": """\
        version: 1
        project: {title: x}
        steps:
          - {id: a, argv: [python, make.py], inputs: [make.py, build/film.mp4], outputs: [out/a.txt]}
          - {id: b, argv: [python, make.py], inputs: [out/a.txt], outputs: [out/b.txt]}
        """})
    steps = load_manifest(root).steps
    assert steps[1].inputs == ("out/a.txt",) and steps[0].path == "steps[0]"


def test_missing_manifest_and_directories(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert caught.value.diagnostics[0].message == f"no manifest at {tmp_path / 'storybuild.yaml'}"
    assert load_manifest(EXAMPLES / "minimal").project.title == "Hello"


def test_root_manifest_needs_a_project(tmp_path: Path) -> None:
    root = write(tmp_path, {"storybuild.yaml": "version: 1\nscenes: []\n"})
    assert messages(root) == [f"error {root}:1:1: the root manifest needs a `project:` section"]


def test_the_complete_example_in_the_docs_is_valid(tmp_path: Path) -> None:
    import shutil

    docs = (REPO / "docs" / "manifest.md").read_text()
    example = docs.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    project = Path(shutil.copytree(EXAMPLES / "everything", tmp_path / "film"))
    (project / "storybuild.yaml").write_text(example)
    manifest = load_manifest(project)
    assert [w.code for w in manifest.warnings] == ["off-screen"]
    assert manifest.project.title == "Ada and the CLOCKWORK Market"
