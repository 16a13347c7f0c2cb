"""Action ids, built and read in one place.

    [preview/]<kind>/<shot>/<line>        a line's actions: speech, visemes
    [preview/]<kind>/<owner>[/take<n>]    a shot's, scene's or export's: shot, keyframe, mix, …
    [preview/]<kind>                      the film's own: sound, film
    step/<id>                             a custom step

The planner builds ids with `action_id`; targets, the preview page and the reports read
them with `parse`, never with patterns of their own, so a new action kind (a backend's
`upscale/<shot>`) is found under its shot like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

PREVIEW = "preview/"
STEP = "step"
# Where a bare target name is looked for, in order: an action, then a shot's, a scene's,
# an export's and a step's (`storybuild build harbour` builds shot/harbour).
NAMESPACES = ("", "shot/", "scene/", "export/", "step/")


@dataclass(frozen=True)
class ActionId:
    """An action id taken apart."""

    kind: str
    owner: str = ""  # the shot, scene, export or step it belongs to ("" for the film's own)
    line: int | None = None  # a line's index in its shot
    take: int | None = None  # one of several takes of a generated stage
    preview: bool = False  # an action of the low-resolution preview pass

    @property
    def quality(self) -> str:
        """"preview" or "full"."""
        return "preview" if self.preview else "full"

    def __str__(self) -> str:
        parts = [self.kind] + ([self.owner] if self.owner else [])
        if self.line is not None:
            parts.append(str(self.line))
        if self.take is not None:
            parts.append(f"take{self.take}")
        return (PREVIEW if self.preview else "") + "/".join(parts)


def action_id(kind: str, owner: str = "", *, line: int | None = None, take: int | None = None,
              preview: bool = False) -> str:
    """The id of an action of `kind` belonging to `owner` (see the module's table)."""
    return str(ActionId(kind, owner, line, take, preview))


def step_id(step: str) -> str:
    """The id of custom step `step`."""
    return action_id(STEP, step)


def parse(text: str) -> ActionId:
    """An action id taken apart (the inverse of `action_id`)."""
    preview = text.startswith(PREVIEW)
    kind, _, rest = (text[len(PREVIEW):] if preview else text).partition("/")
    owner, _, tail = rest.partition("/")
    line = take = None
    if tail.startswith("take") and tail[4:].isdigit():
        take = int(tail[4:])
    elif tail.isdigit():
        line = int(tail)
    elif tail:
        owner = rest  # an owner id never holds "/", but be exact about what is not ours
    return ActionId(kind, owner, line, take, preview)


def split_quality(text: str) -> tuple[str, str]:
    """("preview" | "full", the id without its quality prefix)."""
    return ("preview", text[len(PREVIEW):]) if text.startswith(PREVIEW) else ("full", text)
