"""The validated raw document → the typed model (storybuild.model).

Runs only after the schema and cross-reference checks passed, so it trusts the shapes and
ids it reads and only fills in defaults. Every object gets its `loc` (where it is written)
and, where the model has one, its dotted `path`. Text fields come from the rendered
Jinja (jinjatext.py) when they held templates.
"""

from __future__ import annotations

import posixpath
from typing import Any, Mapping

from storybuild.backends.contract import DEFAULT_MOUTHS, DEFAULT_SPEECH
from storybuild.manifest.locations import LocIndex, LocTable, Path, dotted
from storybuild.model import (
    Asset, AssetKind, AudioCue, Backends, Binding, Camera, CameraKey, Character,
    Easing, Export, KenBurns, Line, Look, Manifest, Move, MoveType, Picture, PictureSource,
    Placement, Preset, Preview, Project, Prosody, Reframe, RenderLook, RetryPolicy, Reverb, Scene, SfxCue,
    Shot, Step, Transition, TransitionType, Voice, Workflow,
)


def _norm(path: str) -> str:
    # The checks confined every path to the project already; only normalise here.
    return posixpath.normpath(path)


def _vec(value: Any, default: tuple = (0.0, 0.0, 0.0)) -> tuple:
    return tuple(float(x) for x in value) if isinstance(value, list) else default


def _look_at(value: Any) -> Any:
    return _vec(value) if isinstance(value, list) else value


def _look(value: Any) -> Look:
    value = value or {}
    return Look(value.get("style"), value.get("lighting"), value.get("mood"), value.get("quality"))


class ModelBuilder:
    """Builds a Manifest from one validated, merged document."""

    def __init__(self, doc: dict, locs: LocIndex, rendered: Mapping[Path, str], root: str):
        self.doc, self.locs, self.rendered, self.root = doc, locs, rendered, root

    def loc(self, path: Path):
        """Where the entry at `path` is written (its key, for mapping members)."""
        return self.locs.key(path)

    def text(self, path: Path, raw: Any, default: str = "") -> str:
        """The text at `path`: rendered if it was a template, else as written."""
        return self.rendered.get(path, raw if isinstance(raw, str) else default)

    def build(self, file: str, files: tuple[str, ...], presets: dict[str, dict[str, Preset]]) -> Manifest:
        """The whole Manifest."""
        doc = self.doc
        backends = doc.get("backends", {})
        return Manifest(
            root=self.root, file=file, files=files, version=int(doc["version"]),
            project=self.project(doc["project"]),
            presets=presets,
            characters={cid: self.character(cid, c) for cid, c in doc.get("characters", {}).items()},
            assets={aid: self.asset(aid, a) for aid, a in doc.get("assets", {}).items()},
            scenes=tuple(self.scene(i, s) for i, s in enumerate(doc.get("scenes", []))),
            workflows={wid: self.workflow(wid, w) for wid, w in doc.get("workflows", {}).items()},
            exports=tuple(self.export(i, e) for i, e in enumerate(doc.get("exports", []))),
            steps=tuple(self.step(i, s) for i, s in enumerate(doc.get("steps", []))),
            backends=self.backends(backends),
            locs=LocTable(self.locs),
            raw=doc,
        )

    # ----------------------------------------------------------------- project and cast

    def project(self, p: dict) -> Project:
        """The `project` section."""
        width, height = p.get("resolution", [640, 360])
        preview = p.get("preview", {})
        return Project(
            title=self.text(("project", "title"), p["title"]), fps=int(p.get("fps", 24)),
            width=int(width), height=int(height), seed=int(p.get("seed", 0)), look=_look(p.get("look")),
            loudness=float(p.get("loudness", -16.0)), sample_rate=int(p.get("sample_rate", 48000)),
            preview=Preview(float(preview.get("scale", 0.5)), int(preview.get("fps", 12))),
            loc=self.loc(("project",)))

    def character(self, cid: str, c: dict) -> Character:
        """One character and its voice."""
        path = ("characters", cid)
        personality = c.get("personality", {})
        v = c.get("voice", {})
        voice = Voice(
            engine=v.get("engine", DEFAULT_SPEECH), name=v.get("name", "en-us"), rate=int(v.get("rate", 165)),
            pitch=int(v.get("pitch", 50)), volume=float(v.get("volume", 1.0)),
            emotions={name: Prosody(float(e.get("rate", 1.0)), float(e.get("pitch", 0.0)), float(e.get("volume", 1.0)))
                      for name, e in v.get("emotions", {}).items()},
            workflow=v.get("workflow"), path=dotted(path + ("voice",)))
        return Character(
            id=cid, name=self.text(path + ("name",), c.get("name"), cid),
            description=self.text(path + ("description",), c.get("description")),
            archetype=personality.get("archetype", ""), traits=tuple(personality.get("traits", ())),
            voice=voice, references=tuple(c.get("references", ())), model=c.get("model"),
            mouths=c.get("mouths", "default"), color=c.get("color", "#888888"),
            loc=self.loc(path), path=dotted(path))

    def asset(self, aid: str, a: dict) -> Asset:
        """One asset."""
        path = ("assets", aid)
        return Asset(
            id=aid, path=_norm(a["path"]), kind=AssetKind(a["kind"]), scale=float(a.get("scale", 1.0)),
            rotation=_vec(a.get("rotation")), position=_vec(a.get("position")), loop=bool(a.get("loop", False)),
            volume=float(a.get("volume", 1.0)), loc=self.loc(path), path_in_manifest=dotted(path))

    # ----------------------------------------------------------------- scenes

    def placement(self, path: Path, p: dict) -> Placement:
        """A character or model placed in a set, cast or props list."""
        return Placement(ref=p["ref"], position=_vec(p.get("position")), facing=float(p.get("facing", 0.0)),
                         scale=float(p.get("scale", 1.0)), loc=self.loc(path))

    def cue(self, path: Path, c: dict | None) -> AudioCue | None:
        """A scene's music or ambience cue."""
        if c is None:
            return None
        return AudioCue(asset=c["asset"], volume=float(c.get("volume", 1.0)), duck=float(c.get("duck", 1.0)),
                        fade_in=float(c.get("fade_in", 0.0)), fade_out=float(c.get("fade_out", 0.0)),
                        start=float(c.get("start", 0.0)), loc=self.loc(path))

    def scene(self, index: int, s: dict) -> Scene:
        """One scene and its shots."""
        path = ("scenes", index)
        transition = s.get("transition", {})
        return Scene(
            id=s["id"], location=self.text(path + ("location",), s.get("location")), time=s.get("time", "day"),
            look=_look(s.get("look")), ambience=self.cue(path + ("ambience",), s.get("ambience")),
            music=self.cue(path + ("music",), s.get("music")), reverb=Reverb(s.get("reverb", "none")),
            transition=Transition(TransitionType(transition.get("type", "cut")), float(transition.get("duration", 0.0))),
            set=tuple(self.placement(path + ("set", i), p) for i, p in enumerate(s.get("set", []))),
            background=s.get("background", "#202830"),
            shots=tuple(self.shot(path + ("shots", j), shot) for j, shot in enumerate(s.get("shots", []))),
            loc=self.loc(path), path=dotted(path))

    def shot(self, path: Path, s: dict) -> Shot:
        """One shot."""
        lipsync = s.get("lipsync", DEFAULT_MOUTHS)
        method, workflow = (lipsync, None) if isinstance(lipsync, str) else (lipsync["method"], lipsync.get("workflow"))
        duration = s.get("duration")
        return Shot(
            id=s["id"], duration=float(duration) if duration is not None else None,
            padding=float(s.get("padding", 0.5)),
            prompt=self.text(path + ("prompt",), s.get("prompt")), negative=self.text(path + ("negative",), s.get("negative")),
            look=_look(s.get("look")),
            cast=tuple(self.placement(path + ("cast", i), p) for i, p in enumerate(s.get("cast", []))),
            props=tuple(self.placement(path + ("props", i), p) for i, p in enumerate(s.get("props", []))),
            camera=self.camera(path + ("camera",), s.get("camera", {})),
            picture=self.picture(path + ("picture",), s.get("picture", {})),
            dialogue=tuple(self.line(path + ("dialogue", i), line) for i, line in enumerate(s.get("dialogue", []))),
            sfx=tuple(SfxCue(c["asset"], float(c.get("at", 0.0)), float(c.get("volume", 1.0)),
                             self.loc(path + ("sfx", i))) for i, c in enumerate(s.get("sfx", []))),
            lipsync=method, lipsync_workflow=workflow,
            takes=int(s.get("takes", 1)), take=int(s.get("take", 1)), captions=bool(s.get("captions", False)),
            loc=self.loc(path), path=dotted(path))

    def camera(self, path: Path, c: dict) -> Camera:
        """A shot's camera, its move and keyframes."""
        m = c.get("move", {})
        move = Move(type=MoveType(m.get("type", "static")), distance=float(m.get("distance", 0.0)),
                    angle=float(m.get("angle", 0.0)),
                    lens_to=float(m["lens_to"]) if "lens_to" in m else None,
                    easing=Easing(m.get("easing", "ease-in-out")))
        keys = tuple(
            CameraKey(at=float(k["at"]), position=_vec(k["position"]) if "position" in k else None,
                      look_at=_look_at(k.get("look_at")), lens=float(k["lens"]) if "lens" in k else None,
                      easing=Easing(k.get("easing", "ease-in-out")), loc=self.loc(path + ("keyframes", i)))
            for i, k in enumerate(c.get("keyframes", [])))
        return Camera(lens=float(c.get("lens", 35.0)), position=_vec(c.get("position"), (0.0, 1.6, 6.0)),
                      look_at=_look_at(c.get("look_at")), move=move, keyframes=keys, loc=self.loc(path))

    def picture(self, path: Path, p: dict) -> Picture:
        """Where a shot's picture comes from."""
        kb = p.get("ken_burns")
        ken_burns = None if kb is None else KenBurns(
            zoom_from=float(kb.get("zoom_from", 1.0)), zoom_to=float(kb.get("zoom_to", 1.15)),
            center_from=tuple(float(x) for x in kb.get("center_from", (0.5, 0.5))),
            center_to=tuple(float(x) for x in kb.get("center_to", (0.5, 0.5))))
        return Picture(
            source=PictureSource(p.get("source", "render3d")), backend=p.get("backend", "auto"),
            workflow=p.get("workflow"), image=p.get("image"), params=p.get("params", {}), ken_burns=ken_burns,
            look=RenderLook(p.get("look", "shaded")), title=self.text(path + ("title",), p.get("title")),
            loc=self.loc(path))

    def line(self, path: Path, line: dict) -> Line:
        """One line of dialogue."""
        return Line(character=line["character"], text=self.text(path + ("text",), line["text"]),
                    emotion=line.get("emotion", "neutral"), offset=float(line.get("offset", 0.0)),
                    lipsync=line.get("lipsync"), loc=self.loc(path), path=dotted(path))

    # ----------------------------------------------------------------- the rest

    def workflow(self, wid: str, w: dict) -> Workflow:
        """One workflow and its bindings."""
        path = ("workflows", wid)
        file = w["file"] if w["file"].startswith("builtin:") else _norm(w["file"])
        return Workflow(
            id=wid, file=file, capabilities=tuple(w.get("capabilities", ())),
            bindings=tuple(Binding(param, str(b["node"]), b["input"], self.loc(path + ("bindings", param)))
                           for param, b in w.get("bindings", {}).items()),
            models=tuple(w.get("models", ())), outputs=tuple(str(o) for o in w.get("outputs", ())),
            loc=self.loc(path))

    def export(self, index: int, e: dict) -> Export:
        """One export."""
        return Export(
            id=e["id"], preset=e.get("preset", "landscape"),
            resolution=tuple(e["resolution"]) if "resolution" in e else None, reframe=Reframe(e.get("reframe", "center")),
            subtitles=tuple(e.get("subtitles", ())), burn_captions=bool(e.get("burn_captions", False)),
            stems=bool(e.get("stems", False)), timeline=tuple(e.get("timeline", ())),
            poster=bool(e.get("poster", False)), contact_sheet=bool(e.get("contact_sheet", False)),
            loc=self.loc(("exports", index)))

    def step(self, index: int, s: dict) -> Step:
        """One custom command step."""
        path = ("steps", index)
        return Step(id=s["id"], argv=tuple(s["argv"]), inputs=tuple(_norm(p) for p in s.get("inputs", ())),
                    outputs=tuple(_norm(p) for p in s.get("outputs", ())), env=dict(s.get("env", {})),
                    loc=self.loc(path), path=dotted(path))

    def backends(self, b: dict) -> Backends:
        """The `backends` section (defaults when absent)."""
        retry = b.get("retry", {})
        return Backends(
            settings={name: section for name, section in b.items() if name not in ("retry", "limits")},
            retry=RetryPolicy(int(retry.get("max_attempts", 4)), float(retry.get("backoff", 0.5)),
                              float(retry.get("max_backoff", 30.0))),
            limits={k: int(v) for k, v in b.get("limits", {}).items()})
