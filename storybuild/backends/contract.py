"""The backend contract: the Protocol, the context an action runs in, and the registry.

A backend is a folder of storybuild/backends/ (or a package installed beside storybuild,
registered in the `storybuild.backends` entry-point group) that owns everything about
itself: its name and version, the capabilities it provides, the schema of its
`backends.<name>` settings, what a line becomes under it at plan time (`plan_speech`),
and its run functions. The core names no backend: it asks the registry.

Backends never see the graph, the lock or the cache. They get an ActionContext (params,
input paths, a scratch dir for outputs, a progress callback, a cancellation flag) and
return the files they wrote. Heavy libraries are imported inside `run`, never at module
import, so validating and no-op builds stay fast. docs/architecture.md walks through
adding one.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, runtime_checkable

from storybuild.errors import Cancelled, Diagnostic, SourceLoc, UsageError

ProgressFn = Callable[[float, str], None]  # (fraction 0..1, short message)


def _no_progress(fraction: float, message: str = "") -> None:
    return None


@dataclass
class ActionContext:
    """What a backend may touch while running one action."""

    action_id: str
    kind: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Path]  # input name → read-only file
    out_dir: Path  # scratch directory; write declared outputs here
    project_root: Path
    config: Mapping[str, Any] = field(default_factory=dict)  # the backend's section of `backends`
    progress: ProgressFn = _no_progress
    cancel_event: threading.Event = field(default_factory=threading.Event)
    jobs: int = 1  # the build's -j: size of a worker pool shared with the other running actions (frames)
    attempt: int = 1
    log: Callable[[str], None] = lambda line: None
    extra: dict[str, Any] = field(default_factory=dict)  # per-run facts a backend reports (server, timings)
    # A folder for derived data a backend may keep between builds (parsed models): content-
    # addressed by the backend, never an input or output, safe to delete at any time.
    cache_dir: Path | None = None
    # For backends that write their outputs in place (needs_scratch = False): the outputs
    # whose current file storybuild made (placed and unchanged since, or written by an
    # earlier run of this action that was cut short). Only these may be removed or
    # replaced; any other existing file at an output path is the writer's.
    owned: frozenset[str] = frozenset()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled if the build is being stopped; call between units of work."""
        if self.cancel_event.is_set():
            raise Cancelled(f"{self.action_id}: cancelled")

    def output(self, name: str) -> Path:
        """The path a declared output must be written to."""
        return self.out_dir / name


@runtime_checkable
class Backend(Protocol):
    """A thing that performs actions of some kinds.

    Optional, looked up with getattr (a backend without them does without):

    * ``config_schema``: the JSON Schema of its ``backends.<name>`` section, merged into
      the published schema; without one the section must be empty.
    * ``parse_config(raw) -> Mapping``: that section as the backend reads it (ctx.config
      holds it, and its ``config_key`` sees it); the raw mapping by default.
    * ``configured(config) -> bool``: set up to take work (``picture.backend: auto``
      picks a generative backend only when it is); True by default. ``setup_hint``
      says what to add when a manifest asks for it unconfigured.
    * ``setting_files(raw) -> {setting: path}``: project files its section (as written)
      names; validate requires them, watch mode follows them.
    * ``shipped_workflows``: ids of the workflows it ships (``file: builtin:<id>``).
    * ``plan_picture(ex, shot, look, lines) -> list[Input]``: add a generative shot's
      actions through the planner's expansion context (planning/film.py); return the
      inputs the shot's render takes from them. For backends with a generative capability.
    * ``plan_speech(request: SpeechRequest) -> dict``: the params of a line's speech
      action, for backends with the ``tts`` capability; ManifestError for a line it
      cannot speak (located). The action writes line.wav and timings.json (the format of
      storybuild.backends.shared.speech_timing), which the visemes action reads.
    * ``prepare(kinds, jobs)``: a build is about to run actions of ``kinds``.
    * ``dependencies``: distributions whose release can change its outputs (a model, a
      synthesiser): an upgrade replans, and its actions run again where its
      ``config_key`` names the release (as the built-in espeak's does).
    * ``needs_scratch = False``: its outputs are project paths it writes in place (custom
      steps); the runner gives it no scratch folder.
    * Backends that run work on servers: ``add_recorder(fn)``/``remove_recorder(fn)`` (each
      job attempt's record, with ``action_id`` and ``to_json()``, goes to the state DB),
      ``job_stats(records)`` (``storybuild stats``), ``models(manifest)`` (``storybuild
      backends models``) and ``check_live(manifest, actions)`` (``validate --backends``).
    * ``concurrency``: how many of its actions may run at once by default.
    """

    name: str
    version: str  # bump when outputs for the same inputs would change
    capabilities: frozenset[str]

    def config_key(self, action_kind: str, params: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """The part of the backend config that changes outputs (goes into the action key)."""
        ...

    def run(self, ctx: ActionContext) -> Mapping[str, Path]:
        """Perform the action; return output name → file written under ctx.out_dir."""
        ...


@dataclass(frozen=True)
class SpeechRequest:
    """One line of dialogue to be spoken, as the planner hands it to a tts backend's `plan_speech`."""

    text: str
    voice: Mapping[str, Any]  # engine, name, rate, pitch, volume: prosody already applied
    emotion: str
    sample_rate: int
    shot: str  # the shot's id, and the line's index in it: a stable identity for seeds
    index: int
    loc: SourceLoc | None = None
    manifest: Any = None  # the Manifest, for backends that read more of it (workflows)
    workflow: str | None = None  # the voice's workflow id, for backends that run workflows
    seed: int = 0  # the project's seed, for engines whose voices have noise
    voice_loc: SourceLoc | None = None  # where the character's voice is written (for its errors)


NO_SETTINGS: Mapping[str, Any] = {"type": "object", "additionalProperties": False}
# The built-ins a manifest gets when it names none: speech, and pictures of the animatic.
DEFAULT_SPEECH = "espeak"
DEFAULT_PICTURE = "embedded"
DEFAULT_MOUTHS = "embedded"  # lip-sync by mouth shapes (visemes) drawn on the animatic
OFFLINE = "embedded"  # the backend that draws, mixes and assembles the film with no server
STEPS = "command"  # the backend that runs a manifest's custom steps
NO_LIPSYNC = "none"
# What pictures are made with: a shot's `picture.backend` names a backend with one of these.
PICTURE_CAPABILITIES = frozenset({"render3d", "image", "text_to_image", "image_to_image", "image_to_video",
                                  "text_to_video"})


@dataclass(frozen=True)
class Declaration:
    """What a backend says about itself before it is loaded: enough to validate and plan."""

    name: str
    version: str
    capabilities: frozenset[str]
    spec: str  # "module:Class" of the Backend
    config_schema: Mapping[str, Any] = field(default_factory=lambda: NO_SETTINGS)
    voice_schema: Mapping[str, Any] | None = None  # extra rules for a voice spoken by it
    builtin: bool = False

# Built-in backends: the folders of storybuild/backends/ whose __init__ declares NAME,
# VERSION and BACKEND ("module:Class"), so that versions are known without importing the
# backends themselves (the no-op build reads them). Plug-ins extend this through the
# `storybuild.backends` entry-point group ("module:Class" of a Backend).
BUILTIN: tuple[str, ...] = ("command", "espeak", "embedded", "comfyui")
ENTRY_POINTS = "storybuild.backends"

_loaded: dict[str, Backend] = {}
_registered: dict[str, str] = {}  # name → "module:Class" of backends registered at run time (tests)
_lock = threading.Lock()


def _declaration(name: str) -> Any:
    return import_module(f"storybuild.backends.{name}")


def declaration(name: str) -> Declaration:
    """A backend's Declaration: a built-in's from its folder, a plug-in's from its class."""
    if name in BUILTIN and name not in _registered:
        pkg = _declaration(name)
        return Declaration(name, str(pkg.VERSION), frozenset(pkg.CAPABILITIES), str(pkg.BACKEND),
                           getattr(pkg, "CONFIG_SCHEMA", NO_SETTINGS), getattr(pkg, "VOICE_SCHEMA", None), True)
    backend = get_backend(name)
    return Declaration(name, str(backend.version), frozenset(backend.capabilities), backend_spec(name),
                       getattr(backend, "config_schema", NO_SETTINGS), getattr(backend, "voice_schema", None))


def declarations(builtin_only: bool = False) -> dict[str, Declaration]:
    """The Declaration of every installed backend (or only the built-ins), by name."""
    return {name: declaration(name) for name in (BUILTIN if builtin_only else installed())}


def builtin_versions() -> tuple[tuple[str, str], ...]:
    """(name, version) of every built-in backend, read from their folders' declarations."""
    return tuple((name, str(_declaration(name).VERSION)) for name in BUILTIN)


@lru_cache(maxsize=1)
def plugins() -> dict[str, str]:
    """Installed plug-in backends: entry-point name → "module:Class" (built-in names included)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINTS)}


def refused() -> dict[str, str]:
    """Plug-ins refused because they take a built-in backend's name: name → "module:Class"."""
    return {name: spec for name, spec in plugins().items() if name in BUILTIN and spec != _builtin_spec(name)}


def _builtin_spec(name: str) -> str:
    return str(_declaration(name).BACKEND)


def is_installed(name: str) -> bool:
    """Whether a manifest may name backend `name` (built-ins answer without a plug-in scan)."""
    return name in BUILTIN or name in _registered or name in installed()


def capabilities_of(name: str) -> frozenset[str]:
    """What backend `name` provides (a built-in's from its folder; a plug-in's from its class)."""
    if name in BUILTIN and name not in _registered:
        return frozenset(_declaration(name).CAPABILITIES)
    return frozenset(get_backend(name).capabilities)


def installed() -> dict[str, str]:
    """Every backend a manifest may name: name → "module:Class" (built-ins, then plug-ins)."""
    found = {name: _builtin_spec(name) for name in BUILTIN}
    for name, spec in plugins().items():
        found.setdefault(name, spec)
    found.update(_registered)
    return found


def backend_spec(name: str) -> str:
    """The "module:Class" a backend name refers to."""
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        if name in refused():
            raise UsageError(f"the plug-in backend {name!r} ({plugins()[name]}) takes the name of a built-in backend",
                             hint=f"uninstall it, or register it under another name in its "
                                  f"{ENTRY_POINTS!r} entry points")
        return _builtin_spec(name)
    spec = plugins().get(name)
    if spec is None:
        raise UsageError(f"unknown backend {name!r}", hint=f"installed backends: {', '.join(sorted(installed()))}")
    return spec


def get_backend(name: str) -> Backend:
    """The (cached) backend instance registered under `name`."""
    with _lock:
        if name not in _loaded:
            module_name, _, class_name = backend_spec(name).partition(":")
            backend = getattr(import_module(module_name), class_name)()
            if getattr(backend, "name", name) != name:
                raise UsageError(f"the backend registered as {name!r} calls itself {backend.name!r}",
                                 hint="a backend's `name` must match its registration")
            _loaded[name] = backend
        return _loaded[name]


def with_capability(*capabilities: str) -> list[str]:
    """The installed backends that provide any of `capabilities`, sorted."""
    wanted = set(capabilities)
    return sorted(name for name in installed() if capabilities_of(name) & wanted)


def dependencies(name: str) -> tuple[str, ...]:
    """The distributions backend `name` declares its outputs depend on."""
    source = _declaration(name) if name in BUILTIN and name not in _registered else get_backend(name)
    return tuple(getattr(source, "DEPENDENCIES", None) or getattr(source, "dependencies", ()) or ())


def _release(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def marks(names: Iterable[str]) -> tuple:
    """What a plan made with backends `names` rests on besides the manifest: each one's
    version and the installed release of each distribution it depends on. A cached plan is
    reused only while these are the same, so a version bump or an upgrade replans; only the
    backends a plan uses are asked (a plan of custom steps imports no plug-in)."""
    versions = dict(builtin_versions())
    out = []
    for name in sorted(set(names)):
        version = versions[name] if name in versions and name not in _registered else str(get_backend(name).version)
        out.append((name, version, tuple((dist, _release(dist)) for dist in dependencies(name))))
    return tuple(out)


def source_files(names: Iterable[str]) -> list[str]:
    """The files backends `names` are loaded from: a plug-in's module, and the metadata of
    each distribution a backend depends on (plug-ins' own included).

    A no-op build trusts the stamp only while these are unchanged, so upgrading or editing
    a plug-in (a version bump), or upgrading what a backend depends on, sends the next
    build down the full path. Built-ins' own code is covered by storybuild's version.
    """
    import sys

    files = []
    for name in sorted(set(names)):
        dists = list(dependencies(name))
        if name not in BUILTIN or name in _registered:
            module_name = backend_spec(name).partition(":")[0]
            path = getattr(sys.modules.get(module_name), "__file__", None)
            if path:
                files.append(os.path.abspath(path))
            dists += _distributions_of(module_name)
        files += [meta for meta in map(_metadata_file, dists) if meta]
    return sorted(set(files))


def _metadata_file(dist: str) -> str | None:
    """The METADATA (or an egg's PKG-INFO) of an installed distribution, rewritten on upgrade."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        folder = getattr(distribution(dist), "_path", None)  # PathDistribution: its .dist-info
    except PackageNotFoundError:
        return None
    for name in ("METADATA", "PKG-INFO"):
        path = os.path.join(str(folder), name) if folder is not None else ""
        if path and os.path.exists(path):
            return os.path.abspath(path)
    return None


def _distributions_of(module_name: str) -> list[str]:
    """The installed distributions that provide the top-level package of `module_name`."""
    from importlib.metadata import packages_distributions

    return list(packages_distributions().get(module_name.partition(".")[0], []))


def in_place(name: str) -> bool:
    """Whether backend `name` writes its outputs at their project paths (no scratch folder)."""
    return not getattr(get_backend(name), "needs_scratch", True)


def settings_of(backends: Any, name: str) -> Mapping[str, Any]:
    """Backend `name`'s section of a manifest's `backends` (model.Backends, or its sections
    as written), as the backend reads it."""
    sections = getattr(backends, "settings", backends)
    raw = sections.get(name) if isinstance(sections, Mapping) else None
    raw = raw if isinstance(raw, Mapping) else {}
    parse = getattr(get_backend(name), "parse_config", None)
    return parse(raw) if parse is not None else raw


def configured(backends: Any, name: str) -> bool:
    """Whether backend `name` is set up to take work in this manifest."""
    check = getattr(get_backend(name), "configured", None)
    return True if check is None else bool(check(settings_of(backends, name)))


def setting_files(sections: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """((backends, name, setting), path) of every project file the backends' sections name.

    `sections` is the manifest's `backends` as written; sections of unknown backends and
    values that are not text are left to the schema, which reports them.
    """
    found = []
    for name, raw in sections.items():
        if name in ("retry", "limits") or not is_installed(name) or not isinstance(raw, Mapping):
            continue
        files = getattr(get_backend(name), "setting_files", None)
        for setting, path in (files(raw) if files is not None else {}).items():
            found.append((("backends", name, *setting.split(".")), path))
    return found


def shipped_workflows() -> frozenset[str]:
    """Ids of the workflows the installed backends ship (a manifest names one as builtin:<id>)."""
    ids: set[str] = set()
    for name in installed():
        source = _declaration(name) if name in BUILTIN and name not in _registered else get_backend(name)
        ids.update(getattr(source, "SHIPPED_WORKFLOWS", None) or getattr(source, "shipped_workflows", ()) or ())
    return frozenset(ids)


def generative_backend(backends: Any, source: str, asked: str) -> str | Diagnostic:
    """Who makes a picture of `source`, asked for as `asked` (`auto` or a backend name).

    Sources that are not generative, and generative ones with `auto` and no configured
    backend with the capability, are the animatic's (DEFAULT_PICTURE). A named backend
    that lacks the capability or is not configured is a Diagnostic (without a location):
    validation and planning both ask here, so they never disagree.
    """
    from storybuild.model import GENERATIVE_CAPABILITY

    capability = GENERATIVE_CAPABILITY.get(source)
    if asked == DEFAULT_PICTURE or (capability is None and asked == "auto"):
        return DEFAULT_PICTURE
    if capability is None:
        return Diagnostic(f"a {source} picture is drawn by the animatic; {asked} makes only generated pictures",
                          None, f"remove `backend: {asked}`, or choose a generated source "
                          "(keyframe, image_to_video, text_to_video)", code="backend")
    if asked == "auto":
        return next((name for name in with_capability(capability) if configured(backends, name)), DEFAULT_PICTURE)
    if capability not in capabilities_of(asked):
        return Diagnostic(f"{asked} cannot make a {source} picture: it has no {capability} capability", None,
                          f"backends that have it: {', '.join(with_capability(capability)) or 'none installed'}; "
                          "or set backend: auto", code="backend")
    if not configured(backends, asked):
        hint = getattr(get_backend(asked), "setup_hint", f"configure backends.{asked}")
        return Diagnostic(f"{asked} cannot make this {source} picture: it is not set up",
                          None, f"{hint}, or set backend: auto", code="backend")
    return asked


def register(name: str, backend: Backend) -> None:
    """Register an instance under `name` (tests)."""
    with _lock:
        _loaded[name] = backend
        _registered[name] = f"{type(backend).__module__}:{type(backend).__name__}"
