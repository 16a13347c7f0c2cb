"""SRT and WebVTT from the cut: golden files, timestamps, wrapping, escaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storybuild.backends.embedded import subtitles

GOLDEN = Path(__file__).parent / "golden"


def _lines() -> list[dict]:
    return json.loads((GOLDEN / "cut_lines.json").read_text(encoding="utf-8"))


def test_srt_matches_golden():
    assert subtitles.srt(_lines()) == (GOLDEN / "subtitles.srt").read_text(encoding="utf-8")


def test_vtt_matches_golden():
    assert subtitles.vtt(_lines()) == (GOLDEN / "subtitles.vtt").read_text(encoding="utf-8")


@pytest.mark.parametrize("seconds,srt,vtt", [
    (0.0, "00:00:00,000", "00:00:00.000"),
    (1.2345, "00:00:01,234", "00:00:01.234"),
    (59.9996, "00:01:00,000", "00:01:00.000"),
    (3723.5, "01:02:03,500", "01:02:03.500"),
    (-0.2, "00:00:00,000", "00:00:00.000"),
])
def test_timestamps(seconds, srt, vtt):
    assert subtitles.timestamp(seconds, ",") == srt
    assert subtitles.timestamp(seconds, ".") == vtt


def test_wrap_is_balanced_and_within_width():
    text = "No. The ferry stopped running the winter your father left, and nobody has tied up here."
    lines = subtitles.wrap(text)
    assert len(lines) == 3 and all(len(line) <= 42 for line in lines)
    assert max(map(len, lines)) - min(map(len, lines)) < 12
    assert subtitles.wrap("Short.") == ["Short."]
    assert subtitles.wrap("x" * 50 + " y") == ["x" * 50, "y"]  # an over-long word keeps its own line


def test_long_lines_become_consecutive_cues_that_cover_the_line():
    text = " ".join(["word"] * 60)
    cues = subtitles.cues([{"text": text, "start": 10.0, "end": 20.0, "character": "a"}])
    assert len(cues) > 1 and cues[0].start == 10.0 and cues[-1].end == 20.0
    assert all(a.end == b.start for a, b in zip(cues, cues[1:]))
    assert all(len(subtitles.wrap(c.text)) <= subtitles.MAX_LINES for c in cues)


def test_escaping_keeps_documents_well_formed():
    lines = [{"text": "a --> b\n\nc <i>d</i> & e\x07", "start": 0.0, "end": 1.0, "character": "x>y"}]
    srt = subtitles.srt(lines)
    assert srt.count("-->") == 1 and "\n\n" not in srt.strip() and "\x07" not in srt
    vtt = subtitles.vtt(lines)
    assert "<v xy>a --&gt; b c &lt;i&gt;d&lt;/i&gt; &amp; e</v>" in vtt
