"""plan: pure decisions with reasons that name the changed input and where it was written."""

from __future__ import annotations

from storybuild.errors import SourceLoc
from storybuild.hashing import action_key
from storybuild.model import Action, ActionInput, FileInput, Input
from storybuild.planning.actiongraph import Static
from storybuild.planning.decision import Fresh, Previous, detail, plan

SPEECH = Action(id="speech/a/0", kind="speech", backend="espeak",
                params={"text": "Hello.", "voice": {"name": "en", "rate": 150}},
                inputs=(Input("lexicon", FileInput("assets/lexicon.txt")),), outputs=("line.wav",),
                loc=SourceLoc("storybuild.yaml", 30, 7), origins={"voice": "characters.mara.voice"})
SHOT = Action(id="shot/a", kind="shot", backend="embedded", params={"fps": 24},
              inputs=(Input("audio", ActionInput("speech/a/0", "line.wav")),), outputs=("shot.mp4",),
              loc=SourceLoc("storybuild.yaml", 28, 5))
ORDER = [SPEECH, SHOT]
LOCS = {"characters.mara.voice": SourceLoc("storybuild.yaml", 12, 5),
        "characters.mara.voice.rate": SourceLoc("storybuild.yaml", 14, 9)}
SOURCES = {"assets/lexicon.txt": "lex1"}


def statics(version="1", params=None):
    return {"speech/a/0": Static(f"s-{version}-{sorted((params or SPEECH.params).items())!r}", version, None),
            "shot/a": Static("s-shot", "1", None)}


def built(stat=None):
    """Cache and previous runs as after one complete build."""
    stat = stat or statics()
    cache, previous = {}, {}
    k1 = action_key(stat["speech/a/0"].digest, {"lexicon": "lex1"})
    cache[k1] = {"line.wav": "wav1"}
    previous["speech/a/0"] = Previous(k1, detail(SPEECH, stat["speech/a/0"], {"lexicon": "lex1"}))
    k2 = action_key(stat["shot/a"].digest, {"audio": "wav1"})
    cache[k2] = {"shot.mp4": "mp41"}
    previous["shot/a"] = Previous(k2, detail(SHOT, stat["shot/a"], {"audio": "wav1"}))
    return cache, previous


def lookup(cache):
    return lambda key, action: cache.get(key)


def reasons(result):
    return {s.action.id: [str(r) for r in s.reasons] for s in result.steps}


def test_everything_new_runs_and_downstream_keys_wait_for_upstream():
    result = plan(ORDER, statics(), SOURCES, lambda key, action: None, {})
    assert [s.action.id for s in result.steps] == ["speech/a/0", "shot/a"]
    assert result.steps[0].key is not None and result.steps[1].key is None
    assert reasons(result) == {"speech/a/0": ["new: never built (storybuild.yaml:30:7)"],
                               "shot/a": ["new: never built (storybuild.yaml:28:5)"]}


def test_nothing_changed_nothing_runs():
    cache, previous = built()
    result = plan(ORDER, statics(), SOURCES, lookup(cache), previous)
    assert result.steps == [] and result.fresh["shot/a"].outputs == {"shot.mp4": "mp41"}


def test_a_changed_param_is_named_down_to_the_leaf_with_its_location():
    cache, previous = built()
    params = {"text": "Hello.", "voice": {"name": "en", "rate": 170}}
    changed = Action(**{**SPEECH.__dict__, "params": params})
    result = plan([changed, SHOT], statics(params=params), SOURCES, lookup(cache), previous,
                  loc_of=lambda path: LOCS.get(path))
    assert reasons(result) == {"speech/a/0": ["input changed: characters.mara.voice.rate (storybuild.yaml:14:9)"],
                               "shot/a": ["upstream speech/a/0 runs first"]}


def test_a_param_without_origin_names_the_action():
    cache, previous = built()
    params = {"text": "Bye.", "voice": SPEECH.params["voice"]}
    changed = Action(**{**SPEECH.__dict__, "params": params})
    result = plan([changed, SHOT], statics(params=params), SOURCES, lookup(cache), previous)
    assert reasons(result)["speech/a/0"] == ["parameter changed: speech/a/0 params.text (storybuild.yaml:30:7)"]


def test_a_changed_source_file_and_backend_version():
    cache, previous = built()
    result = plan(ORDER, statics(), {"assets/lexicon.txt": "lex2"}, lookup(cache), previous)
    assert reasons(result)["speech/a/0"] == ["input changed: assets/lexicon.txt"]
    result = plan(ORDER, statics(version="2"), SOURCES, lookup(cache), previous)
    assert reasons(result)["speech/a/0"] == ["backend espeak version changed: 1 → 2"]


def test_forced_failed_and_missing_from_cache():
    cache, previous = built()
    result = plan(ORDER, statics(), SOURCES, lookup(cache), previous, force=["shot/a"])
    assert reasons(result) == {"shot/a": ["forced (--force)"]}
    result = plan(ORDER, statics(), SOURCES, lambda key, action: None, previous, failed={"speech/a/0": "boom\nmore"})
    assert reasons(result)["speech/a/0"] == ["failed last time: boom"]
    result = plan(ORDER, statics(), SOURCES, lambda key, action: None, previous)
    assert reasons(result)["speech/a/0"] == ["output missing from cache"]


def test_a_cached_result_is_used_even_for_a_key_not_built_last_time():
    cache, previous = built()
    result = plan(ORDER, statics(), SOURCES, lookup(cache), {})
    assert result.steps == [] and set(result.fresh) == {"speech/a/0", "shot/a"}


def test_a_result_missing_a_declared_output_is_not_fresh():
    cache, previous = built()
    for key in cache:
        cache[key] = {}
    assert len(plan(ORDER, statics(), SOURCES, lookup(cache), previous).steps) == 2


def test_known_actions_are_not_decided_again_but_feed_their_consumers():
    cache, previous = built()
    known = {"speech/a/0": Fresh(previous["speech/a/0"].key, {"line.wav": "wav1"})}
    result = plan([SHOT], statics(), SOURCES, lookup(cache), previous, known=known)
    assert result.steps == [] and set(result.fresh) == {"speech/a/0", "shot/a"}
    known = {"speech/a/0": Fresh("k-new", {"line.wav": "wav2"})}
    result = plan([SHOT], statics(), SOURCES, lookup(cache), previous, known=known)
    assert reasons(result) == {"shot/a": ["input changed: audio (from speech/a/0)"]}
