"""The film's expansion into actions: ids, dependencies, resolved params, origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from storybuild.hashing import stable_seed
from storybuild.manifest.load import load_manifest
from storybuild.model import ActionInput, Quality
from storybuild.planning.film import film_actions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_manifest(ROOT / "storybuild.yaml")


@pytest.fixture(scope="module")
def actions(demo):
    return {a.id: a for a in film_actions(demo)}


def test_every_line_gets_speech_and_visemes(demo, actions):
    for scene, shot in demo.shots():
        for index, _ in enumerate(shot.dialogue):
            assert actions[f"speech/{shot.id}/{index}"].backend == "espeak"
            visemes = actions[f"visemes/{shot.id}/{index}"]
            assert visemes.inputs[0].source == ActionInput(f"speech/{shot.id}/{index}", "timings.json")


def test_graph_shape_shots_scenes_film_exports(demo, actions):
    kinds = sorted({a.kind for a in actions.values()})
    assert kinds == ["export", "film", "layout", "mix", "scene", "shot", "sound", "speech", "visemes"]
    assert len([a for a in actions.values() if a.kind == "shot"]) == sum(len(s.shots) for s in demo.scenes)
    assert len([a for a in actions.values() if a.kind == "layout"]) == sum(len(s.shots) for s in demo.scenes)
    film, sound = actions["film"], actions["sound"]
    assert {f"scene/{s.id}" for s in demo.scenes} | {"sound"} <= film.deps()
    assert {f"mix/{s.id}" for s in demo.scenes} <= sound.deps()
    # The film's sound needs no pictures: a change to pictures alone leaves it cached.
    assert {d.split("/")[0] for d in sound.deps()} == {"mix", "layout"}
    assert actions["export/vertical"].deps() >= {"film"}
    # every dependency names an action that exists: no missing producers
    for action in actions.values():
        assert action.deps() <= actions.keys(), action.id


def test_shot_params_are_resolved(demo, actions):
    shot = actions["shot/harbour-theo"]
    params = shot.params
    assert (params["width"], params["height"], params["fps"]) == (640, 360, 24)
    assert params["duration"] is None  # fits its dialogue
    # a look-at on a character names it; the renderer aims at its real face
    assert params["camera"]["look_at"]["character"] == "theo"
    assert params["lines"][0]["timings"] == "timings:0"
    input_names = {i.name for i in shot.inputs}
    assert {"timings:0", "visemes:0", "model:theo_model", "model:pier"} <= input_names
    assert shot.origins["camera"] == "scenes[0].shots[1].camera"


def test_sound_never_waits_for_pictures(demo, actions):
    # The mix reads each shot's layout, which needs the speech timings but no frames.
    layout = actions["layout/lantern-both"]
    assert layout.outputs == ("shot.json",)
    assert {d.split("/")[0] for d in layout.deps()} == {"speech"}
    assert {i.name for i in layout.inputs if i.name.startswith("timings:")} == {"timings:0", "timings:1", "timings:2"}
    for scene in demo.scenes:
        mix = actions[f"mix/{scene.id}"]
        assert not any(d.startswith("shot/") for d in mix.deps()), mix.id
        assert {f"layout/{shot.id}" for shot in scene.shots} <= mix.deps()
    assert {p for p in actions["layout/lantern-both"].params if p != "generated"} == set(actions["shot/lantern-both"].params)


def test_emotion_shifts_the_voice(demo, actions):
    neutral = actions["speech/harbour-mara/1"].params["voice"]  # theo, no emotion
    excited = actions["speech/harbour-theo/0"].params["voice"]  # theo, excited
    assert excited["rate"] > neutral["rate"] and excited["pitch"] > neutral["pitch"]
    assert actions["speech/harbour-theo/0"].origins["voice"] == "characters.theo.voice"


def test_preview_quality_is_smaller_and_separate(demo):
    preview = {a.id: a for a in film_actions(demo, Quality.PREVIEW)}
    shot = preview["preview/shot/harbour-wide"]
    assert shot.params["width"] < 640 and shot.params["width"] % 2 == 0
    assert shot.params["fps"] <= demo.project.preview.fps
    assert all(a.id.startswith("preview/") for a in preview.values())
    assert all(path.startswith("preview/") for a in preview.values() for path in a.view.values())


def test_generative_shots_fall_back_to_the_embedded_animatic_without_servers(demo):
    from dataclasses import replace

    from storybuild.model import Picture, PictureSource

    scene = demo.scenes[0]
    shot = replace(scene.shots[0], picture=Picture(source=PictureSource.IMAGE_TO_VIDEO, backend="auto"))
    manifest = replace(demo, scenes=(replace(scene, shots=(shot, *scene.shots[1:])), *demo.scenes[1:]))
    actions = {a.id: a for a in film_actions(manifest)}
    assert "clip/harbour-wide" not in actions
    assert actions["shot/harbour-wide"].backend == "embedded"


def test_stable_seed_is_stable():
    assert stable_seed(1207, "harbour-wide", 1) == stable_seed(1207, "harbour-wide", 1)
    assert stable_seed(1207, "harbour-wide", 1) != stable_seed(1207, "harbour-wide", 2)
