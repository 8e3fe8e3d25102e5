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
from ..files import file_lock, fsync_dir, write_atomic
from ..errors import Location, StoreError
from ..faults import checkpoint, fail_point

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


def _tail(path: Path) -> tuple[int, bytes | None, bytes]:
    """(size, last complete line or None, torn tail): the torn tail is whatever follows the last
    newline, i.e. an entry whose write was cut short (a full disk, a kill mid-write)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return 0, None, b""
    with fh:
        end = fh.seek(0, os.SEEK_END)
        block = 4096
        while True:
            pos = max(0, end - block)
            fh.seek(pos)
            data = fh.read(end - pos)
            cut = data.rfind(b"\n")
            start = data.rfind(b"\n", 0, cut) if cut > 0 else -1
            if pos > 0 and start < 0:
                block *= 2  # the last complete line is not wholly in this block yet
                continue
            if cut < 0:
                return end, None, data
            last = data[start + 1:cut]
            return end, (last or None), data[cut + 1:]


TORN_HINT = ("run `compliance audit repair`: it cuts the torn tail back (keeping its bytes in the repair's own "
             "entry) and never rewrites an intact entry")


def _head_path(settings: Settings) -> Path:
    return audit_dir(settings) / "head.json"


def _backup_path(settings: Settings) -> Path:
    return audit_dir(settings) / ".head.prev"


class _FileAppend:
    """One entry appended to the file chain, undoable until the caller lets go: ``undo`` cuts the
    log back to its size before the entry and puts the previous head back (a truncate and a
    rename, which need no free space), so a failure at any write leaves the log as it was."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = audit_path(settings)
        self.size: int | None = None
        self.had_head = False

    def write(self, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        size, last, torn = _tail(path)
        if torn:
            raise StoreError("the audit log ends in a torn entry (a write that was cut short, e.g. by a full "
                             "disk); refusing to extend a broken chain", location=Location(str(path)),
                             hint=TORN_HINT)
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
        entry = _entry(seq, prev, actor, action, details)
        head, backup = _head_path(self.settings), _backup_path(self.settings)
        self.size = size
        try:
            checkpoint("audit.before_write")  # a kill here: the effect is staged, its entry not written
            fail_point("audit.write")
            with open(path, "ab") as fh:
                fh.write(canonical(entry) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            checkpoint("audit.before_head")
            backup.unlink(missing_ok=True)
            self.had_head = head.exists()
            if self.had_head:
                os.link(head, backup)  # the old head, kept under a second name until the entry stands
            fail_point("audit.head")
            write_atomic(head, json.dumps({"seq": seq, "hash": entry["hash"]}).encode("utf-8"), sync_dir=False)
            fsync_dir(path.parent)
        except BaseException:
            self.undo()
            raise
        return entry

    def undo(self) -> None:
        """Cut the log back to where it was and restore the head."""
        if self.size is None:
            return
        head, backup = _head_path(self.settings), _backup_path(self.settings)
        if self.path.exists() and self.path.stat().st_size > self.size:
            os.truncate(self.path, self.size)
            with open(self.path, "rb+") as fh:
                os.fsync(fh.fileno())
        if backup.exists():
            if head.exists() and os.path.samefile(backup, head):
                backup.unlink()  # the head was never replaced (renaming a link onto itself does nothing)
            else:
                os.replace(backup, head)
        elif not self.had_head:
            head.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self.size = None

    def release(self) -> None:
        _backup_path(self.settings).unlink(missing_ok=True)
        self.size = None


def _entry(seq: int, prev: str, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": seq,
        "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "actor": actor or default_actor(),
        "action": action,
        "details": details,
        "prev_hash": prev,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    # A round trip fixes the exact form that will be hashed and read back.
    out: dict[str, Any] = json.loads(json.dumps(details, default=str, ensure_ascii=False))
    return out


def append_audit(settings: Settings, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    """Append one entry and return it (with its seq and hash). ``details`` must be JSON-able.

    The entry is written whole or not at all: a failure at any write (a full disk) leaves the log
    and its head as they were, and raises."""
    details = _jsonable(details)
    if _shared(settings):
        return _append_db(settings, actor, action, details)
    with _locked(settings):
        step = _FileAppend(settings)
        entry = step.write(actor, action, details)
        step.release()
    return entry


class AuditStep:
    """An audited change whose effect becomes visible after its entry is written (see ``audited``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.entry: dict[str, Any] | None = None
        self._file: _FileAppend | None = None
        self._stack = contextlib.ExitStack()

    def append(self, actor: str | None, action: str, details: dict[str, Any], *, db: Any = None) -> dict[str, Any]:
        """Write the entry. With a shared (PostgreSQL) chain and ``db`` the case store's open
        transaction, the entry is part of that transaction; with the file chain it is written now
        (the chain stays locked until the block ends) and cut back if the block then fails."""
        if self.entry is not None:
            raise RuntimeError("one entry per audited step")
        details = _jsonable(details)
        if _shared(self.settings):
            self.entry = (_insert_db(db, actor, action, details) if db is not None
                          else _append_db(self.settings, actor, action, details))
        else:
            self._stack.enter_context(_locked(self.settings))
            self._file = _FileAppend(self.settings)
            self.entry = self._file.write(actor, action, details)
        checkpoint("audit.appended")
        return self.entry

    def _close(self, failed: bool) -> None:
        try:
            if self._file is not None:
                if failed:
                    self._file.undo()
                else:
                    self._file.release()
        finally:
            self._stack.close()


@contextlib.contextmanager
def audited(settings: Settings) -> Iterator[AuditStep]:
    """Effect and audit together. Inside the block: stage the effect, call ``step.append``, then
    make the effect visible (commit the store's transaction, rename the staged file). If anything
    in the block fails, the entry goes with it: the file chain is cut back to where it was, and a
    PostgreSQL entry written through the store's transaction rolls back with that transaction.
    A kill between the entry and the effect leaves an entry whose effect is absent, never an
    effect without its entry (docs/operations.md, "Effect and audit")."""
    step = AuditStep(settings)
    try:
        yield step
    except BaseException:
        step._close(failed=True)
        raise
    step._close(failed=False)


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


def read_audit_tail(settings: Settings, n: int) -> list[dict[str, Any]]:
    """The last ``n`` readable entries (a torn tail and unreadable lines are skipped), oldest first."""
    if _shared(settings):
        return [json.loads(line) for line in _db_lines(settings)[-n:]]
    path = audit_path(settings)
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines()[-(n + 1):]:
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out[-n:]


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
    """Walk the chain from the first entry; stop at the first entry that breaks it.

    A head that lags the log (a process stopped between writing an entry and its head) is no
    break: the entries after it chain on from it. A head ahead of the log means entries were cut off.
    """
    prev, count = GENESIS, 0
    head: dict[str, Any] | None = None
    torn = b""
    if _shared(settings):
        lines: Iterator[bytes] | list[bytes] = [line.encode("utf-8") for line in _db_lines(settings)]
        head = _db_head(settings)
    else:
        path = audit_path(settings)
        torn = _tail(path)[2]
        lines = open(path, "rb") if path.exists() else []
        head_path = _head_path(settings)
        if head_path.exists():
            head = json.loads(head_path.read_text(encoding="utf-8"))
    head_hash_seen: str | None = None
    try:
        for number, raw in enumerate(lines, start=1):
            if torn and not raw.endswith(b"\n"):
                return AuditReport(count, count + 1, number,
                                   f"torn tail: the last {len(raw)} byte(s) are an entry whose write was cut short "
                                   f"(e.g. by a full disk); {TORN_HINT}")
            problem, prev = _problem(raw, count + 1, prev)
            if problem is not None:
                return AuditReport(count, count + 1, number, problem)
            count += 1
            if head is not None and head.get("seq") == count:
                head_hash_seen = prev
    finally:
        if hasattr(lines, "close"):
            lines.close()
    if head is not None:
        seq = head.get("seq")
        if not isinstance(seq, int) or seq > count or (seq > 0 and head.get("hash") != head_hash_seen):
            return AuditReport(count, count + 1, count + 1,
                               f"the log ends at seq {count} but its head records seq {seq} "
                               "(entries were cut off the end)")
    return AuditReport(count)


@dataclass(frozen=True)
class RepairReport:
    entries: int                      # intact entries kept
    cut_bytes: int = 0                # bytes of a torn tail cut back
    head_behind: int = 0              # entries the head lagged behind, now caught up
    entry: dict[str, Any] | None = None  # the repair's own entry, when something was repaired

    @property
    def repaired(self) -> bool:
        return self.entry is not None


def repair_audit(settings: Settings, actor: str | None) -> RepairReport:
    """Cut a torn tail back and bring a lagging head up to the log's end, then record that as an
    entry of its own. Refuses (StoreError) a chain broken anywhere else: repair never rewrites
    or drops an intact entry; that needs the backup."""
    if _shared(settings):
        report = verify_audit(settings)  # transactional: no write is ever torn
        if not report.ok:
            raise StoreError(f"the audit chain breaks at seq {report.first_bad_seq}: {report.problem}",
                             hint="this is not a torn write: restore the audit log from backup")
        return RepairReport(report.entries)
    path = audit_path(settings)
    with _locked(settings):
        size, _, torn = _tail(path)
        keep = size - len(torn)
        prev, count = GENESIS, 0
        lines = path.read_bytes()[:keep].splitlines(keepends=True) if path.exists() else []
        for number, raw in enumerate(lines, start=1):
            problem, prev = _problem(raw, count + 1, prev)
            if problem is not None:
                raise StoreError(f"the audit chain breaks at seq {count + 1} (line {number}): {problem}",
                                 location=Location(str(path), number),
                                 hint="this is not a torn write, and repair never rewrites an entry: "
                                      "restore the audit log from backup")
            count += 1
        head_path = _head_path(settings)
        head = json.loads(head_path.read_text(encoding="utf-8")) if head_path.exists() else None
        head_seq = int(head["seq"]) if head else 0
        if head_seq > count:
            raise StoreError(f"the log ends at seq {count} but its head records seq {head_seq}: entries were cut "
                             "off the end", location=Location(str(path)),
                             hint="restore the audit log from backup; repair never invents entries")
        if not torn and head_seq == count:
            return RepairReport(count)
        details: dict[str, Any] = {"entries_kept": count, "head_was": head}
        if torn:
            details.update(cut_bytes=len(torn), cut_sha256=hashlib.sha256(torn).hexdigest(),
                           cut_text=torn[:4000].decode("utf-8", errors="replace"))
            os.truncate(path, keep)
            with open(path, "rb+") as fh2:
                os.fsync(fh2.fileno())
        if head_seq < count:
            details["head_behind"] = count - head_seq
        step = _FileAppend(settings)
        entry = step.write(actor, "audit.repair", _jsonable(details))
        step.release()
    return RepairReport(count, len(torn), max(0, count - head_seq), entry)


# -- the shared chain in a PostgreSQL case store ----------------------------------------------------

def _shared(settings: Settings) -> bool:
    return bool(settings.case_store) and str(settings.case_store).startswith(("postgresql://", "postgres://"))


def _store(settings: Settings) -> Any:
    from ..cases.store import open_store  # the case store holds the chain when it is shared

    return open_store(settings.state_path, settings.case_store)


def _insert_db(db: Any, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    """Append through ``db``, a transaction of the case store (serialized with its other writers)."""
    last = db.one("SELECT line FROM audit_log ORDER BY seq DESC LIMIT 1")
    if last is None:
        seq, prev = 1, GENESIS
    else:
        previous = json.loads(last["line"])
        seq, prev = int(previous["seq"]) + 1, str(previous["hash"])
    entry = _entry(seq, prev, actor, action, details)
    fail_point("audit.write")
    db.execute("INSERT INTO audit_log (seq, line) VALUES (?, ?)", (seq, canonical(entry).decode("utf-8")))
    db.execute("DELETE FROM audit_head WHERE id = 1")
    db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", (seq, entry["hash"]))
    return entry


def _append_db(settings: Settings, actor: str | None, action: str, details: dict[str, Any]) -> dict[str, Any]:
    store = _store(settings)
    try:
        with store.transaction() as db:
            return _insert_db(db, actor, action, details)
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
