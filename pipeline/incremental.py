"""What makes `compliance scan` safe to run from cron: one scan at a time, and only changed files.

The lock is an exclusive ``flock`` on <state_dir>/scan.lock (released by the kernel when the process
dies, so a killed scan never leaves a stale lock) and, for a PostgreSQL case store shared by several
machines, a session-level advisory lock as well. A file is unchanged when its path, size and
modification time match the last scan's record, or when its content hash does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .files import file_lock, sha256_file

SCAN_LOCK_KEY = 0x7363616E  # advisory lock id of "a scan is running", in the case store's lock namespace


class ScanLocked(PipelineError):
    """Another scan holds the lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@contextmanager
def scan_lock(state_dir: Path, store: Any = None) -> Iterator[None]:
    try:
        with file_lock(state_dir / "scan.lock", blocking=False) as fh:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}\n")
            fh.flush()
            with _shared_store_lock(store):
                yield
    except BlockingIOError:
        holder = (state_dir / "scan.lock").read_text().strip() or "another process"
        raise ScanLocked(f"another scan is running ({holder})",
                         hint="this run did nothing; the next scheduled run will pick up the work") from None


@contextmanager
def _shared_store_lock(store: Any) -> Iterator[None]:
    """On a PostgreSQL case store, scans on other machines are excluded too (session advisory lock)."""
    if store is None or getattr(store, "dialect", "") != "postgresql":
        yield
        return
    if not store.db.try_lock(SCAN_LOCK_KEY):
        raise ScanLocked("another scan is running against the same PostgreSQL case store",
                         hint="this run did nothing; the next scheduled run will pick up the work")
    try:
        yield
    finally:
        store.db.unlock(SCAN_LOCK_KEY)


def fingerprint(path: str, known: dict[str, Any] | None, *, digest: bool = True) -> tuple[dict[str, Any], bool]:
    """(this file's record, whether it changed since ``known``). Remote URLs always count as changed.
    With ``digest=False`` the file counts as changed and its record's sha256 is left for the caller
    to fill in (a full scan reads every file anyway: it hashes them while the scan runs)."""
    if "://" in path:
        return {"path": path, "size": -1, "mtime_ns": -1, "sha256": ""}, True
    st = os.stat(path)
    record = {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if not digest:
        return {**record, "sha256": ""}, True
    if known and known["size"] == st.st_size and known["mtime_ns"] == st.st_mtime_ns:
        return {**record, "sha256": known["sha256"]}, False
    record["sha256"] = sha256_file(path)
    return record, not (known and known["sha256"] == record["sha256"])
