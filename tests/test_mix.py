"""mix/<scene>: stems placed on the scene timeline, ducking, effects at their cue, exact sums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedded_media import FPS, RATE, context, make_shot, noise, read, tone
from storybuild.backends.embedded.mix import run_mix
from storybuild.errors import BackendError


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture()
def scene(tmp_path: Path):
    # Two shots of 1 s and 1.5 s; one line in the second shot from 0.5 s to 1.0 s (scene 1.5–2.0 s).
    a = make_shot(tmp_path / "shots", "a", FPS)
    b = make_shot(tmp_path / "shots", "b", FPS + FPS // 2,
                  lines=[{"index": 0, "character": "mara", "text": "Hello.", "start": 0.5, "end": 1.0, "pan": -1.0}])
    inputs = {
        "shot:a": a["json"], "shot:b": b["json"],
        "line:b/0": tone(tmp_path / "line.wav", 0.5, 300.0, 0.5),
        "audio:music": tone(tmp_path / "music.wav", 4.0, 220.0, 0.2, channels=2),
        "audio:amb": noise(tmp_path / "amb.wav", 0.8, 0.05),
        "audio:knock": tone(tmp_path / "knock.wav", 0.1, 1000.0, 0.5),
    }
    params = {
        "sample_rate": RATE, "reverb": "none",
        "ambience": {"input": "audio:amb", "volume": 1.0, "fade_in": 0.0, "fade_out": 0.0, "start": 0.0},
        "music": {"input": "audio:music", "volume": 1.0, "duck": 0.25, "fade_in": 0.0, "fade_out": 0.0, "start": 0.0},
        "shots": [{"id": "a", "lines": [], "sfx": [{"input": "audio:knock", "at": 0.6, "volume": 1.0}]},
                  {"id": "b", "lines": [{"index": 0, "input": "line:b/0", "volume": 1.0}], "sfx": []}],
    }
    return tmp_path, params, inputs


def test_stems_sum_to_mix_and_have_the_scene_length(scene):
    tmp, params, inputs = scene
    out = run_mix(context(tmp, "mix/s", "mix", params, inputs))
    assert set(out) == {"dialogue.wav", "music.wav", "sfx.wav", "ambience.wav", "mix.wav"}
    stems = [read(out[f"{n}.wav"]) for n in ("dialogue", "music", "sfx", "ambience")]
    mix = read(out["mix.wav"])
    assert mix.shape == (int(2.5 * RATE), 2)
    assert all(s.shape == mix.shape for s in stems)
    assert np.max(np.abs(sum(stems) - mix)) < 1e-4
    # The ambience (0.8 s) loops under the whole scene.
    amb = stems[3]
    assert _rms(amb[int(2.2 * RATE):]) > 0.03


def test_dialogue_lands_at_its_line_and_pans_left(scene):
    tmp, params, inputs = scene
    dialogue = read(run_mix(context(tmp, "mix/s", "mix", params, inputs))["dialogue.wav"])
    before, during = dialogue[:int(1.45 * RATE)], dialogue[int(1.55 * RATE):int(1.95 * RATE)]
    assert _rms(before) == 0.0
    assert _rms(during[:, 0]) > 0.3 and _rms(during[:, 1]) < 1e-6


def test_music_ducks_under_dialogue(scene):
    tmp, params, inputs = scene
    music = read(run_mix(context(tmp, "mix/s", "mix", params, inputs))["music.wav"])
    free = _rms(music[int(0.5 * RATE):int(1.0 * RATE)])
    ducked = _rms(music[int(1.6 * RATE):int(1.9 * RATE)])
    assert ducked / free == pytest.approx(0.25, rel=0.02)
    recovered = _rms(music[int(2.46 * RATE):])  # after the 0.45 s release
    assert recovered / free == pytest.approx(1.0, rel=0.02)


def test_sfx_lands_at_its_cue_time(scene):
    tmp, params, inputs = scene
    sfx = read(run_mix(context(tmp, "mix/s", "mix", params, inputs))["sfx.wav"])
    loud = np.flatnonzero(np.abs(sfx[:, 0]) > 1e-3)
    assert loud[0] / RATE == pytest.approx(0.6, abs=0.002)
    assert loud[-1] / RATE == pytest.approx(0.7, abs=0.002)


def test_reverb_adds_a_tail_to_effects_but_not_to_beds(scene):
    tmp, params, inputs = scene
    dry = run_mix(context(tmp, "mix/dry", "mix", params, inputs))
    wet = run_mix(context(tmp, "mix/wet", "mix", {**params, "reverb": "hall"}, inputs))
    tail = slice(int(0.75 * RATE), int(1.2 * RATE))
    assert _rms(read(dry["sfx.wav"])[tail]) == 0.0
    assert _rms(read(wet["sfx.wav"])[tail]) > 1e-3
    assert np.array_equal(read(dry["ambience.wav"]), read(wet["ambience.wav"]))


def test_mix_is_deterministic(scene):
    tmp, params, inputs = scene
    one = run_mix(context(tmp, "mix/one", "mix", {**params, "reverb": "room"}, inputs))
    two = run_mix(context(tmp, "mix/two", "mix", {**params, "reverb": "room"}, inputs))
    assert all(Path(one[k]).read_bytes() == Path(two[k]).read_bytes() for k in one)


def test_unknown_line_and_missing_input_are_clear_errors(scene):
    tmp, params, inputs = scene
    bad = {**params, "shots": [params["shots"][0], {"id": "b", "lines": [{"index": 3, "input": "line:b/0"}]}]}
    with pytest.raises(BackendError, match="no line 3"):
        run_mix(context(tmp, "mix/bad", "mix", bad, inputs))
    with pytest.raises(BackendError, match="missing input 'audio:amb'"):
        run_mix(context(tmp, "mix/bad2", "mix", params, {k: v for k, v in inputs.items() if k != "audio:amb"}))
    with pytest.raises(BackendError, match="unknown reverb"):
        run_mix(context(tmp, "mix/bad3", "mix", {**params, "reverb": "cave"}, inputs))
