"""storybuild.lock: target → action key + output digests, committed to Git.

The format is a small, strict subset of YAML written by hand: a comment header, a format
version, then targets sorted by id, each with its key and its outputs sorted by name.
No timestamps, no empty fields, one fact per line, so Git diffs read well and two clean
builds write byte-identical files (dvc's lesson). Strings that could be misread are
JSON-quoted, which YAML reads as double-quoted strings.

A lock of an unknown version is ignored (and rewritten by the next build), as ninja does
with its build log.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Mapping, NamedTuple

from storybuild.errors import StorybuildError
from storybuild.projectpaths import LOCK_NAME

LOCK_VERSION = 1

_HEADER = (
    "# storybuild.lock: what each target was built from (its action key) and what it made\n"
    "# (output digests). Written by storybuild; commit it to Git, do not edit it by hand.\n"
)
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}")  # blake3, hex: keys and output digests


class LockEntry(NamedTuple):
    """One locked target."""

    key: str
    outputs: Mapping[str, str]


class LockFormatError(StorybuildError, ValueError):
    """The lock file is not one storybuild wrote (or cannot be written where it belongs)."""


def _quote(text: str) -> str:
    # Plain scalars only when YAML could not read them as anything but this string.
    if _PLAIN.match(text) and text not in ("true", "false", "null", "yes", "no", "on", "off", "~") \
            and not text.replace(".", "", 1).isdigit():
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError:
            raise LockFormatError(f"{LOCK_NAME}: a quoted name that is not valid: {text[:40]!r}") from None
    return text


def dumps(entries: Mapping[str, LockEntry]) -> str:
    """The lock file text for `entries` (deterministic)."""
    lines = [_HEADER, f"version: {LOCK_VERSION}\n"]
    if not entries:
        lines.append("targets: {}\n")
        return "".join(lines)
    lines.append("targets:\n")
    for target in sorted(entries):
        entry = entries[target]
        lines.append(f"  {_quote(target)}:\n    key: {entry.key}\n")
        if entry.outputs:
            lines.append("    outputs:\n")
            for name in sorted(entry.outputs):
                lines.append(f"      {_quote(name)}: {entry.outputs[name]}\n")
    return "".join(lines)


def _split(line: str, number: int) -> tuple[str, str]:
    # Keys may be JSON-quoted and contain ": ", so split after the closing quote.
    if line.startswith('"'):
        try:
            end = json.JSONDecoder().raw_decode(line)[1]
        except ValueError:
            raise LockFormatError(f"{LOCK_NAME}:{number}: a name whose quote is never closed") from None
        key, rest = line[:end], line[end:]
    else:
        key, sep, rest = line.partition(":")
        rest = ":" + rest if sep else rest
    if not rest.startswith(":"):
        raise LockFormatError(f"{LOCK_NAME}:{number}: expected 'name: value'")
    return _unquote(key), rest[1:].strip()


def loads(text: str) -> dict[str, LockEntry]:
    """Parse lock text; raise LockFormatError when it is not a lock of this version."""
    entries: dict[str, LockEntry] = {}
    target: str | None = None
    key = ""
    outputs: dict[str, str] = {}
    version = None

    def close() -> None:
        """Store the target being read, if any."""
        if target is not None:
            if not key:
                raise LockFormatError(f"{LOCK_NAME}: target {target!r} has no key")
            entries[target] = LockEntry(key, outputs)

    for number, raw in enumerate(text.splitlines(), 1):
        body = raw.lstrip(" ")
        if not body or body[0] == "#":
            continue
        indent = len(raw) - len(body)
        if body[0] != '"' and ": " in body:  # the common cases, without the general split
            name, value = body.split(": ", 1)
        elif body[0] != '"' and body.endswith(":"):
            name, value = body[:-1], ""
        else:
            name, value = _split(body.rstrip(), number)
        if indent == 0:
            if name == "version":
                version = value
            elif name != "targets":
                raise LockFormatError(f"{LOCK_NAME}:{number}: unexpected {name!r}")
        elif indent == 2:
            close()
            target, key, outputs = name, "", {}
        elif indent == 4 and target is not None:
            if name == "key":
                if not _DIGEST.fullmatch(value):
                    raise LockFormatError(f"{LOCK_NAME}:{number}: {value!r} is not an action key (64 hex digits)")
                key = value
            elif name != "outputs":
                raise LockFormatError(f"{LOCK_NAME}:{number}: unexpected {name!r}")
        elif indent == 6 and target is not None:
            if not _DIGEST.fullmatch(value):
                raise LockFormatError(f"{LOCK_NAME}:{number}: {value!r} is not an output digest (64 hex digits)")
            outputs[name] = value
        else:
            raise LockFormatError(f"{LOCK_NAME}:{number}: unexpected indentation")
    close()
    if version != str(LOCK_VERSION):
        raise LockFormatError(f"{LOCK_NAME}: version {version} is not {LOCK_VERSION}")
    return entries


CONFLICT_MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ", "||||||| ")


def read_strict(root: str | os.PathLike) -> dict[str, LockEntry]:
    """The lock of the project at `root` ({} when there is none); LockFormatError saying what
    is wrong when it cannot be read: Git's conflict markers, not text, not a lock."""
    path = os.path.join(root, LOCK_NAME)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:  # a directory, no permission
        raise LockFormatError(f"{LOCK_NAME}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LockFormatError(f"{LOCK_NAME}: is not text (it holds bytes that are not UTF-8)") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith(CONFLICT_MARKERS) or line == "=======":
            raise LockFormatError(f"{LOCK_NAME}:{number}: Git's merge conflict markers ({line.split()[0]}): "
                                  "the lock of two branches was merged by hand")
    return loads(text)


def read(root: str | os.PathLike) -> dict[str, LockEntry]:
    """The lock of the project at `root`; empty when there is none or it cannot be read
    (a build then works from the manifest and rewrites it: see read_strict for why)."""
    try:
        return read_strict(root)
    except LockFormatError:
        return {}


def write(root: str | os.PathLike, entries: Mapping[str, LockEntry]) -> bool:
    """Write the lock atomically (temp + fsync + rename) if its text changed; True if it did."""
    path = os.path.join(root, LOCK_NAME)
    text = dumps(entries)
    if os.path.isdir(path):
        raise LockFormatError(f"{LOCK_NAME} is a folder, where storybuild writes its lock file",
                              hint="move the folder away; the next build writes the lock")
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):  # none yet, or not text: it is replaced
        pass
    tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True
