"""Legal holds: day ranges that purge must keep, whatever their age, until released.

Stored in ``<state_dir>/logs/holds.json``; a released hold stays listed with who released it and
why. Adding and releasing a hold are recorded in the audit log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from ..config import Settings
from ..files import file_lock
from ..errors import Location, StoreError
from .layout import store_root, write_json_atomic


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


def hold_list(settings: Settings, *, include_released: bool = True) -> list[Hold]:
    path = _path(settings)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        holds = [Hold(**item) for item in data["holds"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"holds file is unreadable: {exc}", location=Location(str(path)),
                         hint="restore it from backup; purge refuses to run without it") from None
    return holds if include_released else [h for h in holds if h.active]


def _save(settings: Settings, holds: list[Hold]) -> None:
    write_json_atomic(_path(settings), {"holds": [asdict(h) for h in holds]})


def _day(text: str | date, what: str) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{what} {text!r} is not a day", hint="write days as YYYY-MM-DD") from None


def hold_add(settings: Settings, start_day: str | date, end_day: str | date, reason: str, by: str) -> Hold:
    """Place a hold on the days [start_day, end_day] and return it."""
    first, last = _day(start_day, "start day"), _day(end_day, "end day")
    if last < first:
        raise StoreError(f"hold ends ({last}) before it starts ({first})", hint="swap --from and --to")
    if not reason.strip() or not by.strip():
        raise StoreError("a hold needs a reason and the name of who places it",
                         hint="pass --reason (e.g. the request reference) and --by")
    with _locked(settings):
        holds = hold_list(settings)
        hold = Hold(id=f"hold-{len(holds) + 1:04d}", start_day=first.isoformat(), end_day=last.isoformat(),
                    reason=reason, by=by, created_at=datetime.now(timezone.utc).isoformat())
        _save(settings, [*holds, hold])
    _audit(settings, by, "hold.add", asdict(hold))
    return hold


def hold_release(settings: Settings, hold_id: str, by: str, reason: str) -> Hold:
    """Release an active hold; it stays listed with who released it and why."""
    if not reason.strip() or not by.strip():
        raise StoreError("releasing a hold needs a reason and the name of who releases it",
                         hint="pass --reason and --by")
    with _locked(settings):
        holds = hold_list(settings)
        found = next((h for h in holds if h.id == hold_id), None)
        if found is None:
            raise StoreError(f"no hold {hold_id!r}",
                             hint=f"known holds: {', '.join(h.id for h in holds) or 'none'}")
        if not found.active:
            raise StoreError(f"hold {hold_id} was already released on {found.released_at} by {found.released_by}")
        released = replace(found, released_at=datetime.now(timezone.utc).isoformat(), released_by=by,
                           release_reason=reason)
        _save(settings, [released if h.id == hold_id else h for h in holds])
    _audit(settings, by, "hold.release", asdict(released))
    return released


def held_days(settings: Settings, extra: Iterable[date] = ()) -> set[date]:
    """Every day under an active hold, plus ``extra`` (e.g. days cited by open cases)."""
    days = set(extra)
    for hold in hold_list(settings, include_released=False):
        days.update(hold.days())
    return days


def _audit(settings: Settings, actor: str, action: str, details: dict[str, object]) -> None:
    # Imported here: the audit log lives with the queries, a later stage than the store.
    from ..query.audit import append_audit

    append_audit(settings, actor, action, details)
