"""Expand a film manifest into actions: lines → speech and visemes, shots → pictures,
scenes → mixes and scene videos, the film, its exports (docs/pipeline.md draws the graph).

Pure: reads the Manifest only (no files). Each action's params hold exactly what its
backend needs, already resolved (prosody applied, look-at targets turned into points,
assets turned into input names), and `origins` says which manifest path each param came
from, so a rebuild can be explained down to the line that changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from storybuild.actionids import PREVIEW, action_id
from storybuild.backends.contract import (
    DEFAULT_PICTURE, DEFAULT_SPEECH, NO_LIPSYNC, OFFLINE, SpeechRequest, generative_backend, get_backend,
)
from storybuild.errors import Diagnostic, ManifestError
from storybuild.hashing import stable_seed
from storybuild.model import (
    Action,
    ActionInput,
    Asset,
    Character,
    FileInput,
    Input,
    Look,
    Manifest,
    Picture,
    PictureSource,
    Prosody,
    Quality,
    Scene,
    STEMS,
    Shot,
)
from storybuild.planning.staging import Staging

# How emotions shift a voice unless the character's voice says otherwise.
BUILTIN_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(),
    "calm": Prosody(rate=0.95, pitch=-2),
    "warm": Prosody(rate=0.95, pitch=-2),
    "happy": Prosody(rate=1.08, pitch=6, volume=1.05),
    "excited": Prosody(rate=1.15, pitch=10, volume=1.1),
    "sad": Prosody(rate=0.85, pitch=-6, volume=0.9),
    "angry": Prosody(rate=1.1, pitch=4, volume=1.2),
    "scared": Prosody(rate=1.2, pitch=12, volume=0.9),
    "worried": Prosody(rate=1.1, pitch=6),
    "whisper": Prosody(rate=0.9, pitch=-4, volume=0.6),
}


def even(value: float) -> int:
    """Round to an even integer ≥ 2 (H.264 with 4:2:0 chroma needs even sizes)."""
    return max(2, int(round(value / 2.0)) * 2)


class _Expander(Staging):
    """One expansion of a manifest at one quality: collects actions and problems."""

    def __init__(self, manifest: Manifest, quality: Quality):
        self.m = manifest
        self.quality = quality
        self.preview = quality is Quality.PREVIEW
        self.pre = PREVIEW if self.preview else ""  # the build/ view of a preview pass is build/preview/
        project = manifest.project
        if quality is Quality.PREVIEW:
            self.width = even(project.width * project.preview.scale)
            self.height = even(project.height * project.preview.scale)
            self.fps = min(project.fps, project.preview.fps)
        else:
            self.width, self.height, self.fps = project.width, project.height, project.fps
        self.sample_rate = project.sample_rate
        self.actions: list[Action] = []
        self.layouts: dict[str, str] = {}  # shot id → its layout action
        self.problems: list[Diagnostic] = []

    # ------------------------------------------------------------------ helpers

    def add(self, action: Action) -> str:
        self.actions.append(action)
        return action.id

    def id(self, kind: str, owner: str = "", *, line: int | None = None, take: int | None = None) -> str:
        """The id of an action of this pass (storybuild.actionids)."""
        return action_id(kind, owner, line=line, take=take, preview=self.preview)

    def view(self, path: str) -> str:
        return f"{self.pre}{path}"

    def asset(self, asset_id: str) -> Asset:
        return self.m.assets[asset_id]

    def asset_input(self, name: str, asset_id: str) -> Input:
        return Input(name, FileInput(self.asset(asset_id).path, f"assets.{asset_id}"))

    # ------------------------------------------------------------------ lines

    def voice_params(self, character: Character, emotion: str) -> dict[str, Any]:
        voice = character.voice
        prosody = voice.emotions.get(emotion) or BUILTIN_PROSODY.get(emotion, Prosody())
        return {
            "engine": voice.engine,
            "name": voice.name,
            "rate": int(round(voice.rate * prosody.rate)),
            "pitch": int(min(99, max(0, round(voice.pitch + prosody.pitch)))),
            "volume": round(voice.volume * prosody.volume, 4),
        }

    def line_actions(self, shot: Shot) -> list[dict[str, Any]]:
        """Speech (+ visemes) per line; returns the shot's `lines` params."""
        lines = []
        for index, line in enumerate(shot.dialogue):
            character = self.m.characters[line.character]
            voice = self.voice_params(character, line.emotion)
            speech_id = self.id("speech", shot.id, line=index)
            backend = character.voice.engine or DEFAULT_SPEECH
            request = SpeechRequest(line.text, voice, line.emotion, self.sample_rate, shot.id, index, line.loc,
                                    self.m, character.voice.workflow, self.m.project.seed,
                                    self.m.loc_of(f"{character.path}.voice") or line.loc)
            try:
                params = dict(get_backend(backend).plan_speech(request))
            except ManifestError as err:
                self.problems.extend(err.diagnostics)
                params = {"text": line.text}
            params["emotion"] = line.emotion
            self.add(Action(
                id=speech_id, kind="speech", backend=backend, params=params,
                outputs=("line.wav", "timings.json"),
                view={"line.wav": self.view(f"dialogue/{shot.id}/{index:02d}-{line.character}.wav")},
                loc=line.loc,
                origins={"text": f"{line.path}.text", "voice": f"{character.path}.voice",
                         "emotion": f"{line.path}.emotion", "sample_rate": "project.sample_rate",
                         "values": f"{line.path}.text"},
            ))
            visemes = None
            if shot.lipsync != NO_LIPSYNC:
                if line.lipsync:
                    source = self.asset_input("rhubarb", line.lipsync)
                else:
                    source = Input("timings", ActionInput(speech_id, "timings.json"))
                visemes_id = self.add(Action(
                    id=self.id("visemes", shot.id, line=index), kind="visemes", backend=OFFLINE,
                    params={"extended": True}, inputs=(source,), outputs=("visemes.json",),
                    view={"visemes.json": self.view(f"dialogue/{shot.id}/{index:02d}-{line.character}.visemes.json")},
                    loc=line.loc, origins={"extended": f"{line.path}"},
                ))
                visemes = visemes_id
            lines.append({"index": index, "character": line.character, "text": line.text,
                          "offset": line.offset, "speech": speech_id, "visemes": visemes})
        return lines

    # ------------------------------------------------------------------ pictures

    def picture_backend(self, picture: Picture) -> str:
        """Who makes a picture: a generative source's backend, else the animatic's (DEFAULT_PICTURE)."""
        name = generative_backend(self.m.backends, picture.source.value, picture.backend)
        if isinstance(name, Diagnostic):
            self.problems.append(replace(name, loc=picture.loc))
            return DEFAULT_PICTURE
        return name

    def prompt_for(self, shot: Shot, look: Look) -> tuple[str, str]:
        """A generated shot's prompt and negative prompt, with the look's presets applied."""
        from storybuild.manifest.templating import apply_presets

        prompt, negative = apply_presets(shot.prompt, look, self.m.presets)
        if shot.negative:
            negative = ", ".join(x for x in (shot.negative, negative) if x)
        return prompt, negative

    def shot_actions(self, scene: Scene, shot: Shot) -> str:
        lines = self.line_actions(shot)
        cast, props, inputs, where = self.placements(scene, shot)
        picture = shot.picture
        look = shot.look.over(scene.look).over(self.m.project.look)
        inputs = list(inputs)
        line_params = []
        for line in lines:
            inputs.append(Input(f"timings:{line['index']}", ActionInput(line["speech"], "timings.json")))
            if line["visemes"]:
                inputs.append(Input(f"visemes:{line['index']}", ActionInput(line["visemes"], "visemes.json")))
            line_params.append({"index": line["index"], "character": line["character"], "text": line["text"],
                                "offset": line["offset"], "timings": f"timings:{line['index']}",
                                "visemes": f"visemes:{line['index']}" if line["visemes"] else None})
        seed = int(picture.params.get("seed", stable_seed(self.m.project.seed, shot.id, shot.take)))
        if picture.source in (PictureSource.STILL, PictureSource.KEYFRAME) and picture.image:
            inputs.append(self.asset_input("image", picture.image))
        if picture.source is PictureSource.FILE and picture.image:
            inputs.append(self.asset_input("clip", picture.image))
        maker = self.picture_backend(picture)
        if maker != DEFAULT_PICTURE:
            inputs.extend(get_backend(maker).plan_picture(self, shot, look, lines))
        params = {
            "fps": self.fps, "width": self.width, "height": self.height, "quality": self.quality.value,
            "duration": shot.duration, "padding": shot.padding, "source": picture.source.value,
            "look": picture.look.value, "background": scene.background, "time": scene.time,
            "lighting": look.lighting, "title": picture.title, "caption_lines": shot.captions,
            "ken_burns": _ken_burns(picture), "seed": seed,
            "camera": self.camera_params(shot, where), "cast": cast, "props": props, "lines": line_params,
        }
        origins = {"fps": "project.fps", "width": "project.resolution", "height": "project.resolution",
                   "duration": f"{shot.path}.duration", "padding": f"{shot.path}.padding",
                   "source": f"{shot.path}.picture.source", "look": f"{shot.path}.picture.look",
                   "background": f"{scene.path}.background", "time": f"{scene.path}.time",
                   "lighting": f"{shot.path}.look", "title": f"{shot.path}.picture.title",
                   "caption_lines": f"{shot.path}.captions", "ken_burns": f"{shot.path}.picture.ken_burns",
                   "seed": f"{shot.path}.picture.params.seed", "camera": f"{shot.path}.camera",
                   "cast": f"{shot.path}.cast", "props": f"{shot.path}.props", "lines": f"{shot.path}.dialogue"}
        # The layout (timing, speakers' places: shot.json) needs no frames, so the sound can
        # be mixed while the pictures render or generate. It reads the speech timings and
        # the project's own files; media other actions make only count by their presence.
        generated = sorted(i.name for i in inputs if isinstance(i.source, ActionInput)
                           and not i.name.startswith(("timings:", "visemes:")))
        self.layouts[shot.id] = self.add(Action(
            id=self.id("layout", shot.id), kind="layout", backend=OFFLINE,
            params={**params, "generated": generated},
            inputs=tuple(i for i in inputs if isinstance(i.source, FileInput) or i.name.startswith("timings:")),
            outputs=("shot.json",), loc=shot.loc, origins={**origins, "generated": f"{shot.path}.picture"},
        ))
        return self.add(Action(
            id=self.id("shot", shot.id), kind="shot", backend=OFFLINE, params=params,
            inputs=tuple(inputs), outputs=("shot.mp4", "thumb.png"),
            view={"shot.mp4": self.view(f"shots/{shot.id}.mp4"), "thumb.png": self.view(f"shots/{shot.id}.png")},
            loc=shot.loc, origins=origins,
        ))

    # ------------------------------------------------------------------ scenes and film

    def scene_actions(self, index: int, scene: Scene, shot_ids: list[str]) -> tuple[str, str]:
        inputs: dict[str, Input] = {}
        shots_params = []
        for shot, shot_action in zip(scene.shots, shot_ids):
            inputs[f"shot:{shot.id}"] = Input(f"shot:{shot.id}", ActionInput(self.layouts[shot.id], "shot.json"))
            line_entries = []
            for index_, line in enumerate(shot.dialogue):
                name = f"line:{shot.id}/{index_}"
                inputs[name] = Input(name, ActionInput(self.id("speech", shot.id, line=index_), "line.wav"))
                line_entries.append({"index": index_, "input": name, "volume": 1.0})
            sfx_entries = []
            for cue in shot.sfx:
                name = f"audio:{cue.asset}"
                inputs[name] = self.asset_input(name, cue.asset)
                sfx_entries.append({"input": name, "at": cue.at, "volume": cue.volume})
            shots_params.append({"id": shot.id, "lines": line_entries, "sfx": sfx_entries})

        def cue(audio_cue, music: bool):
            if audio_cue is None:
                return None
            name = f"audio:{audio_cue.asset}"
            inputs[name] = self.asset_input(name, audio_cue.asset)
            out = {"input": name, "volume": audio_cue.volume, "fade_in": audio_cue.fade_in,
                   "fade_out": audio_cue.fade_out, "start": audio_cue.start}
            if music:
                out["duck"] = audio_cue.duck
            return out

        params = {"sample_rate": self.sample_rate, "reverb": scene.reverb.value,
                  "ambience": cue(scene.ambience, False), "music": cue(scene.music, True), "shots": shots_params}
        mix = self.add(Action(
            id=self.id("mix", scene.id), kind="mix", backend=OFFLINE, params=params,
            inputs=tuple(inputs.values()), outputs=("mix.wav", *(f"{s}.wav" for s in STEMS)),
            view={"mix.wav": self.view(f"scenes/{scene.id}.wav")}, loc=scene.loc,
            origins={"reverb": f"{scene.path}.reverb", "ambience": f"{scene.path}.ambience",
                     "music": f"{scene.path}.music", "shots": f"{scene.path}.shots",
                     "sample_rate": "project.sample_rate"},
        ))
        video_inputs = [Input(f"shot:{shot.id}:video", ActionInput(action, "shot.mp4"))
                        for shot, action in zip(scene.shots, shot_ids)]
        scene_id = self.add(Action(
            id=self.id("scene", scene.id), kind="scene", backend=OFFLINE,
            params={"fps": self.fps, "width": self.width, "height": self.height,
                    "shots": [shot.id for shot in scene.shots]},
            inputs=(*video_inputs, Input("mix", ActionInput(mix, "mix.wav"))), outputs=("scene.mp4",),
            view={"scene.mp4": self.view(f"scenes/{scene.id}.mp4")}, loc=scene.loc,
            origins={"shots": f"{scene.path}.shots", "fps": "project.fps", "width": "project.resolution",
                     "height": "project.resolution"},
        ))
        return mix, scene_id

    def film_actions(self, scenes: list[tuple[Scene, str, str, list[str]]]) -> tuple[str, str]:
        """The film's sound (stems and master, from the mixes) and the film (pictures + master)."""
        layouts: list[Input] = []
        stems: list[Input] = []
        videos: list[Input] = []
        scene_params = []
        for scene, mix, scene_action, _shot_actions in scenes:
            videos.append(Input(f"scene:{scene.id}", ActionInput(scene_action, "scene.mp4")))
            stems.extend(Input(f"stems:{scene.id}:{stem}", ActionInput(mix, f"{stem}.wav")) for stem in STEMS)
            layouts.extend(Input(f"shot:{shot.id}", ActionInput(self.layouts[shot.id], "shot.json"))
                           for shot in scene.shots)
            scene_params.append({"id": scene.id, "shots": [shot.id for shot in scene.shots],
                                 "transition": {"type": scene.transition.type.value,
                                                "duration": scene.transition.duration}})
        project = self.m.project
        origins = {"loudness": "project.loudness", "title": "project.title", "scenes": "scenes",
                   "fps": "project.fps", "width": "project.resolution", "height": "project.resolution",
                   "sample_rate": "project.sample_rate"}
        sound = self.add(Action(
            id=self.id("sound"), kind="sound", backend=OFFLINE,
            params={"fps": self.fps, "sample_rate": self.sample_rate, "loudness": project.loudness,
                    "scenes": scene_params},
            inputs=(*stems, *layouts), outputs=("master.wav", *(f"{s}.wav" for s in STEMS), "master.m4a"),
            view={"master.wav": self.view("stems/master.wav"), **{f"{s}.wav": self.view(f"stems/{s}.wav") for s in STEMS}},
            loc=project.loc, origins=origins,
        ))
        film = self.add(Action(
            id=self.id("film"), kind="film", backend=OFFLINE,
            params={"fps": self.fps, "width": self.width, "height": self.height,
                    "sample_rate": self.sample_rate, "title": project.title, "scenes": scene_params},
            inputs=(*videos, *layouts, Input("master", ActionInput(sound, "master.m4a"))),
            outputs=("film.mp4", "film.json"), view={"film.mp4": self.view("film.mp4"), "film.json": self.view("film.json")},
            loc=project.loc, origins=origins,
        ))
        return sound, film

    def export_actions(self, sound: str, film: str, shot_actions: dict[str, str]) -> None:
        for export in self.m.exports:
            outputs = [f"{export.id}.mp4"]
            outputs += [f"{export.id}.{fmt}" for fmt in export.subtitles]
            outputs += [f"{export.id}.{_TIMELINE_EXT[fmt]}" for fmt in export.timeline]
            if export.poster:
                outputs.append("poster.png")
            if export.contact_sheet:
                outputs.append("contact_sheet.png")
            inputs = [Input("film", ActionInput(film, "film.mp4")), Input("cut", ActionInput(film, "film.json"))]
            inputs += [Input(f"thumb:{shot}", ActionInput(action, "thumb.png")) for shot, action in shot_actions.items()]
            if export.stems:
                inputs += [Input(f"stems:{stem}", ActionInput(sound, f"{stem}.wav")) for stem in (*STEMS, "master")]
                outputs += [f"stems/{stem}.wav" for stem in (*STEMS, "master")]
            path = next((f"exports[{i}]" for i, e in enumerate(self.m.exports) if e.id == export.id), "exports")
            self.add(Action(
                id=self.id("export", export.id), kind="export", backend=OFFLINE,
                params={"id": export.id, "preset": export.preset,
                        "resolution": list(export.resolution) if export.resolution else None, "reframe": export.reframe.value,
                        "subtitles": list(export.subtitles), "burn_captions": export.burn_captions,
                        "stems": export.stems, "timeline": list(export.timeline), "poster": export.poster,
                        "contact_sheet": export.contact_sheet, "title": self.m.project.title,
                        "fps": self.fps, "shots_dir": self.view("shots")},
                inputs=tuple(inputs), outputs=tuple(outputs),
                view={name: self.view(f"exports/{export.id}/{name}") for name in outputs},
                loc=export.loc, origins={key: path for key in ("preset", "resolution", "reframe", "subtitles", "burn_captions",
                                                                "stems", "timeline", "poster", "contact_sheet")},
            ))

    def expand(self) -> list[Action]:
        if not self.m.scenes:
            return []
        scenes = []
        shot_actions: dict[str, str] = {}
        for index, scene in enumerate(self.m.scenes):
            ids = [self.shot_actions(scene, shot) for shot in scene.shots]
            shot_actions.update({shot.id: action for shot, action in zip(scene.shots, ids)})
            mix, scene_action = self.scene_actions(index, scene, ids)
            scenes.append((scene, mix, scene_action, ids))
        sound, film = self.film_actions(scenes)
        self.export_actions(sound, film, shot_actions)
        if any(d.severity.value == "error" for d in self.problems):
            raise ManifestError(self.problems)
        return self.actions


_TIMELINE_EXT = {"otio": "otio", "fcpxml": "fcpxml", "fcp7xml": "xml", "edl": "edl"}


def _ken_burns(picture: Picture) -> dict | None:
    kb = picture.ken_burns
    if kb is None:
        return None
    return {"zoom_from": kb.zoom_from, "zoom_to": kb.zoom_to,
            "center_from": list(kb.center_from), "center_to": list(kb.center_to)}


def film_actions(manifest: Manifest, quality: Quality = Quality.FULL) -> list[Action]:
    """Every action that makes the film, its scenes, shots, lines and exports."""
    return _Expander(manifest, quality).expand()
