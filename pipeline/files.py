"""Small file primitives every stage shares: content hashes, inter-process locks, durable writes."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes as stored (local path or fsspec URL)."""
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(str(path), "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def file_lock(path: Path, *, blocking: bool = True) -> Iterator[IO[str]]:
    """An exclusive ``flock`` on ``path`` (created if needed); the kernel drops it if the holder dies.

    With ``blocking=False`` a lock held elsewhere raises BlockingIOError at once. Yields the open
    lock file, so the holder may write who it is into it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


TMP_PREFIX = ".tmp-"   # a file being written: never read, removed by whoever finds it left over


def fsync_dir(path: Path) -> None:
    """Make what was created, renamed or removed in ``path`` durable: a rename is durable only once
    its folder is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to a temporary sibling, fsync it, then rename it over ``path``: a reader, or a
    process killed at any instant, sees the old bytes or the new ones, never a part. A failure (a
    full disk) removes the temporary file and leaves ``path`` as it was. ``sync_dir=False`` leaves
    syncing the folder to the caller (one sync after several renames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if sync_dir:
        fsync_dir(path.parent)
