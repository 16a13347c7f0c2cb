"""The typed model: a validated manifest and the actions planned from it.

Everything here is a frozen dataclass or an Enum. manifest.py builds a Manifest once,
at the boundary, after schema and cross-reference checks; everything downstream trusts it.
Every manifest object carries `loc` (where it was written) and `path` (its dotted path in
the manifest, e.g. ``scenes[0].shots[1]``), so later errors and rebuild reasons can point
back at the exact line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from storybuild.errors import Diagnostic, SourceLoc

Vec3 = tuple[float, float, float]
NOWHERE = SourceLoc("<none>")

# A film's sound in stems, in this order: each scene's mix writes one WAV of each, the
# film's sound joins them (and adds the master mix), exports copy them out.
STEMS = ("dialogue", "music", "sfx", "ambience")


# --------------------------------------------------------------------------- enums


class Easing(str, Enum):
    LINEAR = "linear"
    EASE_IN = "ease-in"
    EASE_OUT = "ease-out"
    EASE_IN_OUT = "ease-in-out"


class MoveType(str, Enum):
    STATIC = "static"
    DOLLY = "dolly"  # move along the view direction by `distance`
    TRUCK = "truck"  # move sideways by `distance`
    PEDESTAL = "pedestal"  # move vertically by `distance`
    PAN = "pan"  # rotate the view left/right by `angle` degrees
    TILT = "tilt"  # rotate the view up/down by `angle` degrees
    ORBIT = "orbit"  # circle the look-at point by `angle` degrees
    CRANE = "crane"  # rise by `distance` while keeping the look-at point framed
    ZOOM = "zoom"  # change the lens to `lens_to` mm


class PictureSource(str, Enum):
    RENDER3D = "render3d"  # the set and cast rendered from the shot's camera
    CARD = "card"  # 2D character cards / puppets with mouths over a backdrop
    STILL = "still"  # a provided image with a Ken Burns move
    TITLE = "title"  # a title card
    KEYFRAME = "keyframe"  # a generated keyframe image (text_to_image) with a Ken Burns move
    IMAGE_TO_VIDEO = "image_to_video"  # a generated keyframe animated into a clip
    TEXT_TO_VIDEO = "text_to_video"  # a generated clip from the prompt alone
    FILE = "file"  # a provided video file


# The capability a generative picture needs of the backend that makes it. Without such a
# backend configured these sources are drawn as the 3D animatic of the shot.
GENERATIVE_CAPABILITY: Mapping[str, str] = {
    "keyframe": "text_to_image",
    "image_to_video": "image_to_video",
    "text_to_video": "text_to_video",
}


class TransitionType(str, Enum):
    CUT = "cut"
    CROSSFADE = "crossfade"
    FADE = "fade"  # fade through black
    WIPE = "wipe"


class Reverb(str, Enum):
    NONE = "none"
    ROOM = "room"
    HALL = "hall"
    OUTDOOR = "outdoor"


class AssetKind(str, Enum):
    MODEL = "model"
    IMAGE = "image"
    VIDEO = "video"
    MUSIC = "music"
    SFX = "sfx"
    AMBIENCE = "ambience"
    AUDIO = "audio"
    MOUTHS = "mouths"  # a directory of mouth-shape images A..H, X
    LIPSYNC = "lipsync"  # a Rhubarb Lip Sync JSON file


class RenderLook(str, Enum):
    SHADED = "shaded"
    TOON = "toon"  # flat bands and outlines, for storyboards


class Reframe(str, Enum):
    CENTER = "center"
    SPEAKER = "speaker"


class Quality(str, Enum):
    FULL = "full"
    PREVIEW = "preview"


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Look:
    """Prompt presets by category; None means inherit from the enclosing scene/project."""

    style: str | None = None
    lighting: str | None = None
    mood: str | None = None
    quality: str | None = None

    def over(self, base: "Look") -> "Look":
        """This look with unset fields taken from `base`."""
        return Look(
            self.style or base.style,
            self.lighting or base.lighting,
            self.mood or base.mood,
            self.quality or base.quality,
        )


@dataclass(frozen=True)
class Preset:
    """A prompt preset: a Jinja template that receives `prompt` and returns it enhanced."""

    category: str  # style | lighting | mood | quality
    id: str
    template: str
    negative: str = ""
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Preview:
    scale: float = 0.5
    fps: int = 12


@dataclass(frozen=True)
class Project:
    title: str
    fps: int = 24
    width: int = 640
    height: int = 360
    seed: int = 0
    look: Look = Look()
    loudness: float = -16.0  # LUFS of the master
    sample_rate: int = 48000
    preview: Preview = Preview()
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Prosody:
    """How an emotion shifts a voice: rate and volume multiply, pitch adds."""

    rate: float = 1.0
    pitch: float = 0.0
    volume: float = 1.0


@dataclass(frozen=True)
class Voice:
    engine: str = ""  # the backend that speaks (tts); "" for the default (backends.contract.DEFAULT_SPEECH)
    name: str = "en-us"
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..99, 50 neutral
    volume: float = 1.0
    emotions: Mapping[str, Prosody] = field(default_factory=dict)
    workflow: str | None = None  # for engines that run workflows
    path: str = ""


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    description: str = ""
    archetype: str = ""
    traits: tuple[str, ...] = ()
    voice: Voice = Voice()
    references: tuple[str, ...] = ()  # image asset ids
    model: str | None = None  # 3D model asset id; None → a generated puppet
    mouths: str = "default"  # built-in mouth set name or a `mouths` asset id
    color: str = "#888888"
    loc: SourceLoc = NOWHERE
    path: str = ""


@dataclass(frozen=True)
class Asset:
    id: str
    path: str  # project-relative, posix
    kind: AssetKind
    scale: float = 1.0
    rotation: Vec3 = (0.0, 0.0, 0.0)  # degrees, XYZ
    position: Vec3 = (0.0, 0.0, 0.0)
    loop: bool = False
    volume: float = 1.0
    loc: SourceLoc = NOWHERE
    path_in_manifest: str = ""


@dataclass(frozen=True)
class Placement:
    """A character or prop placed in a shot/scene: position in metres, facing in degrees."""

    ref: str  # character id or model asset id
    position: Vec3 = (0.0, 0.0, 0.0)
    facing: float = 0.0  # yaw in degrees; 0 faces the camera's default side (+Z)
    scale: float = 1.0
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class CameraKey:
    at: float  # fraction 0..1 of the shot's duration (durations may fit the dialogue)
    position: Vec3 | None = None
    look_at: str | Vec3 | None = None  # character/asset id or a point
    lens: float | None = None  # mm
    easing: Easing = Easing.EASE_IN_OUT  # easing of the segment that ends here
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Move:
    type: MoveType = MoveType.STATIC
    distance: float = 0.0
    angle: float = 0.0
    lens_to: float | None = None
    easing: Easing = Easing.EASE_IN_OUT


@dataclass(frozen=True)
class Camera:
    lens: float = 35.0
    position: Vec3 = (0.0, 1.6, 6.0)
    look_at: str | Vec3 | None = None
    move: Move = Move()
    keyframes: tuple[CameraKey, ...] = ()
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class KenBurns:
    zoom_from: float = 1.0
    zoom_to: float = 1.15
    center_from: tuple[float, float] = (0.5, 0.5)
    center_to: tuple[float, float] = (0.5, 0.5)


@dataclass(frozen=True)
class Picture:
    source: PictureSource = PictureSource.RENDER3D
    backend: str = "auto"  # auto, or the backend that makes a generative picture
    workflow: str | None = None  # a workflow id; None → routed by capability
    image: str | None = None  # image/video asset id for still, image_to_video, file
    params: Mapping[str, Any] = field(default_factory=dict)  # steps, cfg, seed, width, height, sampler, frames, controlnet, loras…
    ken_burns: KenBurns | None = None
    look: RenderLook = RenderLook.SHADED
    title: str = ""  # text of a title card
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Line:
    character: str
    text: str
    emotion: str = "neutral"
    offset: float = 0.0  # seconds after the previous line ends (or the shot starts)
    lipsync: str | None = None  # a `lipsync` asset id: a Rhubarb JSON file that replaces ours
    loc: SourceLoc = NOWHERE
    path: str = ""


@dataclass(frozen=True)
class SfxCue:
    asset: str
    at: float = 0.0  # seconds from the start of the shot
    volume: float = 1.0
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Shot:
    id: str
    duration: float | None = None  # None → fit to its dialogue (plus `padding`)
    padding: float = 0.5
    prompt: str = ""  # rendered (Jinja) text of the shot; presets are applied by the planner
    negative: str = ""
    look: Look = Look()
    cast: tuple[Placement, ...] = ()
    props: tuple[Placement, ...] = ()
    camera: Camera = Camera()
    picture: Picture = Picture()
    dialogue: tuple[Line, ...] = ()
    sfx: tuple[SfxCue, ...] = ()
    lipsync: str = ""  # "none", or the backend that makes mouths (shapes, a workflow); "" for the default
    lipsync_workflow: str | None = None
    takes: int = 1
    take: int = 1  # the chosen take (1-based)
    captions: bool = False
    loc: SourceLoc = NOWHERE
    path: str = ""


@dataclass(frozen=True)
class AudioCue:
    asset: str
    volume: float = 1.0
    duck: float = 1.0  # gain under dialogue (music only); 1.0 = no ducking
    fade_in: float = 0.0
    fade_out: float = 0.0
    start: float = 0.0  # offset into the asset, seconds
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Transition:
    type: TransitionType = TransitionType.CUT
    duration: float = 0.0


@dataclass(frozen=True)
class Scene:
    id: str
    location: str = ""
    time: str = "day"
    look: Look = Look()
    ambience: AudioCue | None = None
    music: AudioCue | None = None
    reverb: Reverb = Reverb.NONE
    transition: Transition = Transition()  # into the next scene
    set: tuple[Placement, ...] = ()  # props present in every shot of the scene
    background: str = "#202830"  # sky/backdrop colour for renders
    shots: tuple[Shot, ...] = ()
    loc: SourceLoc = NOWHERE
    path: str = ""


@dataclass(frozen=True)
class Export:
    id: str
    preset: str = "landscape"  # landscape (16:9 1080p) | vertical (9:16) | square | source
    resolution: tuple[int, int] | None = None  # overrides the preset's size
    reframe: Reframe = Reframe.CENTER
    subtitles: tuple[str, ...] = ()  # srt, vtt
    burn_captions: bool = False
    stems: bool = False
    timeline: tuple[str, ...] = ()  # otio, fcpxml, fcp7xml, edl
    poster: bool = False
    contact_sheet: bool = False
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Binding:
    """Where a manifest parameter goes in a workflow: node (title or id) and input name."""

    param: str
    node: str
    input: str
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Workflow:
    id: str
    file: str  # project-relative API or UI format JSON; "builtin:<name>" for shipped templates
    capabilities: tuple[str, ...] = ()
    bindings: tuple[Binding, ...] = ()
    models: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # node titles/ids whose outputs are the result; empty → all
    loc: SourceLoc = NOWHERE


@dataclass(frozen=True)
class Step:
    """A custom command: argv (never a shell), declared project-relative inputs and outputs."""

    id: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    loc: SourceLoc = NOWHERE
    path: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff: float = 0.5  # seconds before the 2nd attempt; doubles, with jitter
    max_backoff: float = 30.0


@dataclass(frozen=True)
class Backends:
    """The `backends` section: retries, limits, and each backend's own settings as written."""

    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # backend name → its section
    retry: RetryPolicy = RetryPolicy()
    limits: Mapping[str, int] = field(default_factory=dict)  # backend name → max concurrent actions


@dataclass(frozen=True)
class Manifest:
    """A whole validated film: the root file and its includes, merged."""

    root: str  # absolute project directory
    file: str  # the root manifest, relative to root
    files: tuple[str, ...]  # every manifest file read (root + includes), relative to root
    version: int
    project: Project
    presets: Mapping[str, Mapping[str, Preset]]  # category → id → preset (shipped + manifest)
    characters: Mapping[str, Character]
    assets: Mapping[str, Asset]
    scenes: tuple[Scene, ...]
    workflows: Mapping[str, Workflow]
    exports: tuple[Export, ...]
    steps: tuple[Step, ...]
    backends: Backends = Backends()
    locs: Mapping[str, SourceLoc] = field(default_factory=dict)  # dotted path → where it was written
    raw: Mapping[str, Any] = field(default_factory=dict)  # the merged, validated document
    warnings: tuple[Diagnostic, ...] = ()  # problems that did not stop the load (off-screen voices…)

    def loc_of(self, path: str) -> SourceLoc | None:
        """The location of a dotted manifest path, or of its nearest written ancestor."""
        while path:
            if path in self.locs:
                return self.locs[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return self.locs.get(path)

    def shots(self) -> list[tuple[Scene, Shot]]:
        return [(scene, shot) for scene in self.scenes for shot in scene.shots]


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class FileInput:
    """A source file in the project (project-relative posix path)."""

    path: str
    origin: str = ""  # the manifest path that names the file (e.g. "assets.gull"), for errors


@dataclass(frozen=True)
class ActionInput:
    """An output of another action."""

    action: str
    output: str


@dataclass(frozen=True)
class Input:
    name: str  # how the backend refers to it (ctx.inputs[name])
    source: FileInput | ActionInput


@dataclass(frozen=True)
class Action:
    """One unit of work. Its key hashes kind, backend+version+config, params and input digests.

    `origins` maps a top-level param name to the manifest path it came from, so a changed
    param can be reported as "input changed: characters.mara.voice.rate (storybuild.yaml:14:9)".
    `outputs` are file names the backend must write; `view` says where each appears
    under build/ (output name → path relative to build/; outputs not named stay in the cache).
    """

    id: str  # e.g. "speech/harbor-01/0", "shot/harbor-01", "mix/harbor", "film"
    kind: str  # speech | visemes | layout | shot | keyframe | clip | lipsync | mix | scene | sound | film | export | step
    backend: str  # a name in the backend registry (backends/contract.py)
    params: Mapping[str, Any]
    inputs: tuple[Input, ...] = ()
    outputs: tuple[str, ...] = ()
    view: Mapping[str, str] = field(default_factory=dict)
    loc: SourceLoc = NOWHERE
    origins: Mapping[str, str] = field(default_factory=dict)
    pinned: bool = False  # non-deterministic output: keep the locked result until inputs change

    def deps(self) -> set[str]:
        return {i.source.action for i in self.inputs if isinstance(i.source, ActionInput)}
