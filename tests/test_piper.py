"""The Piper plug-in (plugins/storybuild-piper): a speech backend from outside storybuild.

It is a separate distribution registered only through the `storybuild.backends` entry
point, so these tests prove the backend contract from the outside: the registry finds it,
the schema offers it, a line spoken through it has real timings that make real visemes,
and a film builds with it from the command line. Skipped where the plug-in is not
installed (`pip install -e plugins/storybuild-piper`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("storybuild_piper")

import numpy as np  # noqa: E402
import soundfile  # noqa: E402

from storybuild.backends import contract  # noqa: E402
from storybuild.backends.contract import ActionContext, SpeechRequest, get_backend  # noqa: E402
from storybuild.errors import BackendError, Cancelled, ManifestError, SourceLoc  # noqa: E402
from storybuild_piper import ipa  # noqa: E402
from storybuild_piper.backend import PiperBackend  # noqa: E402

LINE = "Hello, world. How are you today?"
NEUTRAL = {"engine": "piper", "name": "en-us", "rate": 165, "pitch": 50, "volume": 1.0}
MANIFEST = """\
version: 1
project: {title: T, fps: 8, resolution: [160, 90]}
characters:
  mo: {voice: {engine: piper%s}}
scenes:
  - id: hello
    shots:
      - id: hello-mo
        cast: [{ref: mo}]
        dialogue:
          - {character: mo, text: "Hello, world."}
"""


def plan(text: str = LINE, **voice) -> dict:
    request = SpeechRequest(text, {**NEUTRAL, **voice}, "neutral", 48000, "s1", 0, SourceLoc("storybuild.yaml", 9, 13))
    return get_backend("piper").plan_speech(request)


def speak(out: Path, text: str = LINE, cancel: bool = False, **voice) -> tuple[np.ndarray, int, dict]:
    """Run a speech action through the registry; the samples, their rate and timings.json."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = ActionContext("speech/s1/0", "speech", plan(text, **voice), {}, out, out)
    if cancel:
        ctx.cancel_event.set()
    written = get_backend("piper").run(ctx)
    assert set(written) == {"line.wav", "timings.json"}
    audio, rate = soundfile.read(str(written["line.wav"]))
    return audio, rate, json.loads(written["timings.json"].read_text(encoding="utf-8"))


def f0(audio: np.ndarray, rate: int) -> float:
    """Median pitch of the voiced 80 ms frames, by autocorrelation (45..300 Hz)."""
    size = int(0.08 * rate)
    found = []
    for start in range(0, len(audio) - size, size // 2):
        frame = audio[start:start + size] - audio[start:start + size].mean()
        if np.sqrt(np.mean(frame ** 2)) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[size - 1:]
        lo, hi = rate // 300, rate // 45
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            found.append(rate / lag)
    assert len(found) >= 5, "too few voiced frames to measure a pitch"
    return float(np.median(found))


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    return speak(tmp_path_factory.mktemp("line"))


# ------------------------------------------------------------------ the registry


def test_piper_is_found_through_its_entry_point_and_offered_as_a_voice_engine() -> None:
    from storybuild.manifest.schema import published_schema

    assert "piper" not in contract.BUILTIN
    assert contract.plugins()["piper"] == "storybuild_piper.backend:PiperBackend"
    assert contract.installed()["piper"] == "storybuild_piper.backend:PiperBackend"
    assert "piper" in contract.with_capability("tts")
    assert isinstance(get_backend("piper"), PiperBackend)
    decl = contract.declaration("piper")
    assert (decl.version, decl.capabilities, decl.builtin) == ("1", frozenset({"tts"}), False)
    schema = published_schema(contract.declarations())
    assert "piper" in schema["$defs"]["voice_engine"]["enum"]
    assert "en_US-joe-medium" in decl.voice_schema["properties"]["name"]["enum"]
    assert str(Path(sys.modules["storybuild_piper.backend"].__file__)) in contract.source_files(["piper"])


def test_importing_the_backend_imports_nothing_heavy() -> None:
    code = ("import sys, storybuild_piper.backend as b; b.PiperBackend().plan_speech; "
            "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime', 'piper') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------ one line


def test_a_line_is_real_speech_with_words_and_phonemes_where_the_audio_has_them(line) -> None:
    audio, rate, timings = line
    assert rate == 48000 and audio.ndim == 1
    assert 1.2 < len(audio) / rate < 4.0
    assert timings["sample_rate"] == 48000 and timings["duration"] == pytest.approx(len(audio) / rate, abs=1e-5)
    assert [w["text"] for w in timings["words"]] == ["Hello", "world", "How", "are", "you", "today"]
    phonemes = timings["phonemes"]
    assert len(phonemes) >= 15
    for item in timings["words"] + phonemes:
        assert 0 <= item["start"] < item["end"] <= timings["duration"]
    assert [p["start"] for p in phonemes] == sorted(p["start"] for p in phonemes)
    assert " ".join(p["phoneme"] for p in phonemes[:4]) == "h @ l oU"  # espeak mnemonics, not IPA
    for word in timings["words"]:  # each word is made of phonemes, and is heard
        inside = [p for p in phonemes if word["start"] <= p["start"] and p["end"] <= word["end"]]
        assert inside and inside[0]["start"] == word["start"] and inside[-1]["end"] == word["end"]
        span = audio[int(word["start"] * rate):int(word["end"] * rate)]
        assert np.sqrt(np.mean(span ** 2)) > 0.02, word
    pause = audio[int(timings["words"][1]["end"] * rate):int(timings["words"][2]["start"] * rate)]
    assert len(pause) > 0.1 * rate and np.sqrt(np.mean(pause ** 2)) < 0.01  # between the sentences: quiet


def test_words_follow_how_espeak_reads_the_tokens(tmp_path) -> None:
    # "Wait... what" is read as one run of sounds, "42" as two words, "e.g." as "for example".
    _, _, timings = speak(tmp_path, "Wait... what? It's 42, e.g. now.")
    assert [w["text"] for w in timings["words"]] == ["Wait", "what", "It's", "42", "e.g", "now"]
    starts = [w["start"] for w in timings["words"]]
    assert starts == sorted(starts)


def test_the_same_line_gives_the_same_bytes_and_the_seed_is_honoured(tmp_path, line) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        speak(out, pitch=70)
    for name in ("line.wav", "timings.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    ctx = ActionContext("speech/s1/0", "speech", {**plan(), "seed": 7}, {}, tmp_path / "c", tmp_path)
    (tmp_path / "c").mkdir()
    get_backend("piper").run(ctx)
    other, _ = soundfile.read(str(tmp_path / "c" / "line.wav"))
    assert other.shape != line[0].shape or not np.array_equal(other, line[0])


def test_rate_changes_the_duration(tmp_path, line) -> None:
    slow, rate, _ = speak(tmp_path / "slow", rate=110)
    fast, _, _ = speak(tmp_path / "fast", rate=250)
    normal = len(line[0])
    assert len(slow) > 1.25 * normal and len(fast) < 0.8 * normal
    assert 1.7 < len(slow) / len(fast) < 2.6  # 250 / 110 = 2.27, less the fixed leading silence


def test_pitch_moves_the_pitch_and_keeps_the_length(tmp_path) -> None:
    low, rate, low_timings = speak(tmp_path / "low", pitch=20)
    high, _, high_timings = speak(tmp_path / "high", pitch=80)
    assert f0(high, rate) / f0(low, rate) == pytest.approx(2 ** (60 / 50 * 6 / 12), rel=0.12)  # 7.2 semitones
    assert len(high) / len(low) == pytest.approx(1.0, abs=0.03)
    assert [w["text"] for w in high_timings["words"]] == [w["text"] for w in low_timings["words"]]
    assert high_timings["words"][-1]["start"] == pytest.approx(low_timings["words"][-1]["start"], abs=0.03)


def test_volume_scales_the_level(tmp_path, line) -> None:
    quiet, _, timings = speak(tmp_path, volume=0.5)
    assert timings == line[2]
    assert np.sqrt(np.mean(quiet ** 2)) / np.sqrt(np.mean(line[0] ** 2)) == pytest.approx(0.5, abs=0.005)


def test_an_unknown_voice_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ManifestError) as planned:
        plan(name="en_US-joe-mediu")
    assert planned.value.loc == SourceLoc("storybuild.yaml", 9, 13)
    assert "unknown Piper voice 'en_US-joe-mediu'" in planned.value.message
    assert "did you mean 'en_US-joe-medium'" in planned.value.hint
    params = {**plan(), "voice": {"name": "nobody"}}
    with pytest.raises(BackendError) as ran:
        get_backend("piper").run(ActionContext("speech/s1/0", "speech", params, {}, tmp_path, tmp_path))
    assert "'nobody'" in ran.value.message and "en_US-joe-medium" in ran.value.hint


def test_voice_names_and_settings_piper_lacks_are_refused_not_dropped() -> None:
    assert plan()["voice"] == {"name": "en_US-joe-medium", "rate": 165, "pitch": 50, "volume": 1.0}
    assert plan(name="joe")["voice"]["name"] == plan(name="en_US")["voice"]["name"] == "en_US-joe-medium"
    with pytest.raises(ManifestError, match="no voice setting 'breathiness'"):
        plan(breathiness=0.3)
    with pytest.raises(ManifestError, match="rate must be from 40 to 1000"):
        plan(rate=2000)


def test_a_cancelled_build_stops_before_speaking(tmp_path) -> None:
    with pytest.raises(Cancelled):
        speak(tmp_path, cancel=True)
    assert not (tmp_path / "line.wav").exists()


def test_visemes_made_from_piper_timings_move_the_mouth(tmp_path, line) -> None:
    from storybuild.backends.embedded.visemes import run_visemes

    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps(line[2]), encoding="utf-8")
    run_visemes(ActionContext("visemes/s1/0", "visemes", {"extended": True}, {"timings": timings}, tmp_path, tmp_path))
    cues = json.loads((tmp_path / "visemes.json").read_text(encoding="utf-8"))["mouthCues"]
    shapes = {cue["value"] for cue in cues}
    assert len(shapes - {"X"}) >= 4  # open, closed (the m of "How are you"… h-e-l-l-o), rounded
    spoken = sum(c["end"] - c["start"] for c in cues if c["value"] != "X")
    assert spoken > 0.6 * line[2]["duration"]


def test_every_mnemonic_the_plug_in_writes_is_one_the_viseme_rules_know() -> None:
    from storybuild.backends.embedded.viseme_rules import ESPEAK_PHONES, FIRST_CHAR_PHONES

    unknown = sorted({m for m in ipa.IPA_TO_MNEMONIC.values()
                      if m not in ESPEAK_PHONES and m[:1] not in FIRST_CHAR_PHONES})
    assert unknown == []
    sounds, words = ipa.group(["^", "h", "ə", "l", "ˈ", "o", "ʊ", ",", " ", "w", "ˈ", "ɜ", "ː", "l", "d", ".", "$"],
                              [5, 2, 2, 3, 4, 2, 1, 3, 9, 3, 2, 2, 3, 1, 3, 1, 3], 0, 0)
    assert [(s.phoneme, s.start, s.end, s.word) for s in sounds] == [
        ("h", 5, 7, 0), ("@", 7, 9, 0), ("l", 9, 12, 0), ("oU", 12, 19, 0),  # the stress mark's 4 go to oU
        ("w", 31, 34, 1), ("3:", 34, 41, 1), ("l", 41, 42, 1), ("d", 42, 45, 1)]  # the pause 19..31 left out
    assert words == 2


# ------------------------------------------------------------------ a film


def _build(root: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "storybuild", "build", "--json"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_a_film_builds_with_piper_from_the_command_line_and_then_is_up_to_date(tmp_path) -> None:
    (tmp_path / "storybuild.yaml").write_text(MANIFEST % "", encoding="utf-8")
    events = _build(tmp_path)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["status"] == "ok" and summary["ran"] >= 5
    finished = {e["action"] for e in events if e["event"] == "finished"}
    assert {"speech/hello-mo/0", "visemes/hello-mo/0", "film"} <= finished
    assert (tmp_path / "build" / "film.mp4").stat().st_size > 0
    wav, rate = soundfile.read(str(tmp_path / "build" / "dialogue" / "hello-mo" / "00-mo.wav"))
    assert rate == 48000 and 0.5 < len(wav) / rate < 2.5
    again = _build(tmp_path)[-1]
    assert again["ran"] == 0 and again["status"] == "ok"


def test_validate_names_an_unknown_piper_voice_where_the_manifest_says_it(tmp_path) -> None:
    (tmp_path / "storybuild.yaml").write_text(MANIFEST % ", name: nobody", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "storybuild", "validate"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "storybuild.yaml:4:" in done.stderr and "'nobody'" in done.stderr and "en_US-joe-medium" in done.stderr


def test_a_plug_in_version_bump_speaks_its_lines_again(tmp_path, monkeypatch) -> None:
    from storybuild.engine.session import Session
    from storybuild.store import stamp

    (tmp_path / "storybuild.yaml").write_text(MANIFEST % "", encoding="utf-8")
    session = Session(tmp_path)
    first = session.build(jobs=2)
    assert first.status == "ok" and "speech/hello-mo/0" in first.ran
    assert session.build(jobs=2).ran == []

    monkeypatch.setattr(PiperBackend, "version", "2")
    # Upgrading a plug-in changes its files, which the up-to-date stamp watches
    # (contract.source_files); here only the class changed, so drop the stamp as that would.
    stamp.remove(session.store_dir)
    bumped = session.build(jobs=2)
    assert bumped.status == "ok"
    assert "speech/hello-mo/0" in bumped.ran  # the key holds the version: spoken again
    assert "film" not in bumped.ran  # the same bytes came out, so nothing after it changed
