"""The espeak backend: one line of dialogue → line.wav and timings.json.

    params {"text", "voice": {"name", "rate", "pitch", "volume"}, "sample_rate"}
        │  worker.py, in a fresh process (espeak-ng is only repeatable per process)
        ▼
    samples at 22050 Hz + WORD/PHONEME events
        │  speech_timing.py (events → words, phonemes)   speech_audio.py (trim, resample)
        ▼
    line.wav (mono PCM_16 at sample_rate), timings.json (sorted, deterministic)

numpy and soundfile are imported only inside `run`, so importing this module is cheap.
"""

from __future__ import annotations

import difflib
import marshal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.contract import ActionContext, SpeechRequest
from storybuild.backends.shared.liveness import StallWatch
from storybuild.backends.espeak import CAPABILITIES, NAME, VERSION
from storybuild.errors import BackendError, Cancelled, Diagnostic, ManifestError, TransientError

WORKER = Path(__file__).with_name("worker.py")
STALL_S = 5.0  # a worker that uses no CPU this long is stuck: killed, and the line retried
WORKER_TIMEOUT_S = 60.0  # espeak speaks ~50× faster than real time: a worker busy this long is looping
POLL_S = 0.02  # how often a running worker checks for cancellation
RATE_RANGE = (80, 450)  # words per minute that espeak-ng accepts (speak_lib.h)
PITCH_RANGE = (0, 100)
VOLUME_MAX = 2.0  # espeak volume 200: louder only distorts
EXIT_USER_ERROR = 3  # the worker's status for a request it cannot serve (unknown voice)


@dataclass(frozen=True)
class VoiceInfo:
    """One espeak-ng voice: select it by any of its language codes, its identifier or its name."""

    identifier: str  # file under espeak-ng-data/voices, e.g. "gmw/en-US"
    name: str  # e.g. "English (America)"
    languages: tuple[str, ...]  # e.g. ("en-us", "en")
    gender: str = ""


@dataclass(frozen=True)
class VoiceSettings:
    """The voice params of a speech action, checked and put in espeak's units."""

    name: str
    rate: int  # words per minute, 80..450
    pitch: int  # 0..100, 50 normal
    volume: int  # espeak's 0..200, 100 normal (params give a multiplier, 1.0 normal)


class EspeakBackend:
    """Speech from text with espeak-ng (the espeakng-loader wheel), with word and phoneme timings."""

    name, version = NAME, VERSION
    capabilities = CAPABILITIES

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """The espeak-ng build: a new espeakng-loader release may speak the same line differently."""
        return {"espeakng-loader": _espeak_release()}

    def plan_speech(self, request: SpeechRequest) -> dict[str, Any]:
        """A line's params: its text, the voice with the emotion's prosody applied, the sample rate."""
        if request.workflow:
            raise ManifestError([Diagnostic("an espeak voice runs no workflow", request.voice_loc or request.loc,
                                            "remove `workflow:` from the voice, or choose an engine that runs "
                                            "workflows", code="voice")])
        name = str(request.voice.get("name") or "")
        if name and not known_voice(name):
            error = unknown_voice_error(name)
            raise ManifestError([Diagnostic(error.message, request.voice_loc or request.loc, error.hint, code="voice")])
        return {"text": request.text, "voice": dict(request.voice), "sample_rate": request.sample_rate}

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        if ctx.kind != "speech":
            raise BackendError(f"the espeak backend cannot run actions of kind {ctx.kind!r}")
        return run_speech(ctx)


def _number(voice: Mapping[str, Any], key: str, default: float) -> float:
    value = voice.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise BackendError(f"voice {key} must be a number, got {value!r}")
    return float(value)


def voice_settings(params: Mapping[str, Any]) -> VoiceSettings:
    """The voice of a speech action's params; out-of-range values are clamped as espeak would."""
    voice = params.get("voice") or {}
    if not isinstance(voice, Mapping):
        raise BackendError(f"speech params 'voice' must be a mapping, got {type(voice).__name__}")
    name = voice.get("name", "en-us")
    if not isinstance(name, str) or not name.strip():
        raise BackendError(f"voice name must be a non-empty string, got {name!r}",
                           hint="see the voices with `python -m storybuild.backends.espeak.worker --list-voices`")
    rate = round(_number(voice, "rate", 175))
    pitch = round(_number(voice, "pitch", 50))
    volume = _number(voice, "volume", 1.0)
    return VoiceSettings(
        name=name.strip(),
        rate=min(max(rate, RATE_RANGE[0]), RATE_RANGE[1]),
        pitch=min(max(pitch, PITCH_RANGE[0]), PITCH_RANGE[1]),
        volume=round(min(max(volume, 0.0), VOLUME_MAX) * 100),
    )


@lru_cache(maxsize=1)
def _espeak_release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("espeakng-loader")
    except PackageNotFoundError:
        return "unknown"


def _library_paths() -> tuple[str, str]:
    import espeakng_loader

    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except RuntimeError as exc:  # the wheel lacks its data directory
        raise BackendError(f"espeak-ng is not installed correctly: {exc}", hint="pip install --force-reinstall espeakng-loader")


def call_worker(request: dict[str, Any], cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run one worker process on `request` and return its reply.

    The worker runs with `-I -S` (no site-packages: it imports nothing but ctypes). It is
    killed when `cancel` is set (→ Cancelled), and when it is stuck (no CPU for STALL_S) or
    busy past WORKER_TIMEOUT_S (→ TransientError, so the executor runs the line again).
    """
    library, data = _library_paths()
    payload = marshal.dumps({**request, "library": library, "data": data})
    if not sys.executable:
        raise BackendError("cannot start the espeak worker: the Python interpreter's path is unknown")
    # The request, the reply and the worker's errors go through files, not pipes and
    # communicate(): a communicate() with a timeout checks the clock before it writes or
    # reads anything, and once timed out it never writes its input. On a loaded machine
    # the 20 ms poll ran out before the request was written, and the worker waited for it
    # until the two-minute deadline: the quick start's stall. wait() reaps before it looks
    # at the clock, so it cannot miss the end however short the poll.
    with tempfile.TemporaryFile() as request_file, tempfile.TemporaryFile() as reply_file, \
            tempfile.TemporaryFile() as error_file:
        request_file.write(payload)
        request_file.seek(0)
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", str(WORKER)],
                                    stdin=request_file, stdout=reply_file, stderr=error_file)
        except OSError as exc:
            raise BackendError(f"cannot start the espeak worker: {exc}")
        _wait(proc, cancel)
        reply_file.seek(0)
        out = reply_file.read()
        error_file.seek(0)
        err = error_file.read()
    try:
        reply = marshal.loads(out) if out else {}
    except (EOFError, ValueError, TypeError):
        reply = {}
    if not isinstance(reply, dict):
        reply = {}
    if proc.returncode == EXIT_USER_ERROR and reply.get("error"):
        return reply
    if proc.returncode != 0 or not reply:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
        # Killed by a signal (the OOM killer, a stray kill): nothing wrong with the line.
        raise (TransientError if proc.returncode < 0 else BackendError)(f"espeak-ng failed (exit status {proc.returncode})" + (": " + " | ".join(tail) if tail else ""))
    return reply


def _wait(proc: subprocess.Popen, cancel: threading.Event | None) -> None:
    """Wait for the worker to exit; kill it if cancelled, stuck or looping."""
    watch = StallWatch(STALL_S)
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return
        except subprocess.TimeoutExpired:
            cancelled = cancel is not None and cancel.is_set()
            stuck = watch.stalled((proc.pid,))
            if cancelled or stuck or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                if cancelled:
                    raise Cancelled("speech synthesis cancelled") from None
                what = f"used no CPU for {STALL_S:.0f} s" if stuck else f"ran past {WORKER_TIMEOUT_S:.0f} s"
                raise TransientError(f"the espeak-ng worker {what} and was stopped") from None


@lru_cache(maxsize=1)
def list_voices() -> tuple[VoiceInfo, ...]:
    """Every voice the installed espeak-ng offers, sorted by identifier."""
    reply = call_worker({"op": "voices"})
    return tuple(VoiceInfo(v["identifier"], v["name"], tuple(v["languages"]), v["gender"]) for v in reply["voices"])


def voice_for_language(name: str) -> str | None:
    """The voice identifier for a language code such as "en-gb+f3" → "gmw/en+f3".

    espeak_SetVoiceByName knows voice file names ("en-us") but not every language code
    a voice declares ("en-gb" is spoken by gmw/en), which writers reasonably expect to work.
    """
    base, plus, variant = name.partition("+")
    for voice in list_voices():
        if base.lower() in voice.languages:
            return voice.identifier + plus + variant
    return None


def known_voice(name: str) -> bool:
    """Whether espeak-ng has a voice `name` (a language code, identifier or name; a +variant aside)."""
    base = name.split("+", 1)[0].strip().lower()
    return any(base in (v.identifier.lower(), v.name.lower(), *v.languages) for v in list_voices())


def unknown_voice_error(name: str) -> BackendError:
    """A BackendError for a voice espeak does not know, suggesting near names."""
    voices = list_voices()
    names = {v.identifier for v in voices} | {v.name for v in voices} | {lang for v in voices for lang in v.languages}
    by_lower = {n.lower(): n for n in sorted(names)}  # espeak matches names case-insensitively
    base = name.split("+", 1)[0].lower()  # "en-uss+f3": the voice is what precedes the variant
    near = [by_lower[n] for n in difflib.get_close_matches(base, sorted(by_lower), n=4, cutoff=0.6)]
    hint = (f"did you mean {', '.join(repr(n) for n in near)}? " if near else "") + (
        "A voice is a language code (en-us, fr), an identifier (gmw/en-US) or a name (English (America)), "
        "optionally with a variant (en-us+f3); "
        f"`python -m storybuild.backends.espeak.worker --list-voices` lists all {len(voices)}")
    return BackendError(f"unknown espeak voice {name!r}", hint=hint)


def run_speech(ctx: ActionContext) -> dict[str, Path]:
    """Perform a `speech` action: write line.wav and timings.json under ctx.out_dir."""
    import numpy as np
    import soundfile

    from storybuild.backends.shared import speech_audio, speech_timing

    params = ctx.params
    text = speech_timing.line_text(ctx.action_id, params)
    voice = voice_settings(params)
    rate_out = speech_timing.output_rate(params)

    ctx.check_cancelled()
    ctx.progress(0.0, f"speaking as {voice.name}")
    request = {"op": "synth", "text": text, "voice": voice.name, "rate": voice.rate,
               "pitch": voice.pitch, "volume": voice.volume}
    try:
        reply = call_worker(request, ctx.cancel_event)
        if reply.get("error") == "unknown_voice" and (identifier := voice_for_language(voice.name)):
            reply = call_worker({**request, "voice": identifier}, ctx.cancel_event)
    except Cancelled:
        raise Cancelled(f"{ctx.action_id}: cancelled")
    if reply.get("error") == "unknown_voice":
        raise unknown_voice_error(voice.name)
    if reply.get("error"):
        raise BackendError(f"{ctx.action_id}: {reply.get('message', reply['error'])}")
    ctx.progress(0.6, "resampling")

    rate_in = int(reply["sample_rate"])
    raw = np.frombuffer(reply["audio"], dtype="<i2").astype(np.float64) / 32768.0
    keep = speech_audio.audible_end(raw, rate_in)
    audio = speech_audio.resample(raw[:keep], rate_in, rate_out, ctx.check_cancelled)
    audio = speech_audio.fade_out(audio, rate_out)
    duration = audio.shape[0] / rate_out

    words, phonemes = speech_timing.build_timings(text, reply["events"], rate_in, keep)
    timings = speech_timing.Timings(duration, rate_out, speech_timing.clip(words, duration),
                                    speech_timing.clip(phonemes, duration))

    ctx.check_cancelled()
    wav, js = ctx.output("line.wav"), ctx.output("timings.json")
    soundfile.write(str(wav), speech_audio.to_pcm16(audio), rate_out, subtype="PCM_16", format="WAV")
    js.write_text(speech_timing.to_json(timings), encoding="utf-8")
    ctx.progress(1.0, f"{duration:.2f} s, {len(timings.words)} words")
    return {"line.wav": wav, "timings.json": js}
