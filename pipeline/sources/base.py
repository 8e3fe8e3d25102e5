"""What every source adapter returns, the per-kind format registries, and path expansion.

An adapter is a function ``read(path: str) -> ReadResult`` registered under its format name
in the registry of its source kind. It reads one file (local path or fsspec URL; gzip is
opened transparently), maps every row onto the canonical record (``pipeline.records``) or
quarantines it, and never loses a row: ``rows_read == len(records) + len(quarantine)``.
"""

from __future__ import annotations

import glob
import gzip
import mmap
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import fsspec
import pandas as pd

from ..errors import SourceError
from ..records import QUARANTINE, conform, empty
from ..registry import Registry


@dataclass
class ReadResult:
    records: pd.DataFrame      # canonical columns (pipeline.records) incl. source_file, source_line
    quarantine: pd.DataFrame   # columns of pipeline.records.QUARANTINE
    rows_read: int             # data rows seen in the file (headers and comments not counted)

    def __post_init__(self) -> None:
        if self.rows_read != len(self.records) + len(self.quarantine):
            raise AssertionError(
                f"row accounting broken: read {self.rows_read}, parsed {len(self.records)}, "
                f"quarantined {len(self.quarantine)}"
            )


Reader = Callable[[str], ReadResult]

OBJECT_FORMATS: Registry[Reader] = Registry("objects format")
LOG_FORMATS: Registry[Reader] = Registry("log format")
STREAM_FORMATS: Registry[Reader] = Registry("streams format")

REGISTRIES: dict[str, Registry[Reader]] = {
    "objects": OBJECT_FORMATS,
    "logs": LOG_FORMATS,
    "streams": STREAM_FORMATS,
}


def quarantine_frame(rows: list[tuple[str, int, str, bytes]]) -> pd.DataFrame:
    """Build a quarantine frame from ``(source_file, source_line, reason, raw_bytes)`` tuples."""
    if not rows:
        return empty(QUARANTINE)
    df = pd.DataFrame(rows, columns=list(QUARANTINE))
    return conform(df, QUARANTINE)


Stored = bytes | mmap.mmap  # a file's bytes as stored: read into memory, or mapped when local


QUIET_SECONDS = 300  # a file unchanged this long is taken to be rotated, not live


def read_stored(path: str) -> Stored:
    """A file's bytes as stored (local or fsspec URL), still compressed if it is gzip.

    For callers that need the stored bytes themselves (a content hash) and then their text:
    ``gunzip(path, read_stored(path))`` equals ``open_bytes(path)`` with one read of the file.
    A local file left alone for a while is mapped read-only rather than copied: its pages come
    from the page cache without a copy or a fresh allocation per page. A file modified in the last
    ``QUIET_SECONDS`` may still be written or rotated in place (copytruncate), and a mapped file
    that shrinks kills the reader with SIGBUS, so such a file is copied instead.
    """
    local = path[len("file://"):] if path.startswith("file://") else path
    if "://" not in local:
        try:
            with open(local, "rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_size == 0:
                    return b""
                if time.time() - st.st_mtime < QUIET_SECONDS:
                    return fh.read()
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise SourceError(f"no such file: {path}",
                              hint="check the path in the config or on the command line") from None
    return _read_all(path)


def _read_all(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}", hint="check the path in the config or on the command line") from None


def gunzip(path: str, data: Stored) -> Stored:
    """``data`` (the stored bytes of ``path``) decompressed when it is gzip, whatever the file's name.

    A truncated gzip stream raises SourceError naming the file.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (EOFError, OSError) as exc:
            raise SourceError(f"{path}: gzip stream is corrupt or truncated ({exc})",
                              hint="re-fetch the file; nothing from it was used") from None
    return data


def open_bytes(path: str) -> bytes:
    """Read a whole file (local or fsspec URL); gunzip it when it is gzip, whatever its name.

    A truncated gzip stream raises SourceError naming the file.
    """
    data = gunzip(path, _read_all(path))
    assert isinstance(data, bytes)
    return data


def expand(path: str) -> list[str]:
    """A source path (file, folder or glob; local or fsspec URL) → the sorted list of files it names."""
    if "://" in path and not path.startswith("file://"):
        fs, _, paths = fsspec.get_fs_token_paths(path)
        files: list[str] = []
        for p in paths:
            if fs.isdir(p):
                files.extend(f for f in fs.find(p))
            else:
                files.append(p)
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return sorted(f"{protocol}://{f}" if "://" not in f else f for f in files)
    local = path[len("file://"):] if path.startswith("file://") else path
    if any(ch in local for ch in "*?["):
        found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
    elif os.path.isdir(local):
        found = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(local)
            for name in names
            if not name.startswith(".")
        )
    elif os.path.isfile(local):
        found = [local]
    else:
        raise SourceError(f"no such file or folder: {path}", hint="check the path in the config or on the command line")
    return found
