"""Render the Jinja in a manifest's text fields.

Text fields: project.title; characters.*.name and .description; scenes[].location; and
per shot: prompt, negative, picture.title and dialogue[].text. Other strings (ids, paths,
argv) are never templates.

Every template sees `project`, `characters`, `assets` and `scenes`, plus the `scene`,
`shot` and `line` it belongs to. Those are read-only views of the document in which text
fields are themselves rendered on first access, so `{{ characters.theo.description }}`
yields theo's description with its own Jinja already applied; a template that refers back
to itself is reported as a cycle.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from storybuild.errors import Diagnostic, ManifestError
from storybuild.manifest.locations import LocIndex, Path, dotted
from storybuild.manifest.templating import is_template, render

_SHOT_TEXT = ("prompt", "negative")


def is_text_field(path: Path) -> bool:
    """Whether the value at `path` is a text field that may hold Jinja."""
    n = len(path)
    if n == 2:
        return path == ("project", "title")
    if n == 3:
        return (path[0] == "characters" and path[2] in ("name", "description")) or \
            (path[0] == "scenes" and path[2] == "location")
    if n >= 5 and path[0] == "scenes" and path[2] == "shots":
        return (n == 5 and path[4] in _SHOT_TEXT) or (n == 6 and path[4:] == ("picture", "title")) or \
            (n == 7 and path[4] == "dialogue" and path[6] == "text")
    return False


def text_paths(doc: dict) -> Iterator[Path]:
    """Paths of the text fields in `doc` that hold Jinja markup."""
    def templated(node: Any, path: Path) -> Iterator[Path]:
        if isinstance(node, str) and is_template(node):
            yield path

    yield from templated(_get(doc, ("project", "title")), ("project", "title"))
    characters = doc.get("characters")
    for cid, character in characters.items() if isinstance(characters, dict) else ():
        if isinstance(character, dict):
            for key in ("name", "description"):
                yield from templated(character.get(key), ("characters", cid, key))
    scenes = doc.get("scenes")
    for i, scene in enumerate(scenes if isinstance(scenes, list) else ()):
        if not isinstance(scene, dict):
            continue
        yield from templated(scene.get("location"), ("scenes", i, "location"))
        shots = scene.get("shots")
        for j, shot in enumerate(shots if isinstance(shots, list) else ()):
            if not isinstance(shot, dict):
                continue
            base = ("scenes", i, "shots", j)
            for key in _SHOT_TEXT:
                yield from templated(shot.get(key), base + (key,))
            yield from templated(_get(shot, ("picture", "title")), base + ("picture", "title"))
            dialogue = shot.get("dialogue")
            for k, line in enumerate(dialogue if isinstance(dialogue, list) else ()):
                if isinstance(line, dict):
                    yield from templated(line.get("text"), base + ("dialogue", k, "text"))


def render_texts(doc: dict, locs: LocIndex) -> tuple[dict[Path, str], list[Diagnostic]]:
    """Render every templated text field: (path → rendered text, diagnostics)."""
    renderer = _Renderer(doc, locs)
    for path in text_paths(doc):
        renderer.text(path)
    return renderer.done, renderer.diags


def _get(node: Any, path: Path) -> Any:
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node


class _Renderer:
    def __init__(self, doc: dict, locs: LocIndex):
        self.doc, self.locs = doc, locs
        self.done: dict[Path, str] = {}
        self.active: list[Path] = []
        self.failed: set[Path] = set()
        self.diags: list[Diagnostic] = []

    def text(self, path: Path) -> str:
        """The rendered text at `path` (memoised; the raw text if rendering failed)."""
        if path in self.done:
            return self.done[path]
        raw = _get(self.doc, path)
        if path in self.failed or not isinstance(raw, str):
            return raw
        if path in self.active:
            # Report the cycle once, at the field that started it; the outer template then
            # sees this field's raw text and finishes normally.
            cycle = " → ".join(dotted(p) for p in self.active[self.active.index(path):] + [path])
            self.diags.append(Diagnostic(f"template refers to itself: {cycle}", self.locs.text(path),
                                         "a text field cannot use its own value", code="template-cycle"))
            self.failed.add(path)
            return raw
        self.active.append(path)
        try:
            out = render(raw, self.context(path), self.locs.text(path))
        except ManifestError as err:
            self.diags.extend(err.diagnostics)
            self.failed.add(path)
            return raw
        finally:
            self.active.pop()
        if path in self.failed:
            return raw
        self.done[path] = out
        return out

    def context(self, path: Path) -> dict[str, Any]:
        ctx: dict[str, Any] = {key: _view(self, self.doc.get(key), (key,))
                               for key in ("project", "characters", "assets", "scenes")}
        if path[0] == "scenes":
            ctx["scene"] = _view(self, _get(self.doc, path[:2]), path[:2])
            if len(path) > 4 and path[2] == "shots":
                ctx["shot"] = _view(self, _get(self.doc, path[:4]), path[:4])
                if len(path) > 6 and path[4] == "dialogue":
                    ctx["line"] = _view(self, _get(self.doc, path[:6]), path[:6])
        return {k: v for k, v in ctx.items() if v is not None}


def _view(renderer: _Renderer, node: Any, path: Path) -> Any:
    if isinstance(node, dict):
        return _MapView(renderer, node, path)
    if isinstance(node, list):
        return _ListView(renderer, node, path)
    if isinstance(node, str) and is_text_field(path) and is_template(node):
        return renderer.text(path)
    return node


class _MapView(Mapping[str, Any]):
    """A read-only view of a mapping in the document, rendering text fields on access."""

    def __init__(self, renderer: _Renderer, node: dict, path: Path):
        self._renderer, self._node, self._path = renderer, node, path

    def __getitem__(self, key: str) -> Any:
        return _view(self._renderer, self._node[key], self._path + (key,))

    def __iter__(self) -> Iterator[str]:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def __str__(self) -> str:
        return str({key: self[key] for key in self._node})


class _ListView(Sequence[Any]):
    """A read-only view of a list in the document."""

    def __init__(self, renderer: _Renderer, node: list, path: Path):
        self._renderer, self._node, self._path = renderer, node, path

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._node)))]
        return _view(self._renderer, self._node[index], self._path + (index % len(self._node),))

    def __len__(self) -> int:
        return len(self._node)

    def __str__(self) -> str:
        return str(list(self))
