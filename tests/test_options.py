"""options: BuildOptions fills in Session.build's defaults once."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest

from storybuild.engine.options import BuildOptions
from storybuild.events import ignore
from storybuild.model import Quality


def test_defaults_are_filled_in_once():
    options = BuildOptions.of()
    assert options.jobs == (os.cpu_count() or 1) and options.quality == "full"
    assert options.on_event is ignore and isinstance(options.cancel_event, threading.Event)
    assert not (options.keep_going or options.force or options.dry_run or options.explain) and options.wait


def test_given_values_travel_as_given_and_a_quality_as_its_value():
    cancel, seen = threading.Event(), []
    options = BuildOptions.of(jobs=3, keep_going=True, quality=Quality.PREVIEW, on_event=seen.append,
                              cancel_event=cancel, wait=False)
    assert (options.jobs, options.keep_going, options.quality, options.wait) == (3, True, "preview", False)
    assert options.cancel_event is cancel and options.on_event == seen.append


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BuildOptions.of().jobs = 2  # type: ignore[misc]
