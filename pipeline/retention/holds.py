"""Legal holds: day ranges that purge must keep, whatever their age, until released.

Stored in ``<state_dir>/logs/holds.json``; a released hold stays listed with who released it and
why. Adding and releasing a hold are recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ..config import Settings
from ..files import file_lock
from ..errors import Location, StoreError
from ..faults import checkpoint, fail_point
from .layout import fsync_dir, store_root


@dataclass(frozen=True)
class Hold:
    id: str
    start_day: str          # ISO dates, both inclusive
    end_day: str
    reason: str
    by: str
    created_at: str
    released_at: str | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def days(self) -> Iterator[date]:
        day, last = date.fromisoformat(self.start_day), date.fromisoformat(self.end_day)
        while day <= last:
            yield day
            day += timedelta(days=1)

    def covers(self, day: date) -> bool:
        return self.active and self.start_day <= day.isoformat() <= self.end_day


def _path(settings: Settings) -> Path:
    return store_root(settings) / "holds.json"


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    with file_lock(store_root(settings) / ".holds.lock"):
        yield


def _pending(settings: Settings) -> Path:
    return store_root(settings) / ".holds.pending.json"


def hold_list(settings: Settings, *, include_released: bool = True) -> list[Hold]:
    with _locked(settings):
        _recover(settings)
        holds = _read(settings)
    return holds if include_released else [h for h in holds if h.active]


def _read(settings: Settings) -> list[Hold]:
    path = _path(settings)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Hold(**item) for item in data["holds"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"holds file is unreadable: {exc}", location=Location(str(path)),
                         hint="restore it from backup; purge refuses to run without it") from None


def _recover(settings: Settings) -> None:
    """Finish or drop a change a killed process left staged (call under the holds lock): published
    if its audit entry was written (the entry names the staged file's SHA-256), else removed."""
    pending = _pending(settings)
    if not pending.exists():
        return
    digest = hashlib.sha256(pending.read_bytes()).hexdigest()
    if _audited(settings, digest):
        os.replace(pending, _path(settings))
        fsync_dir(pending.parent)
    else:
        pending.unlink()


def _audited(settings: Settings, digest: str) -> bool:
    from ..query.audit import read_audit_tail

    return any(e.get("action") in ("hold.add", "hold.release")
               and (e.get("details") or {}).get("holds_sha256") == digest for e in read_audit_tail(settings, 20))


def _save_audited(settings: Settings, holds: list[Hold], actor: str, action: str, hold: Hold) -> None:
    """Effect and audit together: the new holds file is staged, the entry (naming the staged file's
    SHA-256) is appended, then the file is renamed into place. A failure anywhere leaves both as
    they were; a kill after the entry is finished by the next reader (``_recover``)."""
    from ..query.audit import audited  # the audit log lives with the queries, a later stage than the store

    data = (json.dumps({"holds": [asdict(h) for h in holds]}, ensure_ascii=False, indent=1, sort_keys=True)
            .encode("utf-8"))
    pending = _pending(settings)
    try:
        with audited(settings) as step:
            fail_point("holds.write")
            with open(pending, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            step.append(actor, action, {**asdict(hold), "holds_sha256": hashlib.sha256(data).hexdigest()})
            checkpoint("hold.before_publish")
            os.replace(pending, _path(settings))
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(pending.parent)


def _day(text: str | date, what: str) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{what} {text!r} is not a day", hint="write days as YYYY-MM-DD") from None


def hold_add(settings: Settings, start_day: str | date, end_day: str | date, reason: str, by: str) -> Hold:
    """Place a hold on the days [start_day, end_day] and return it (audited: both or neither)."""
    first, last = _day(start_day, "start day"), _day(end_day, "end day")
    if last < first:
        raise StoreError(f"hold ends ({last}) before it starts ({first})", hint="swap --from and --to")
    if not reason.strip() or not by.strip():
        raise StoreError("a hold needs a reason and the name of who places it",
                         hint="pass --reason (e.g. the request reference) and --by")
    with _locked(settings):
        _recover(settings)
        holds = _read(settings)
        hold = Hold(id=f"hold-{len(holds) + 1:04d}", start_day=first.isoformat(), end_day=last.isoformat(),
                    reason=reason, by=by, created_at=datetime.now(timezone.utc).isoformat())
        _save_audited(settings, [*holds, hold], by, "hold.add", hold)
    return hold


def hold_release(settings: Settings, hold_id: str, by: str, reason: str) -> Hold:
    """Release an active hold; it stays listed with who released it and why."""
    if not reason.strip() or not by.strip():
        raise StoreError("releasing a hold needs a reason and the name of who releases it",
                         hint="pass --reason and --by")
    with _locked(settings):
        _recover(settings)
        holds = _read(settings)
        found = next((h for h in holds if h.id == hold_id), None)
        if found is None:
            raise StoreError(f"no hold {hold_id!r}",
                             hint=f"known holds: {', '.join(h.id for h in holds) or 'none'}")
        if not found.active:
            raise StoreError(f"hold {hold_id} was already released on {found.released_at} by {found.released_by}")
        released = replace(found, released_at=datetime.now(timezone.utc).isoformat(), released_by=by,
                           release_reason=reason)
        _save_audited(settings, [released if h.id == hold_id else h for h in holds], by, "hold.release", released)
    return released


def held_days(settings: Settings, extra: Iterable[date] = ()) -> set[date]:
    """Every day under an active hold, plus ``extra`` (e.g. days cited by open cases)."""
    days = set(extra)
    for hold in hold_list(settings, include_released=False):
        days.update(hold.days())
    return days
