"""Speech from a TTS workflow: words placed on the audio, phonemes the viseme step knows."""

from __future__ import annotations

import json
import string

import numpy as np
import soundfile

from storybuild.backends.comfyui.speechfiles import (letters_to_phonemes, place_words, server_timings, speech_outputs,
                                                voiced_spans)
from storybuild.backends.embedded.viseme_rules import ESPEAK_PHONES


def spoken(words: int, rate: int = 16000) -> np.ndarray:
    """`words` bursts of tone separated by pauses, with silence around them."""
    parts = [np.zeros(int(0.2 * rate))]
    for index in range(words):
        t = np.arange(int(0.25 * rate)) / rate
        parts += [0.4 * np.sin(2 * np.pi * (180 + 30 * index) * t), np.zeros(int(0.15 * rate))]
    return np.concatenate(parts).astype(np.float32)


def test_each_word_gets_its_own_voiced_stretch():
    rate = 16000
    spans = voiced_spans(spoken(3, rate), rate)
    assert len(spans) == 3
    words = place_words(["The", "harbour", "sleeps"], spans, 1.6)
    assert [w.text for w in words] == ["The", "harbour", "sleeps"]
    assert abs(words[0].start - 0.2) < 0.02 and abs(words[1].start - 0.6) < 0.02


def test_words_share_the_voice_by_length_when_stretches_do_not_match():
    words = place_words(["a", "lighthouse"], [(0.5, 1.5)], 2.0)
    assert words[0].start == 0.5 and words[-1].end == 1.5
    assert (words[1].end - words[1].start) > 4 * (words[0].end - words[0].start)


def test_letter_phonemes_are_all_known_to_the_viseme_rules():
    for word in ["through", "shipyard", "quick", "jazz", "phone", "mooring", "eyes", string.ascii_lowercase]:
        sounds = letters_to_phonemes(word)
        assert sounds and all(s in ESPEAK_PHONES for s in sounds), (word, sounds)
    assert letters_to_phonemes("the") == ["T", "E"] and letters_to_phonemes("ball") == ["b", "a", "l"]


def test_timings_a_server_reports_win():
    reported = server_timings(["not json", json.dumps({"words": [{"start": 0.1, "end": 0.4, "word": "ahoy"}]})])
    assert [(w.start, w.end, w.text) for w in reported] == [(0.1, 0.4, "ahoy")]
    assert server_timings(["[1, 2]"]) is None


def test_speech_outputs_write_a_line_and_its_timings(tmp_path):
    source = tmp_path / "tts.flac"
    soundfile.write(str(source), spoken(2, 24000), 24000, format="FLAC")
    outputs = speech_outputs(source, "Hold fast", 48000, tmp_path)
    info = soundfile.info(str(outputs["line.wav"]))
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
    timings = json.loads(outputs["timings.json"].read_text())
    assert timings["sample_rate"] == 48000 and [w["text"] for w in timings["words"]] == ["Hold", "fast"]
    assert timings["phonemes"][0]["phoneme"] == "h" and timings["phonemes"][0]["start"] > 0.15
    (tmp_path / "again").mkdir()
    again = speech_outputs(source, "Hold fast", 48000, tmp_path / "again")
    assert again["timings.json"].read_bytes() == outputs["timings.json"].read_bytes()  # deterministic
    assert again["line.wav"].read_bytes() == outputs["line.wav"].read_bytes()
