"""Small file primitives every stage shares: content hashes and inter-process locks."""

from __future__ import annotations

import fcntl
import hashlib
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
