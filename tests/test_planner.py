"""planner: custom steps become actions; the graph refuses cycles and missing producers."""

from __future__ import annotations

import pytest

from engine_project import load_project, write_project
from storybuild.errors import ManifestError, SourceLoc
from storybuild.model import Action, ActionInput, FileInput, Input, Quality
from storybuild.planning import actiongraph as planner


def manifest(tmp_path, steps):
    write_project(tmp_path, steps)
    return load_project(str(tmp_path / "project.json"))


def test_steps_chain_through_declared_files(tmp_path):
    m = manifest(tmp_path, [
        {"id": "kf", "argv": ["cp", "p.txt", "kf.txt"], "inputs": ["p.txt"], "outputs": ["kf.txt"]},
        {"id": "clip", "argv": ["cp", "kf.txt", "clip.txt"], "inputs": ["kf.txt"], "outputs": ["clip.txt"],
         "env": {"LUT": "warm"}},
    ])
    kf, clip = planner.plan_actions(m, Quality.FULL)
    assert kf.inputs == (Input("p.txt", FileInput("p.txt")),)
    assert clip.inputs == (Input("kf.txt", ActionInput("step/kf", "kf.txt")),)
    assert clip.params == {"argv": ["cp", "kf.txt", "clip.txt"], "env": {"LUT": "warm"}, "outputs": ["clip.txt"]}
    assert clip.origins["argv"] == "steps[1].argv" and clip.loc == SourceLoc("project.json", 4, 5)
    graph = planner.build_graph([clip, kf])
    assert list(graph.edges) == [("step/kf", "step/clip")]
    assert [a.id for a in planner.topological([clip, kf])] == ["step/kf", "step/clip"]


def test_a_step_can_consume_what_the_film_shows_under_build(tmp_path):
    m = manifest(tmp_path, [{"id": "grade", "argv": ["cp", "build/film.mp4", "graded.mp4"],
                             "inputs": ["build/film.mp4"], "outputs": ["graded.mp4"]}])
    film = Action(id="film", kind="film", backend="embedded", params={}, outputs=("film.mp4",),
                  view={"film.mp4": "film.mp4"})
    (grade,) = planner.step_actions(m, [film])
    assert grade.inputs[0].source == ActionInput("film", "film.mp4")


def test_two_producers_of_one_file_are_an_error(tmp_path):
    m = manifest(tmp_path, [{"id": "a", "argv": ["true"], "outputs": ["x.txt"]},
                            {"id": "b", "argv": ["true"], "outputs": ["x.txt"]}])
    with pytest.raises(ManifestError, match="'x.txt', which 'step/a' also makes") as err:
        planner.step_actions(m)
    assert err.value.loc == SourceLoc("project.json", 4, 5)


def test_cycles_are_reported_at_every_action_in_them(tmp_path):
    m = manifest(tmp_path, [
        {"id": "a", "argv": ["true"], "inputs": ["b.txt"], "outputs": ["a.txt"]},
        {"id": "b", "argv": ["true"], "inputs": ["a.txt"], "outputs": ["b.txt"]},
    ])
    actions = planner.step_actions(m)
    with pytest.raises(ManifestError) as err:
        planner.topological(actions)
    messages = [d.message for d in err.value.diagnostics]
    assert "dependency cycle: step/a → step/b → step/a" in messages[0] or \
           "dependency cycle: step/b → step/a → step/b" in messages[0]
    assert {d.loc.line for d in err.value.diagnostics} == {3, 4}


def test_missing_producers_and_duplicate_ids_name_their_locations():
    loc = SourceLoc("storybuild.yaml", 9, 3)
    shot = Action(id="shot/a", kind="shot", backend="embedded", params={}, loc=loc,
                  inputs=(Input("audio", ActionInput("speech/a/0", "line.wav")),
                          Input("pic", ActionInput("kf/a", "x.png"))), outputs=("shot.mp4",))
    kf = Action(id="kf/a", kind="keyframe", backend="comfyui", params={}, outputs=("image.png",))
    with pytest.raises(ManifestError) as err:
        planner.build_graph([shot, kf, kf])
    messages = sorted(d.message for d in err.value.diagnostics)
    assert messages == [
        "shot/a: input 'audio' needs 'speech/a/0', which nothing produces",
        "shot/a: input 'pic' needs output 'x.png' of 'kf/a', which declares only image.png",
        "two actions are named 'kf/a'",
    ]
    assert loc in {d.loc for d in err.value.diagnostics}


def test_closure_and_statics(tmp_path):
    m = manifest(tmp_path, [
        {"id": "kf", "argv": ["cp", "p.txt", "kf.txt"], "inputs": ["p.txt"], "outputs": ["kf.txt"]},
        {"id": "clip", "argv": ["cp", "kf.txt", "clip.txt"], "inputs": ["kf.txt"], "outputs": ["clip.txt"]},
        {"id": "other", "argv": ["true"], "outputs": ["o.txt"]},
    ])
    actions = planner.plan_actions(m)
    by_id = {a.id: a for a in actions}
    assert planner.closure(["step/clip"], by_id) == {"step/kf", "step/clip"}
    order = planner.topological(actions)
    assert planner.dependents(["step/kf"], order) == {"step/kf", "step/clip"}
    assert planner.dependents(["step/other"], order) == {"step/other"}
    statics = planner.statics(m, actions)
    assert statics["step/kf"].version == "1" and statics["step/kf"].config is None
    assert len({s.digest for s in statics.values()}) == 3
    assert planner.backend_config(m, "command") == {}
