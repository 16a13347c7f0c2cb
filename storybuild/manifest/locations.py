"""Where things were written: dotted manifest paths and their file:line:col.

A path into a document is a tuple of keys (str) and list indexes (int), e.g.
``("scenes", 0, "shots", 1)``; `dotted` spells it ``scenes[0].shots[1]`` as the model and
rebuild reasons do. Positions are stored as plain ``(file, line, col)`` tuples, because a
big film has tens of thousands of nodes, and become SourceLocs only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

from storybuild.errors import SourceLoc

Path = tuple  # a path into the document: keys (str) and list indexes (int)
Pos = tuple  # (file, line, col), 1-based


def dotted(path: Path) -> str:
    """``("scenes", 0, "shots")`` → ``scenes[0].shots``."""
    out = []
    for part in path:
        if type(part) is int:
            out.append(f"[{part}]")
        elif out:
            out.append("." + part)
        else:
            out.append(part)
    return "".join(out)


@dataclass
class LocIndex:
    """Where each node of a document was written: path → (file, line, col).

    `values` holds the start of every value; `keys` the key of every mapping member;
    `texts` the first character of the content of strings that may hold Jinja (`{`), so a
    template error can be mapped to its line in the file.
    """

    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    texts: dict[Path, Pos] = field(default_factory=dict)

    def value(self, path: Path) -> SourceLoc | None:
        """Where the value at `path` (or its nearest written ancestor) starts."""
        return _nearest(self.values, tuple(path))

    def key(self, path: Path) -> SourceLoc | None:
        """Where the key of the member at `path` is written, else where its value starts."""
        path = tuple(path)
        pos = self.keys.get(path)
        return SourceLoc(*pos) if pos else _nearest(self.values, path)

    def text(self, path: Path) -> SourceLoc | None:
        """Where the content of the string at `path` starts (inside quotes or a block)."""
        pos = self.texts.get(tuple(path))
        return SourceLoc(*pos) if pos else self.value(path)


def _nearest(table: dict[Path, Pos], path: Path) -> SourceLoc | None:
    while True:
        pos = table.get(path)
        if pos is not None:
            return SourceLoc(*pos)
        if not path:
            return None
        path = path[:-1]

class LocTable(Mapping[str, SourceLoc]):
    """Dotted path → SourceLoc of a whole manifest, converting positions on access.

    A member of a mapping maps to where its key is written (``rate:``); list items map to
    where the item starts.
    """

    def __init__(self, locs: LocIndex):
        self._locs = locs
        self._built: dict[str, Pos] | None = None

    @property
    def _table(self) -> dict[str, Pos]:
        # Built on first use: `validate` never needs it, and a big film has many nodes.
        if self._built is None:
            self._built = _dotted_table(self._locs)
        return self._built

    def __getitem__(self, path: str) -> SourceLoc:
        return SourceLoc(*self._table[path])

    def __contains__(self, path: object) -> bool:
        return path in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def _dotted_table(locs: LocIndex) -> dict[str, Pos]:
    """Dotted path → position, keys preferred over values for mapping members."""
    names: dict[Path, str] = {(): ""}
    table: dict[str, Pos] = {}
    # Parents are recorded before their children, so each name is its parent's plus one
    # part: linear in the number of nodes, not in their depth.
    for source in (locs.values, locs.keys):
        for path, pos in source.items():
            name = names.get(path)
            if name is None:
                parent = names.get(path[:-1])
                if parent is None:
                    parent = dotted(path[:-1])
                part = path[-1]
                name = f"{parent}[{part}]" if type(part) is int else f"{parent}.{part}" if parent else part
                names[path] = name
            table[name] = pos
    table.pop("", None)
    return table
