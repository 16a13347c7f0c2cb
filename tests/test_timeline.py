"""Line timing on a shot: starts, ends, fitted and explicit durations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storybuild.backends.embedded.shottiming import MIN_SHOT_DURATION, LineSpan, ShotTiming, place_lines, shot_timing


def test_lines_follow_each_other_with_their_offsets():
    lines = place_lines([1.5, 2.0, 0.5], [0.25, 0.5, 0.0])
    assert lines == (LineSpan(0, 0.25, 1.75), LineSpan(1, 2.25, 4.25), LineSpan(2, 4.25, 4.75))
    assert lines[1].duration == 2.0


def test_a_fitted_shot_lasts_until_the_last_line_plus_padding():
    timing = shot_timing([1.5, 2.0], [0.0, 0.5], duration=None, padding=0.5)
    assert timing.duration == pytest.approx(4.5)
    assert timing.speech_end == pytest.approx(4.0)
    assert timing.overrun == 0.0


def test_a_fitted_shot_lasts_at_least_a_second():
    assert shot_timing([0.3], [0.0], None, 0.2).duration == MIN_SHOT_DURATION
    assert shot_timing([], [], None, 0.5) == ShotTiming(MIN_SHOT_DURATION, ())


def test_an_explicit_duration_wins_and_reports_overrun():
    timing = shot_timing([2.0, 2.0], [0.0, 0.5], duration=3.0, padding=0.5)
    assert timing.duration == 3.0
    assert timing.lines[1] == LineSpan(1, 2.5, 4.5)  # kept whole: the shot cuts it
    assert timing.overrun == pytest.approx(1.5)
    assert shot_timing([0.2], [0.0], duration=0.5).duration == 0.5  # no 1 s minimum when asked for


def test_a_negative_offset_overlaps_but_never_starts_before_zero():
    lines = place_lines([1.0, 1.0, 1.0], [-0.5, -0.25, 0.0])
    assert lines == (LineSpan(0, 0.0, 1.0), LineSpan(1, 0.75, 1.75), LineSpan(2, 1.75, 2.75))


@pytest.mark.parametrize("call, message", [
    (lambda: place_lines([1.0], []), "1 line durations but 0 offsets"),
    (lambda: place_lines([-1.0], [0.0]), "line 0 duration must be ≥ 0"),
    (lambda: place_lines([float("nan")], [0.0]), "finite"),
    (lambda: shot_timing([1.0], [0.0], duration=0.0), "shot duration must be > 0"),
    (lambda: shot_timing([1.0], [0.0], None, padding=-1), "padding must be ≥ 0"),
])
def test_invalid_values_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@given(st.lists(st.tuples(st.floats(0, 30), st.floats(0, 5)), max_size=12), st.floats(0, 3))
def test_fitted_shots_hold_all_their_lines_in_order(pairs, padding):
    durations = [d for d, _ in pairs]
    offsets = [o for _, o in pairs]
    timing = shot_timing(durations, offsets, None, padding)
    assert timing.duration >= MIN_SHOT_DURATION
    assert timing.overrun == 0.0
    assert [line.index for line in timing.lines] == list(range(len(pairs)))
    previous_end = 0.0
    for line, duration in zip(timing.lines, durations):
        assert line.start >= previous_end
        assert line.duration == pytest.approx(duration)
        previous_end = line.end
    assert timing.duration >= previous_end + padding - 1e-9
