"""Purge: delete day partitions older than the retention period, except days under a legal hold.

The law's floor is 180 days (网络安全法 Art. 21(3)); a shorter period is refused unless the config
says why (``retention.below_floor_reason``). A day is first renamed out of sight, then deleted,
so a kill mid-purge never leaves a half-deleted partition visible.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from loguru import logger

from ..config import Settings
from ..errors import StoreError
from ..faults import checkpoint
from .holds import held_days
from .layout import TMP_PREFIX, days_dir, fsync_dir, published_days, store_lock, store_root

LEGAL_FLOOR_DAYS = 180


@dataclass(frozen=True)
class PurgeReport:
    cutoff: date                      # days before this one are past retention
    deleted: tuple[date, ...]         # (or, on a dry run, that would be deleted)
    kept_held: tuple[date, ...]       # past retention but under a hold
    dry_run: bool


def check_retention(settings: Settings) -> None:
    """Refuse a retention period below the legal floor unless a reason is configured."""
    days = settings.retention.days
    if days < LEGAL_FLOOR_DAYS and not (settings.retention.below_floor_reason or "").strip():
        raise StoreError(
            f"retention.days is {days}, below the legal floor of {LEGAL_FLOOR_DAYS} days "
            "(网络安全法 Art. 21(3)); refusing to purge",
            hint="raise retention.days to 180 or more, or set retention.below_floor_reason in config.yaml "
                 "(or COMPLIANCE_RETENTION__BELOW_FLOOR_REASON) to record why a shorter period is lawful",
        )


def purge(settings: Settings, *, today: date | None = None, extra_holds: Iterable[date] = (),
          dry_run: bool = False, actor: str | None = None) -> PurgeReport:
    """Delete partitions whose day is before ``today - retention.days`` unless held."""
    check_retention(settings)
    today = today or datetime.now(timezone.utc).date()
    cutoff = today - timedelta(days=settings.retention.days)
    held = held_days(settings, extra_holds)
    deleted: list[date] = []
    kept: list[date] = []
    with store_lock(settings):
        for day in published_days(settings):
            if day >= cutoff:
                continue
            if day in held:
                kept.append(day)
                continue
            deleted.append(day)
            if not dry_run:
                _delete_day(settings, day)
    report = PurgeReport(cutoff, tuple(deleted), tuple(kept), dry_run)
    # Every purge is audited, also one that found nothing to delete (the audit shows that retention
    # ran), and a dry run (who looked at what would go).
    from ..query.audit import append_audit  # later stage; see holds._audit

    append_audit(settings, actor, "logs.purge.dry_run" if dry_run else "logs.purge", {
        "cutoff": cutoff.isoformat(), "retention_days": settings.retention.days,
        "below_floor_reason": settings.retention.below_floor_reason,
        "deleted": [d.isoformat() for d in deleted], "kept_held": [d.isoformat() for d in kept],
    })
    logger.info("purge{}: {} partition(s) before {} {}, {} kept under hold", " (dry run)" if dry_run else "",
                len(deleted), cutoff, "would go" if dry_run else "deleted", len(kept))
    return report


def _delete_day(settings: Settings, day: date) -> None:
    root = days_dir(settings)
    # Recorded first: verify must be able to tell a purged day from a lost one.
    with open(store_root(settings) / "purged.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"day": day.isoformat(), "at": datetime.now(timezone.utc).isoformat()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    hidden = root / f"{TMP_PREFIX}purge-{day.isoformat()}-{os.getpid()}"
    os.rename(root / day.isoformat(), hidden)
    fsync_dir(root)
    checkpoint("purge-hidden")
    shutil.rmtree(hidden)


def purged_days(settings: Settings) -> set[date]:
    path = store_root(settings) / "purged.jsonl"
    if not path.exists():
        return set()
    with open(path, encoding="utf-8") as fh:
        return {date.fromisoformat(json.loads(line)["day"]) for line in fh if line.strip()}
