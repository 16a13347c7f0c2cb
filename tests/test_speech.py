"""The espeak backend: real synthesis through espeak-ng, timings, determinism, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import importlib.metadata

import pytest
import soundfile

from storybuild.backends.contract import ActionContext, get_backend
from storybuild.backends.shared import speech_audio
from storybuild.backends.shared import speech_timing
from storybuild.backends.espeak import backend as speech
from storybuild.backends.espeak.backend import EspeakBackend, call_worker, list_voices, voice_settings
from storybuild.errors import BackendError, Cancelled, TransientError

ROOT = Path(__file__).resolve().parents[1]

VOICE = {"name": "en-us", "rate": 165, "pitch": 50, "volume": 1.0}


def synth(tmp_path: Path, text: str = "Mama made pie.", sample_rate: int = 48000, **voice) -> tuple[Path, Path]:
    out = tmp_path / hashlib.sha1(repr((text, sample_rate, sorted(voice.items()))).encode()).hexdigest()[:12]
    out.mkdir()
    ctx = ActionContext("speech/s1/0", "speech",
                        {"text": text, "voice": {**VOICE, **voice}, "sample_rate": sample_rate}, {}, out, out)
    outputs = EspeakBackend().run(ctx)
    assert set(outputs) == {"line.wav", "timings.json"}
    return outputs["line.wav"], outputs["timings.json"]


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> tuple[Path, Path]:
    return synth(tmp_path_factory.mktemp("line"))


def read(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(str(path), dtype="float64")
    return samples, rate


def test_line_is_real_mono_pcm16_speech(line):
    wav, timings_path = line
    info = soundfile.info(str(wav))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (48000, 1, "PCM_16", "WAV")
    samples, rate = read(wav)
    assert 0.5 < len(samples) / rate < 2.0  # "Mama made pie." is about a second
    assert np.sqrt(np.mean(samples ** 2)) > 0.02  # speech, not silence
    assert np.max(np.abs(samples)) < 1.0  # no clipping at the default volume


def test_timings_match_the_audio(line):
    wav, timings_path = line
    samples, rate = read(wav)
    doc = json.loads(timings_path.read_text(encoding="utf-8"))
    assert doc["sample_rate"] == 48000
    assert doc["duration"] == pytest.approx(len(samples) / rate, abs=1e-6)
    assert [w["text"] for w in doc["words"]] == ["Mama", "made", "pie"]
    names = [p["phoneme"] for p in doc["phonemes"]]
    assert names[0] == "m" and "p" in names and "d" in names
    assert all(not n.startswith(("_", "'", ",")) for n in names)  # no pauses, no stress marks
    starts = [p["start"] for p in doc["phonemes"]]
    assert starts == sorted(starts)
    for item in doc["phonemes"] + doc["words"]:
        assert 0 <= item["start"] < item["end"] <= doc["duration"]
    # the last phoneme is heard until (nearly) the end: the tail was trimmed, not the speech
    assert doc["phonemes"][-1]["end"] > doc["duration"] - 0.05
    # each word spans its phonemes
    for w in doc["words"]:
        inside = [p for p in doc["phonemes"] if w["start"] <= p["start"] < w["end"]]
        assert inside and inside[0]["start"] == w["start"] and inside[-1]["end"] == w["end"]
    # sorted keys, so the file is byte-stable
    assert timings_path.read_text(encoding="utf-8") == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_the_audio_is_loud_where_the_words_are(line):
    wav, timings_path = line
    samples, rate = read(wav)
    doc = json.loads(timings_path.read_text(encoding="utf-8"))
    for w in doc["words"]:
        chunk = samples[int(w["start"] * rate):int(w["end"] * rate)]
        assert np.sqrt(np.mean(chunk ** 2)) > 0.01, w


def test_two_syntheses_are_byte_identical(tmp_path, line):
    wav, timings_path = line
    wav2, timings2 = synth(tmp_path)
    assert wav2.read_bytes() == wav.read_bytes()
    assert timings2.read_bytes() == timings_path.read_bytes()


def test_rate_changes_the_duration(tmp_path):
    text = "The quick brown fox jumps over the lazy dog."
    slow = json.loads(synth(tmp_path, text, rate=120)[1].read_text())["duration"]
    fast = json.loads(synth(tmp_path, text, rate=260)[1].read_text())["duration"]
    assert slow > 1.6 * fast


def _f0(samples: np.ndarray, rate: int) -> float:
    """Fundamental frequency of the loudest 60 ms, by autocorrelation (60..400 Hz)."""
    n = int(0.06 * rate)
    energy = np.convolve(samples ** 2, np.ones(n), "valid")
    i = int(np.argmax(energy))
    frame = samples[i:i + n] - samples[i:i + n].mean()
    ac = np.correlate(frame, frame, "full")[n - 1:]
    lo, hi = rate // 400, rate // 60
    return rate / (lo + int(np.argmax(ac[lo:hi])))


def test_pitch_changes_the_voice(tmp_path):
    low_wav, _ = synth(tmp_path, pitch=10)
    high_wav, _ = synth(tmp_path, pitch=90)
    assert low_wav.read_bytes() != high_wav.read_bytes()
    low, rate = read(low_wav)
    high, _ = read(high_wav)
    assert _f0(high, rate) > 1.3 * _f0(low, rate)


def test_volume_scales_the_level(tmp_path):
    loud, _ = read(synth(tmp_path, "Ah.", volume=1.0)[0])
    quiet, _ = read(synth(tmp_path, "Ah.", volume=0.4)[0])
    assert np.max(np.abs(quiet)) < 0.7 * np.max(np.abs(loud))


def test_sample_rate_is_honoured(tmp_path):
    wav, timings_path = synth(tmp_path, sample_rate=16000)
    samples, rate = read(wav)
    assert rate == 16000
    assert json.loads(timings_path.read_text())["duration"] == pytest.approx(len(samples) / 16000, abs=1e-6)


def test_words_map_back_to_the_text(tmp_path):
    _, timings_path = synth(tmp_path, "Hello, wörld! I have 42 well-known cats.")
    words = [w["text"] for w in json.loads(timings_path.read_text(encoding="utf-8"))["words"]]
    assert words == ["Hello", "wörld", "I", "have", "42", "well-known", "cats"]


def test_unknown_voice_names_the_way_to_find_voices(tmp_path):
    with pytest.raises(BackendError) as info:
        synth(tmp_path, name="en-uss")
    err = info.value
    assert "unknown espeak voice 'en-uss'" in err.message
    assert "'en-us'" in err.hint and "--list-voices" in err.hint


def test_list_voices_includes_english():
    voices = list_voices()
    assert len(voices) > 50
    us = [v for v in voices if "en-us" in v.languages]
    assert us and us[0].identifier == "gmw/en-US"


def test_bad_params_are_clear_errors(tmp_path):
    with pytest.raises(BackendError, match="needs some text"):
        synth(tmp_path, "   ")
    with pytest.raises(BackendError, match="rate must be a number"):
        voice_settings({"voice": {"name": "en", "rate": "fast"}})
    with pytest.raises(BackendError, match="sample_rate"):
        synth(tmp_path, sample_rate=100)


def test_voice_settings_clamp_to_espeak_ranges():
    v = voice_settings({"voice": {"name": " en-us ", "rate": 900, "pitch": -5, "volume": 3.0}})
    assert (v.name, v.rate, v.pitch, v.volume) == ("en-us", 450, 0, 200)


def test_event_samples_agree_with_their_milliseconds():
    """Timings use the events' sample counts; espeak also gives milliseconds to check them by."""
    reply = call_worker({"op": "synth", "text": "Hello, world! Don't stop.", "voice": "en-us",
                         "rate": 175, "pitch": 50, "volume": 100})
    rate = reply["sample_rate"]
    assert rate == 22050
    assert len(reply["events"]) > 20
    for ev in reply["events"]:
        assert abs(ev["sample"] * 1000 / rate - ev["ms"]) <= 1.0, ev


def test_cancelling_kills_the_worker():
    cancel = threading.Event()
    cancel.set()
    text = "This sentence is long enough that its synthesis outlasts the first poll. " * 40
    with pytest.raises(Cancelled):
        call_worker({"op": "synth", "text": text, "voice": "en-us", "rate": 175, "pitch": 50, "volume": 100}, cancel)


SYNTH = {"op": "synth", "text": "Mama made pie.", "voice": "en-us", "rate": 175, "pitch": 50, "volume": 100}


def stalling_worker(folder: Path, times: int) -> Path:
    """A worker script that waits for ever (using no CPU) its first `times` runs, then is the real worker."""
    script = folder / "stalling_worker.py"
    script.write_text(
        "import os, runpy, sys, time\n"
        f"count = {str(folder / 'runs')!r}\n"
        "runs = os.path.getsize(count) if os.path.exists(count) else 0\n"
        "open(count, 'a').write('x')\n"
        f"if runs < {times}:\n"
        "    time.sleep(3600)\n"
        f"runpy.run_path({str(speech.WORKER)!r}, run_name='__main__')\n")
    return script


def test_a_request_reaches_the_worker_however_short_the_poll(monkeypatch):
    # The quick start's stall: a communicate() that timed out before writing the request
    # never wrote it, and the worker waited on stdin until the two-minute deadline.
    monkeypatch.setattr(speech, "POLL_S", 1e-6)
    monkeypatch.setattr(speech, "STALL_S", 3.0)
    assert call_worker(SYNTH)["sample_rate"] == 22050


def test_a_stuck_worker_is_stopped_within_seconds_as_a_transient_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "WORKER", stalling_worker(tmp_path, times=1))
    monkeypatch.setattr(speech, "STALL_S", 1.0)
    started = time.monotonic()
    with pytest.raises(TransientError, match="used no CPU"):
        call_worker(SYNTH)
    assert time.monotonic() - started < 10
    assert call_worker(SYNTH)["sample_rate"] == 22050  # the second run is the real worker


def test_a_build_recovers_from_a_stuck_speech_worker_by_itself(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from storybuild.cli.main import main

    monkeypatch.setattr(speech, "WORKER", stalling_worker(tmp_path, times=1))
    monkeypatch.setattr(speech, "STALL_S", 1.0)
    project = tmp_path / "film"
    shutil.copytree(ROOT / "examples" / "minimal", project)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["-C", str(project), "build", "--json", "-j", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output[-3000:]
    assert time.monotonic() - started < 60
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    speech_events = [e for e in events if str(e.get("action", "")).startswith("speech/")]
    assert any(e["event"] == "retrying" or e.get("attempt", 1) > 1 for e in speech_events), speech_events
    assert (project / "build" / "film.mp4").stat().st_size > 0


def test_backend_is_registered_and_rejects_other_kinds(tmp_path):
    backend = get_backend("espeak")
    assert isinstance(backend, EspeakBackend)
    assert (backend.name, backend.version, backend.capabilities) == ("espeak", "2", frozenset({"tts"}))
    # the espeak-ng release goes into the key: a new build may speak a line differently
    assert backend.config_key("speech", {}, {})["espeakng-loader"] == importlib.metadata.version("espeakng-loader")
    with pytest.raises(BackendError, match="cannot run"):
        backend.run(ActionContext("x", "mix", {}, {}, tmp_path, tmp_path))


# ---------------------------------------------------------------- pure parts


def test_build_timings_merges_expansions_and_drops_pauses():
    text = "I 😀 you, 42"
    W, P = speech_timing.EVENT_WORD, speech_timing.EVENT_PHONEME
    events = [
        {"type": W, "pos": 1, "sample": 0}, {"type": P, "pos": 1, "sample": 0, "name": "'aI"},
        {"type": W, "pos": 3, "sample": 100}, {"type": P, "pos": 3, "sample": 100, "name": "g"},
        {"type": W, "pos": 4, "sample": 200}, {"type": P, "pos": 4, "sample": 200, "name": "f"},  # "…face", in the space
        {"type": W, "pos": 5, "sample": 300}, {"type": P, "pos": 5, "sample": 300, "name": "j"},
        {"type": P, "pos": 5, "sample": 350, "name": "u:"},
        {"type": P, "pos": 8, "sample": 400, "name": "_:"},
        {"type": W, "pos": 10, "sample": 500}, {"type": P, "pos": 10, "sample": 500, "name": "f"},
        {"type": P, "pos": 10, "sample": 550, "name": "l"}, {"type": P, "pos": 10, "sample": 550, "name": "O@"},
        {"type": W, "pos": 11, "sample": 600}, {"type": P, "pos": 11, "sample": 600, "name": "t"},
    ]
    words, phonemes = speech_timing.build_timings(text, events, 100, 700)
    assert [(w.text, w.start, w.end) for w in words] == [("I", 0, 1), ("😀", 1, 3), ("you", 3, 4), ("42", 5, 7)]
    assert [p.text for p in phonemes] == ["aI", "g", "f", "j", "u:", "f", "O@", "t"]  # no "_:", no zero-length "l"
    assert phonemes[4].end == 4.0  # "u:" ends where the pause begins


def test_clean_text_keeps_positions():
    assert speech_timing.clean_text("a\nb\0c\td") == "a b c d"


def test_resample_keeps_a_sine_and_the_length():
    rate_in, rate_out = 22050, 48000
    t = np.arange(rate_in) / rate_in
    y = speech_audio.resample(0.5 * np.sin(2 * np.pi * 440 * t), rate_in, rate_out)
    assert len(y) == rate_out
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate_out) / rate_out)
    middle = slice(rate_out // 4, 3 * rate_out // 4)
    assert np.max(np.abs(y[middle] - ref[middle])) < 1e-4


def test_resample_removes_what_the_new_rate_cannot_hold():
    t = np.arange(22050) / 22050
    y = speech_audio.resample(0.5 * np.sin(2 * np.pi * 10000 * t), 22050, 16000)  # above 8 kHz Nyquist
    assert np.sqrt(np.mean(y[4000:12000] ** 2)) < 1e-3


def test_audible_end_keeps_a_short_tail():
    x = np.zeros(1000)
    x[100:200] = 0.5
    assert speech_audio.audible_end(x, 1000) == 200 + round(speech_audio.TAIL_S * 1000)
    assert speech_audio.audible_end(np.zeros(50), 1000) == 50  # silence stays as it is


def test_breathy_voices_do_not_depend_on_the_clock():
    """espeak-ng seeds its noise from time(NULL); the worker reseeds it, so variants repeat."""
    import time

    from storybuild.backends.espeak.backend import call_worker

    request = {"op": "synth", "text": "Mama made a pie.", "voice": "en-us+f3", "rate": 170, "pitch": 50,
               "volume": 100}
    first = call_worker(request)["audio"]
    time.sleep(1.05)  # into another second of time(NULL)
    assert call_worker(request)["audio"] == first
