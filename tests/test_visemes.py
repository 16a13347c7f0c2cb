"""Visemes: phoneme timings → Rhubarb mouth cues, Rhubarb files in and out, mouth_at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import rhubarb
from storybuild.backends.embedded.rhubarb import MouthCue
from storybuild.backends.embedded.viseme_rules import SHAPES, phones_for
from storybuild.backends.espeak.backend import EspeakBackend
from storybuild.backends.embedded.visemes import (
    MIN_CUE_CS, cues_from_phonemes, enforce_min_length, load_cues, mouth_at, run_visemes,
)
from storybuild.errors import BackendError

GOLDEN = Path(__file__).parent / "golden"


def visemes(tmp_path: Path, inputs: dict[str, Path], extended: bool = True) -> str:
    ctx = ActionContext("visemes/s1/0", "visemes", {"extended": extended}, inputs, tmp_path, tmp_path)
    out = run_visemes(ctx)
    assert set(out) == {"visemes.json"}
    return out["visemes.json"].read_text(encoding="utf-8")


def assert_contiguous(doc: dict) -> None:
    cues = doc["mouthCues"]
    assert cues[0]["start"] == 0
    assert cues[-1]["end"] == doc["metadata"]["duration"]
    for a, b in zip(cues, cues[1:]):
        assert a["end"] == b["start"] and a["value"] != b["value"]
    assert all(c["value"] in SHAPES for c in cues)


def test_golden_mama_made_pie(tmp_path):
    """Timings espeak-ng gave for "Mama made pie." → the cues we pinned after checking them:
    m a: m a# m eI d p aI → A D A C A C B A D B (lips closed on every m and p, wide
    open on the stressed a: and aI, which closes to B as the diphthong ends)."""
    text = visemes(tmp_path, {"timings": GOLDEN / "timings_mama_made_pie.json"})
    assert text == (GOLDEN / "visemes_mama_made_pie.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    assert "".join(c["value"] for c in doc["mouthCues"]) == "ADACACBADB"
    assert doc["metadata"] == {"soundFile": "line.wav", "duration": 0.93}
    assert_contiguous(doc)


def test_fresh_speech_gives_the_golden_cues(tmp_path):
    """End to end through espeak-ng; if this fails but the golden test passes, espeak changed."""
    out = EspeakBackend().run(ActionContext("speech/s1/0", "speech", {
        "text": "Mama made pie.", "voice": {"name": "en-us", "rate": 165, "pitch": 50, "volume": 1.0},
        "sample_rate": 48000}, {}, tmp_path, tmp_path))
    assert visemes(tmp_path, {"timings": out["timings.json"]}) == (GOLDEN / "visemes_mama_made_pie.json").read_text()


def test_closed_lips_on_bilabials_and_teeth_on_lip_for_f():
    phonemes = [
        {"start": 0.10, "end": 0.20, "phoneme": "f"},
        {"start": 0.20, "end": 0.45, "phoneme": "A:"},
        {"start": 0.45, "end": 0.55, "phoneme": "b"},
        {"start": 0.55, "end": 0.70, "phoneme": "u:"},
        {"start": 0.70, "end": 0.95, "phoneme": "l"},  # a long l shows the tongue
    ]
    cues = cues_from_phonemes(phonemes, 1.2)
    assert [c.value for c in cues] == ["X", "G", "D", "A", "F", "H", "X"]
    assert cues[0] == MouthCue(0.0, 0.1, "X") and cues[-1] == MouthCue(0.95, 1.2, "X")
    assert mouth_at(cues, 0.5) == "A"


def test_pauses_hold_relax_or_rest():
    def values(gap: float) -> str:
        phonemes = [{"start": 0.0, "end": 0.3, "phoneme": "A:"},
                    {"start": 0.3 + gap, "end": 0.6 + gap, "phoneme": "A:"}]
        return "".join(c.value for c in cues_from_phonemes(phonemes, 0.6 + gap))

    assert values(0.08) == "D"  # a very short pause holds the shape
    assert values(0.20) == "DCD"  # a short one relaxes it
    assert values(0.60) == "DXD"  # a long one rests


def test_h_takes_the_next_vowels_shape():
    phonemes = [{"start": 0.0, "end": 0.1, "phoneme": "h"}, {"start": 0.1, "end": 0.4, "phoneme": "u:"}]
    assert [c.value for c in cues_from_phonemes(phonemes, 0.4)] == ["F"]


def test_basic_shapes_only_when_not_extended(tmp_path):
    text = visemes(tmp_path, {"timings": GOLDEN / "timings_mama_made_pie.json"}, extended=False)
    doc = json.loads(text)
    assert {c["value"] for c in doc["mouthCues"]} <= set("ABCDEF")
    phonemes = [{"start": 0.1, "end": 0.3, "phoneme": "v"}, {"start": 0.3, "end": 0.6, "phoneme": "l"}]
    assert [c.value for c in cues_from_phonemes(phonemes, 0.8, extended=False)] == ["A", "C", "A"]


def test_short_cues_borrow_time_and_none_is_too_short():
    phonemes = [{"start": 0.00, "end": 0.30, "phoneme": "A:"},
                {"start": 0.30, "end": 0.32, "phoneme": "p"},  # 2 cs closure
                {"start": 0.32, "end": 0.60, "phoneme": "A:"}]
    cues = cues_from_phonemes(phonemes, 0.6)
    assert [(c.start, c.end, c.value) for c in cues] == [(0.0, 0.27, "D"), (0.27, 0.32, "A"), (0.32, 0.6, "D")]


def test_unknown_mnemonics_fall_back_by_their_first_letter():
    assert phones_for("y:") == ("UW",)  # French/German rounded u
    assert phones_for("R2") == ("R",)
    assert phones_for("~~") == ("Schwa",)


spans_strategy = st.lists(st.tuples(st.integers(1, 30), st.sampled_from(SHAPES)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(spans_strategy)
def test_min_length_keeps_cues_contiguous_and_long_enough(pieces):
    spans, t = [], 0
    for length, value in pieces:
        spans.append((t, t + length, value))
        t += length
    spans = rhubarb.normalise(spans, t)
    out = enforce_min_length(spans)
    assert out[0][0] == 0 and out[-1][1] == t
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(out, out[1:]))
    assert len(out) == 1 or all(e - s >= MIN_CUE_CS for s, e, _ in out)
    assert enforce_min_length(out) == out


# ---------------------------------------------------------------- Rhubarb files

RHUBARB = """{
  "metadata": {
    "soundFile": "/home/ann/voice/line 1.wav",
    "duration": 1.50
  },
  "mouthCues": [
    { "start": 0.00, "end": 0.10, "value": "X" },
    { "start": 0.10, "end": 0.30, "value": "B" },
    { "start": 0.30, "end": 0.45, "value": "B" },
    { "start": 0.50, "end": 0.90, "value": "G" },
    { "start": 0.90, "end": 0.90, "value": "C" },
    { "start": 0.90, "end": 1.20, "value": "H" }
  ]
}
"""


def test_rhubarb_file_round_trip(tmp_path):
    src = tmp_path / "line1.json"
    src.write_text(RHUBARB)
    text = visemes(tmp_path, {"rhubarb": src})
    doc = json.loads(text)
    assert doc["metadata"] == {"soundFile": "line.wav", "duration": 1.5}
    assert [(c["start"], c["end"], c["value"]) for c in doc["mouthCues"]] == [
        (0.0, 0.1, "X"), (0.1, 0.45, "B"), (0.45, 0.5, "X"), (0.5, 0.9, "G"), (0.9, 1.2, "H"), (1.2, 1.5, "X")]
    assert_contiguous(doc)
    assert text.splitlines()[6] == '    { "start": 0.00, "end": 0.10, "value": "X" },'  # Rhubarb's own layout
    # our output is itself a valid Rhubarb file, and reading it back changes nothing
    again = tmp_path / "again"
    again.mkdir()
    (again / "in.json").write_text(text)
    assert visemes(again, {"rhubarb": again / "in.json"}) == text
    assert load_cues(tmp_path / "visemes.json")[3] == MouthCue(0.5, 0.9, "G")


def test_rhubarb_file_without_extended_shapes(tmp_path):
    src = tmp_path / "line1.json"
    src.write_text(RHUBARB)
    doc = json.loads(visemes(tmp_path, {"rhubarb": src}, extended=False))
    assert "".join(c["value"] for c in doc["mouthCues"]) == "ABACA"  # X→A, G→A, H→C, merged


@pytest.mark.parametrize("content, message", [
    ('{"mouthCues": [', "not valid JSON"),
    ("0.00\tX\n0.12\tB\n", "TSV output"),
    ('<?xml version="1.0"?><rhubarbResult/>', "XML"),
    ("[1, 2]", 'JSON object with "mouthCues"'),
    ('{"metadata": {}}', 'missing the "mouthCues" list'),
    ('{"mouthCues": [{"start": 0, "end": 1}]}', "mouthCues[0] has no value"),
    ('{"mouthCues": [{"start": 0, "end": 1, "value": "Q"}]}', "mouthCues[0].value 'Q' is not a mouth shape"),
    ('{"mouthCues": [{"start": -1, "end": 1, "value": "A"}]}', "mouthCues[0].start must be a number"),
    ('{"mouthCues": [{"start": 0.5, "end": 0.2, "value": "A"}]}', "ends (0.20) before it starts (0.50)"),
    ('{"mouthCues": [{"start": 0, "end": 0.5, "value": "A"}, {"start": 0.3, "end": 0.6, "value": "B"}]}',
     "mouthCues[1] starts at 0.30, before mouthCues[0] ends (0.50)"),
    ('{"metadata": {"duration": 0.4}, "mouthCues": [{"start": 0, "end": 0.5, "value": "A"}]}',
     "past metadata.duration 0.40"),
])
def test_malformed_rhubarb_files_are_clear_errors(tmp_path, content, message):
    src = tmp_path / "lipsync.json"
    src.write_text(content)
    with pytest.raises(BackendError) as info:
        visemes(tmp_path, {"rhubarb": src})
    assert message in info.value.message
    assert info.value.loc is not None and info.value.loc.file == str(src)


def test_json_errors_point_at_the_line(tmp_path):
    src = tmp_path / "lipsync.json"
    src.write_text('{\n  "mouthCues": [\n    { "start": 0.00, "end": 0.1 "value": "X" }\n  ]\n}\n')
    with pytest.raises(BackendError) as info:
        visemes(tmp_path, {"rhubarb": src})
    assert (info.value.loc.line, info.value.loc.col) == (3, 33)
    assert "--exportFormat json" in info.value.hint


def test_an_empty_animation_is_one_zero_length_rest(tmp_path):
    src = tmp_path / "empty.json"
    src.write_text('{"mouthCues": []}')
    doc = json.loads(visemes(tmp_path, {"rhubarb": src}))
    assert doc["mouthCues"] == [{"start": 0, "end": 0, "value": "X"}]


def test_missing_input_and_bad_params(tmp_path):
    with pytest.raises(BackendError, match="'timings' or 'rhubarb'"):
        visemes(tmp_path, {})
    with pytest.raises(BackendError, match="'extended' must be true or false"):
        run_visemes(ActionContext("v", "visemes", {"extended": "yes"}, {"timings": GOLDEN / "timings_mama_made_pie.json"},
                                  tmp_path, tmp_path))
    bad = tmp_path / "timings.json"
    bad.write_text('{"duration": 1.0}')
    with pytest.raises(BackendError, match="not a speech timings.json"):
        visemes(tmp_path, {"timings": bad})


# ---------------------------------------------------------------- mouth_at


def test_mouth_at_on_cues_and_on_json_dicts():
    cues = (MouthCue(0.0, 0.1, "X"), MouthCue(0.1, 0.25, "A"), MouthCue(0.25, 0.5, "D"))
    dicts = [{"start": c.start, "end": c.end, "value": c.value} for c in cues]
    for seq in (cues, dicts):
        assert mouth_at(seq, -0.1) == "X"
        assert mouth_at(seq, 0.0) == "X"
        assert mouth_at(seq, 0.1) == "A"  # a cue starts at its start…
        assert mouth_at(seq, 0.2499) == "A"
        assert mouth_at(seq, 0.25) == "D"  # …and ends before its end
        assert mouth_at(seq, 0.5) == "X"  # after the line: at rest
    assert mouth_at([], 0.3) == "X"
