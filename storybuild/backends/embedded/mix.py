"""mix/<scene>: dialogue, sound effects, ambience and music of one scene → four stems + mix.wav.

The scene's timeline is its shots end to end (lengths from each shot.json). Dialogue lines
land where the shot renderer put them (shot.json `start`, panned by `pan`); effects land
at their cue times; the ambience bed loops under the whole scene; music plays once from
its start offset and dips to `duck` while anyone speaks. The scene's reverb zone colours
dialogue and effects only (beds are recorded with their own space). mix.wav is the sum
of the four stems, computed from the very samples written to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from storybuild.backends.contract import ActionContext
from storybuild.backends.embedded import reverb
from storybuild.backends.shared import audio
from storybuild.backends.embedded.cut import ShotInfo, read_shot
from storybuild.errors import BackendError
from storybuild.model import STEMS

LOOP_CROSSFADE_S = 0.25  # seam crossfade when an ambience bed loops


def _input(ctx: ActionContext, name: str) -> Path:
    path = ctx.inputs.get(name)
    if path is None:
        raise BackendError(f"{ctx.action_id}: missing input {name!r}")
    return Path(path)


class _Assets:
    """Loads each audio input once per mix, at the scene's rate."""

    def __init__(self, ctx: ActionContext, rate: int):
        self.ctx, self.rate = ctx, rate
        self._stereo: dict[str, np.ndarray] = {}
        self._mono: dict[str, np.ndarray] = {}

    def stereo(self, name: str) -> np.ndarray:
        if name not in self._stereo:
            self._stereo[name] = audio.load(_input(self.ctx, name), self.rate)
        return self._stereo[name]

    def mono(self, name: str) -> np.ndarray:
        if name not in self._mono:
            self._mono[name] = audio.load_mono(_input(self.ctx, name), self.rate)
        return self._mono[name]


def _shot_timings(ctx: ActionContext) -> list[tuple[Mapping[str, Any], ShotInfo, float]]:
    """(shot params, shot.json info, start second on the scene timeline) for each shot."""
    out, at = [], 0.0
    for shot in ctx.params.get("shots", []):
        info = read_shot(_input(ctx, f"shot:{shot['id']}"), shot["id"])
        out.append((shot, info, at))
        at += info.duration
    return out


def _dialogue(ctx: ActionContext, shots, assets: _Assets, length: int):
    """The dialogue stem (dry) and the (start, end) seconds of every line, for ducking."""
    rate = assets.rate
    stem = np.zeros((length, 2), dtype=np.float32)
    intervals: list[tuple[float, float]] = []
    for shot, info, offset in shots:
        by_index = {int(line.get("index", i)): line for i, line in enumerate(info.lines)}
        for line in shot.get("lines", []):
            placed = by_index.get(int(line["index"]))
            if placed is None:
                raise BackendError(f"{ctx.action_id}: shot {shot['id']!r} has no line {line['index']} in its shot.json",
                                   hint="the shot was rendered from different dialogue; rebuild the shot")
            voice = assets.mono(line["input"]) * np.float32(line.get("volume", 1.0))
            start = offset + float(placed["start"])
            if not audio.place(stem, audio.pan(voice, float(placed.get("pan", 0.0))), int(round(start * rate))):
                ctx.log(f"{ctx.action_id}: line {line['index']} of shot {shot['id']} runs past the end of the scene")
            intervals.append((start, offset + float(placed.get("end", start + len(voice) / rate))))
    return stem, intervals


def _effects(ctx: ActionContext, shots, assets: _Assets, length: int):
    """The sound-effects stem (dry): each cue at its time in its shot."""
    stem = np.zeros((length, 2), dtype=np.float32)
    for shot, _info, offset in shots:
        for cue in shot.get("sfx", []):
            sound = assets.stereo(cue["input"]) * np.float32(cue.get("volume", 1.0))
            at = offset + float(cue.get("at", 0.0))
            if not audio.place(stem, sound, int(round(at * assets.rate))):
                ctx.log(f"{ctx.action_id}: sound effect {cue['input']} at {at:.2f} s is cut by the end of the scene")
    return stem


def _bed(cue: Mapping[str, Any] | None, assets: _Assets, length: int, loop: bool):
    """An ambience or music bed: from `start` seconds into the asset, looped or played once, faded."""
    if not cue:
        return np.zeros((length, 2), dtype=np.float32)
    rate = assets.rate
    source = assets.stereo(cue["input"])
    skip = int(round(max(0.0, float(cue.get("start", 0.0))) * rate))
    if cue.get("loop", loop) and len(source):
        skip %= len(source)
        body = audio.loop_to(source, skip + length, int(LOOP_CROSSFADE_S * rate))[skip:]
    else:
        body = np.zeros((length, 2), dtype=np.float32)
        audio.place(body, source[skip:skip + length], 0)
    body = audio.fade(body, rate, float(cue.get("fade_in", 0.0)), float(cue.get("fade_out", 0.0)))
    return body * np.float32(cue.get("volume", 1.0))


def run_mix(ctx: ActionContext) -> dict[str, Path]:
    """Mix one scene: write dialogue/music/sfx/ambience stems and mix.wav (their sum)."""
    params = ctx.params
    rate = int(params.get("sample_rate", 48000))
    zone = str(params.get("reverb", "none"))
    reverb.zone(zone)  # reject an unknown zone before any work
    shots = _shot_timings(ctx)
    if not shots:
        raise BackendError(f"{ctx.action_id}: the scene has no shots")
    total = sum(info.duration for _s, info, _o in shots)
    length = int(round(total * rate))
    assets = _Assets(ctx, rate)

    ctx.progress(0.1, "dialogue")
    dialogue, intervals = _dialogue(ctx, shots, assets, length)
    ctx.check_cancelled()
    ctx.progress(0.3, "effects")
    sfx = _effects(ctx, shots, assets, length)
    ctx.check_cancelled()
    ctx.progress(0.45, "reverb")
    dialogue = reverb.apply(dialogue, zone, rate)
    sfx = reverb.apply(sfx, zone, rate)
    ctx.check_cancelled()
    ctx.progress(0.7, "beds")
    ambience = _bed(params.get("ambience"), assets, length, loop=True)
    music_cue = params.get("music")
    music = _bed(music_cue, assets, length, loop=False)
    if music_cue and float(music_cue.get("duck", 1.0)) != 1.0 and intervals:
        music = music * audio.duck_envelope(length, rate, intervals, float(music_cue["duck"]))[:, None]

    ctx.progress(0.9, "writing stems")
    stems = {"dialogue": dialogue, "music": music, "sfx": sfx, "ambience": ambience}
    outputs: dict[str, Path] = {}
    mix = np.zeros((length, 2), dtype=np.float32)
    for name in STEMS:
        data = np.ascontiguousarray(stems[name], dtype=np.float32)
        mix += data  # the same float32 samples that go into the stem file
        outputs[f"{name}.wav"] = audio.write_wav(ctx.output(f"{name}.wav"), data, rate)
    outputs["mix.wav"] = audio.write_wav(ctx.output("mix.wav"), mix, rate)
    top = audio.peak(mix)
    if top > 1.0:
        ctx.log(f"{ctx.action_id}: the scene mix peaks at {top:.2f} (above full scale); the film's loudness "
                "normalisation will bring it down, but check the volumes")
    ctx.progress(1.0, "mixed")
    return outputs
