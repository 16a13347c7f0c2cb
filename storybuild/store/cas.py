"""The content-addressed store: .storybuild/cas/ab/cdef… holds every output ever built.

Objects are named by their blake3 digest, made read-only, and enter the store only by an
atomic link or rename of a complete file, so a reader never sees a partial object. An
object is not fsynced when it enters: `sync()` makes the objects added since the last
call durable, and the state writer calls it just before committing the rows that refer
to them (one flush per commit instead of one fsync per tiny file, same guarantee).
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path
from typing import Iterator

from storybuild.hashing import digest_file

_READ_ONLY = 0o444


def partial_name(dest: str) -> str:
    """The temp name an object is linked under before it is renamed to `dest`.

    One fixed name per destination (builds of a project are serialised by its lock): a
    build killed between the link and the rename leaves it, and the next placement of
    `dest` removes it rather than leaving a stray file beside the output.
    """
    return f"{dest}.sb-partial"


def discard_partial(dest: str) -> None:
    """Remove what a killed placement of `dest` left (storybuild's own temp file), if anything."""
    try:
        os.unlink(partial_name(dest))
    except FileNotFoundError:
        pass


class CAS:
    """A directory of read-only objects named by digest."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._prefix = os.fspath(root) + os.sep  # string joins: has() runs per output per build
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._shards_ready = False

    def path(self, digest: str) -> Path:
        """Where the object `digest` lives (whether or not it exists)."""
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        """Whether the object exists."""
        return os.path.exists(f"{self._prefix}{digest[:2]}{os.sep}{digest[2:]}")

    def size(self, digest: str) -> int | None:
        """The object's size, or None when it is missing."""
        try:
            return os.stat(f"{self._prefix}{digest[:2]}{os.sep}{digest[2:]}").st_size
        except FileNotFoundError:
            return None

    def _ensure_shards(self) -> None:
        # Creating the 256 shard directories once beats an exists/mkdir pair per object.
        if self._shards_ready:
            return
        for i in range(256):
            os.makedirs(self.root / f"{i:02x}", exist_ok=True)
        self._shards_ready = True

    def put_file(self, src: str | os.PathLike, *, move: bool = False, digest: str | None = None) -> str:
        """Add a complete file to the store and return its digest.

        The object shares the file's inode when the filesystem allows it (`move` renames the
        file in; otherwise it is hard-linked), and is copied when it does not. Either way
        the object is read-only afterwards.
        """
        self._ensure_shards()
        if digest is None:
            digest = digest_file(src)
        dest = f"{self._prefix}{digest[:2]}{os.sep}{digest[2:]}"
        try:
            if move:
                os.rename(src, dest)  # replacing an existing object with the same bytes is harmless
            else:
                os.link(src, dest)
        except FileExistsError:
            return digest  # stored before (by us, or another thread just now)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            self._copy_in(src, Path(dest))
            if move:
                os.unlink(src)
        os.chmod(dest, _READ_ONLY)
        with self._lock:
            self._pending.append(digest)
        return digest

    def put_bytes(self, data: bytes, digest: str) -> str:
        """Add bytes whose digest the caller computed."""
        self._ensure_shards()
        dest = self.path(digest)
        if not os.path.exists(dest):
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
            with open(tmp, "wb") as f:
                f.write(data)
            self._finish_copy(tmp, dest)
        return digest

    def _copy_in(self, src: str | os.PathLike, dest: Path) -> None:
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
        shutil.copyfile(src, tmp)
        self._finish_copy(tmp, dest)

    def _finish_copy(self, tmp: Path, dest: Path) -> None:
        os.chmod(tmp, _READ_ONLY)
        os.replace(tmp, dest)
        with self._lock:
            self._pending.append(dest.parent.name + dest.name)

    def sync(self) -> None:
        """Make every object added since the last call durable (with its directory entry).

        On Linux one syncfs(2) of the store's filesystem does it in a few milliseconds,
        where an fsync per object (and per shard directory) costs milliseconds each, even
        for a one-change build's handful. Elsewhere each object and directory is fsynced.
        """
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending or _syncfs(self.root):
            return
        shards = set()
        for digest in pending:
            path = self.path(digest)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # collected by gc in between; nothing refers to it any more
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            shards.add(path.parent)
        for shard in shards:
            fd = os.open(shard, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def link_to(self, digest: str, dest: str | os.PathLike) -> None:
        """Atomically make `dest` a hard link to (or, across filesystems, a copy of) an object."""
        dest = os.fspath(dest)
        src = f"{self._prefix}{digest[:2]}{os.sep}{digest[2:]}"
        parent = os.path.dirname(dest) or "."
        if not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        tmp = partial_name(dest)
        discard_partial(dest)
        try:
            os.link(src, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(src, tmp)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.unlink(tmp)
            raise

    def digests(self) -> Iterator[str]:
        """Every object digest in the store."""
        if not self.root.is_dir():
            return
        for shard in sorted(os.listdir(self.root)):
            if len(shard) != 2:
                continue
            for name in os.listdir(self.root / shard):
                if not name.startswith("."):
                    yield shard + name

    def remove(self, digest: str) -> int:
        """Delete an object; return the bytes freed (0 if it was not there)."""
        path = self.path(digest)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def remove_temporaries(self) -> None:
        """Delete temp files left by a killed process (only while holding the project lock)."""
        if not self.root.is_dir():
            return
        for shard in os.listdir(self.root):
            shard_dir = self.root / shard
            if len(shard) == 2 and shard_dir.is_dir():
                for name in os.listdir(shard_dir):
                    if name.startswith("."):
                        os.unlink(shard_dir / name)


_libc = None


def _syncfs(path: Path) -> bool:
    """syncfs(2) on the filesystem holding `path`; False where it is not available."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        import ctypes

        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syncfs.argtypes = [ctypes.c_int]
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return _libc.syncfs(fd) == 0
    finally:
        os.close(fd)
