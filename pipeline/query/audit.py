"""The hash-chained, append-only audit log (``<state_dir>/audit/audit.jsonl``, or the case store's
``audit_log`` table when the case store is PostgreSQL, so that a team shares one chain).

Each line is one entry: ``seq, ts, actor, action, details, prev_hash, hash``, where ``hash`` is the
SHA-256 of the canonical JSON of the entry without ``hash`` (``prev_hash`` included), so editing,
deleting, inserting or reordering any entry breaks the chain from that entry on. ``head.json``
repeats the last seq and hash, so that cutting entries off the end is detected too (unless the
head is rewritten as well: keep a copy of it elsewhere for stronger guarantees).
Any part of the package appends through ``append_audit``; appends are serialized by a file lock.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Settings
from ..files import file_lock
from ..errors import Location, StoreError

GENESIS = "0" * 64


def audit_dir(settings: Settings) -> Path:
    return settings.state_path / "audit"


def audit_path(settings: Settings) -> Path:
    return audit_dir(settings) / "audit.jsonl"


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes hashed: sorted keys, no spaces, UTF-8 (not ASCII-escaped)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return f"uid:{os.getuid()}"


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    with file_lock(audit_dir(settings) / ".lock"):
        yield


def _last_line(path: Path) -> bytes | None:
    """The last complete line of a file, read from its end (the log may be long)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    with fh:
        end = fh.seek(0, os.SEEK_END)
        block, data = 4096, b""
        pos = end
        while pos > 0:
            pos = max(0, pos - block)
            fh.seek(pos)
            data = fh.read(end - pos)
            lines = data.rstrip(b"\n").split(b"\n")
            if len(lines) > 1 or pos == 0:
                return lines[-1] if lines[-1] else None
            block *= 2
    return None


def append_audit(settings: Settings, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    """Append one entry and return it (with its seq and hash). ``details`` must be JSON-able."""
    # A round trip fixes the exact form that will be hashed and read back.
    details = json.loads(json.dumps(details, default=str, ensure_ascii=False))
    if _shared(settings):
        return _append_db(settings, actor, action, details)
    path = audit_path(settings)
    with _locked(settings):
        last = _last_line(path)
        if last is None:
            seq, prev = 1, GENESIS
        else:
            try:
                previous = json.loads(last)
                seq, prev = int(previous["seq"]) + 1, str(previous["hash"])
            except (ValueError, KeyError, TypeError):
                raise StoreError("the last audit entry is unreadable; refusing to extend a broken chain",
                                 location=Location(str(path)),
                                 hint="run `compliance audit verify` and restore the audit log from backup") from None
        entry: dict[str, Any] = {
            "seq": seq,
            "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor or default_actor(),
            "action": action,
            "details": details,
            "prev_hash": prev,
        }
        entry["hash"] = entry_hash(entry)
        with open(path, "ab") as fh:
            fh.write(canonical(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        head = audit_dir(settings) / "head.json"
        tmp = head.with_name(f".tmp-head.{os.getpid()}")
        tmp.write_text(json.dumps({"seq": seq, "hash": entry["hash"]}), encoding="utf-8")
        os.replace(tmp, head)
    return entry


@dataclass(frozen=True)
class AuditReport:
    """Result of checking the chain; ``first_bad_seq`` is the seq expected where it first breaks."""

    entries: int
    first_bad_seq: int | None = None
    line: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_audit(settings: Settings) -> list[dict[str, Any]]:
    """Every entry, in file order (unchecked: use verify_audit to trust them)."""
    if _shared(settings):
        return [json.loads(line) for line in _db_lines(settings)]
    path = audit_path(settings)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _problem(raw: bytes, expected: int, prev: str) -> tuple[str | None, str]:
    """What is wrong with one line given the chain so far (None if nothing), and its hash."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return "line is not valid JSON", prev
    if not isinstance(entry, dict) or not {"seq", "prev_hash", "hash"} <= entry.keys():
        return "entry lacks seq, prev_hash or hash", prev
    if entry["seq"] != expected:
        return f"seq is {entry['seq']}, expected {expected} (an entry was deleted, inserted or moved)", prev
    if entry["prev_hash"] != prev:
        return "prev_hash does not match the previous entry's hash (an entry before it changed or moved)", prev
    if entry_hash(entry) != entry["hash"]:
        return "hash does not match the entry's content (the entry was edited)", prev
    return None, str(entry["hash"])


def verify_audit(settings: Settings) -> AuditReport:
    """Walk the chain from the first entry; stop at the first entry that breaks it."""
    prev, count = GENESIS, 0
    head: dict[str, Any] | None = None
    if _shared(settings):
        lines: Iterator[bytes] | list[bytes] = [line.encode("utf-8") for line in _db_lines(settings)]
        head = _db_head(settings)
    else:
        path = audit_path(settings)
        lines = open(path, "rb") if path.exists() else []
        head_path = audit_dir(settings) / "head.json"
        if head_path.exists():
            head = json.loads(head_path.read_text(encoding="utf-8"))
    try:
        for number, raw in enumerate(lines, start=1):
            problem, prev = _problem(raw, count + 1, prev)
            if problem is not None:
                return AuditReport(count, count + 1, number, problem)
            count += 1
    finally:
        if hasattr(lines, "close"):
            lines.close()
    if head is not None:
        if head.get("seq") != count or head.get("hash") != (prev if count else None):
            return AuditReport(count, count + 1, count + 1,
                               f"the log ends at seq {count} but its head records seq {head.get('seq')} "
                               "(entries were cut off the end)")
    return AuditReport(count)


# -- the shared chain in a PostgreSQL case store ----------------------------------------------------

def _shared(settings: Settings) -> bool:
    return bool(settings.case_store) and str(settings.case_store).startswith(("postgresql://", "postgres://"))


def _store(settings: Settings) -> Any:
    from ..cases.store import open_store  # the case store holds the chain when it is shared

    return open_store(settings.state_path, settings.case_store)


def _append_db(settings: Settings, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    store = _store(settings)
    try:
        with store.transaction() as db:  # serialized with every other writer of the store
            last = db.one("SELECT line FROM audit_log ORDER BY seq DESC LIMIT 1")
            if last is None:
                seq, prev = 1, GENESIS
            else:
                previous = json.loads(last["line"])
                seq, prev = int(previous["seq"]) + 1, str(previous["hash"])
            entry: dict[str, Any] = {
                "seq": seq, "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "actor": actor or default_actor(), "action": action, "details": details, "prev_hash": prev,
            }
            entry["hash"] = entry_hash(entry)
            db.execute("INSERT INTO audit_log (seq, line) VALUES (?, ?)", (seq, canonical(entry).decode("utf-8")))
            db.execute("DELETE FROM audit_head WHERE id = 1")
            db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (seq, entry["hash"]))
        return entry
    finally:
        store.close()


def _db_lines(settings: Settings) -> list[str]:
    store = _store(settings)
    try:
        return [r["line"] for r in store.db.all("SELECT line FROM audit_log ORDER BY seq")]
    finally:
        store.close()


def _db_head(settings: Settings) -> dict[str, Any] | None:
    store = _store(settings)
    try:
        return store.db.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    finally:
        store.close()
