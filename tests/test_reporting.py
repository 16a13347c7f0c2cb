"""reporting: plain lines, JSON lines, the live display, summaries and explanations."""

from __future__ import annotations

import io
import json

from storybuild.cli.progress import JsonReporter, LiveReporter, PlainReporter, format_steps, format_summary
from storybuild.events import Event
from storybuild.model import Action
from storybuild.planning.decision import Reason, Step

EVENTS = [
    Event("plan", data={"total": 3, "cached": 5}),
    Event("started", "shot/a", "shot", {"attempt": 1}),
    Event("progress", "shot/a", "shot", {"fraction": 0.5, "message": "frame 12/24"}),
    Event("finished", "shot/a", "shot", {"seconds": 1.25, "attempts": 1}),
    Event("retry", "kf/b", "keyframe", {"attempt": 1, "delay": 0.5, "error": "HTTP 503\nbody"}),
    Event("failed", "kf/b", "keyframe", {"error": "HTTP 400: bad workflow\nhint: check it", "attempts": 2}),
    Event("skipped", "clip/b", "clip", {"because": "kf/b"}),
    Event("cached", "mix/s", "mix", {"cutoff": True}),
    Event("summary", data={"ran": 1, "cached": 1, "failed": 1, "skipped": 1, "up_to_date": 5,
                           "seconds": 2.5, "status": "failed"}),
]


def test_plain_lines_for_logs():
    out, err = io.StringIO(), io.StringIO()
    reporter = PlainReporter(out, err)
    for event in EVENTS:
        reporter(event)
    assert out.getvalue().splitlines() == [
        "[1/3] shot/a (1.25 s)",
        "[3/3] mix/s (cached)",
        "ran 1, cached 1, failed 1, skipped 1, up to date 5 in 2.50 s (failed)",
    ]
    assert err.getvalue().splitlines() == [
        "retrying kf/b in 0.50 s (attempt 1 failed: HTTP 503)",
        "FAILED kf/b after 2 attempts",
        "    HTTP 400: bad workflow",
        "    hint: check it",
    ]


def test_json_lines_carry_every_event():
    out = io.StringIO()
    reporter = JsonReporter(out)
    for event in EVENTS:
        reporter(event)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [e.type for e in EVENTS]
    assert lines[2] == {"event": "progress", "time": lines[2]["time"], "action": "shot/a", "kind": "shot",
                        "fraction": 0.5, "message": "frame 12/24"}


def test_the_live_display_runs_and_ends_with_the_summary():
    out = io.StringIO()
    reporter = LiveReporter(out)
    for event in EVENTS:
        reporter(event)
    reporter.close()
    text = out.getvalue()
    assert "FAILED kf/b" in text and text.rstrip().endswith("in 2.50 s (failed)")
    assert reporter.done == 3 and reporter.running == {}


def test_summaries_and_explanations():
    assert format_summary({"up_to_date": 2101, "seconds": 0.04}) == "nothing to do: 2101 actions up to date (0.04 s)"
    step = Step(Action(id="speech/a/0", kind="speech", backend="espeak", params={}),
                (Reason("param", "input changed: characters.mara.voice.rate"),), None)
    assert format_steps([step]) == "speech/a/0\n  - input changed: characters.mara.voice.rate\n"
    assert format_steps([]) == ""
