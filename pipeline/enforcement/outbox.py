"""The action outbox in the case store: queueing (idempotent by action id), claiming with a lease,
and marking rows delivered / failed / back to pending, so no action is lost or sent twice.

Statuses: pending → sending → delivered | failed, or pending again after retries ran out;
cancelled for an action whose undo arrived before it was ever sent. A row left "sending" by a
process that died becomes claimable once its lease expires, and is re-sent with the same
idempotency key (the endpoint dedupes it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from ..cases.db import Database
from ..cases.store import CaseStore, now_utc
from .plan import PlannedAction

OUTBOX_STATUSES = ("pending", "sending", "delivered", "failed", "cancelled")
# an undo waits while its original may still reach the endpoint
UNSETTLED = ("pending", "sending")


def body_bytes(body: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed; stored so that every re-send is byte-identical."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def queue(db: Database, actions: Iterable[PlannedAction], plan_id: str | None) -> int:
    """Insert actions not yet in the outbox; returns how many were new. Call inside a transaction."""
    now = now_utc()
    added = 0
    for a in actions:
        if db.one("SELECT 1 AS x FROM actions WHERE action_id=?", (a.action_id,)) is not None:
            continue
        status = "pending"
        if a.kind == "undo" and a.undo_of:
            orig = db.one("SELECT status, attempts FROM actions WHERE action_id=?", (a.undo_of,))
            if orig is not None and orig["status"] == "pending" and orig["attempts"] == 0:
                # never left this machine: cancel it instead of sending it and then its undo
                db.execute("UPDATE actions SET status='cancelled', updated_at=?, last_error=? WHERE action_id=?",
                           (now, f"cancelled by undo {a.action_id}", a.undo_of))
                status = "cancelled"
        db.execute(
            "INSERT INTO actions (action_id, plan_id, case_id, kind, action, product, level, mode, target,"
            " account_id, payload, status, attempts, created_at, updated_at, undo_of)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (a.action_id, plan_id, a.case_id, a.kind, a.action, a.product, a.level, a.mode, a.target, a.account_id,
             body_bytes(a.body()).decode("utf-8"), status, 0, now, now, a.undo_of))
        added += 1
    return added


def _lease_until(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def claim_next(store: CaseStore, lease_s: float, skip: set[str] | None = None) -> dict[str, Any] | None:
    """Take the oldest sendable action and mark it sending under a lease; None when none is left."""
    skip = skip or set()
    now = now_utc()
    with store.transaction() as db:
        rows = db.all("SELECT * FROM actions WHERE status='pending' OR (status='sending' AND not_before < ?)"
                      " ORDER BY created_at, action_id", (now,))
        for row in rows:
            if row["action_id"] in skip:
                continue
            if row["undo_of"]:
                orig = db.one("SELECT status FROM actions WHERE action_id=?", (row["undo_of"],))
                if orig is not None and orig["status"] in UNSETTLED:
                    continue
                if orig is not None and orig["status"] in ("failed", "cancelled"):
                    db.execute("UPDATE actions SET status='cancelled', updated_at=?, last_error=? WHERE action_id=?",
                               (now, f"original {row['undo_of']} was never applied ({orig['status']})",
                                row["action_id"]))
                    continue
            db.execute("UPDATE actions SET status='sending', not_before=?, updated_at=? WHERE action_id=?",
                       (_lease_until(lease_s), now, row["action_id"]))
            row["status"] = "sending"
            return row
    return None


def renew(store: CaseStore, action_id: str, lease_s: float) -> None:
    """Count one more attempt and extend the lease before it is made."""
    with store.transaction() as db:
        db.execute("UPDATE actions SET attempts=attempts+1, not_before=?, updated_at=? WHERE action_id=?",
                   (_lease_until(lease_s), now_utc(), action_id))


def settle(store: CaseStore, action_id: str, status: str, *, code: int | None = None, body: str | None = None,
           error: str | None = None) -> None:
    """Record the outcome: delivered, failed (with the response) or pending again (with the error)."""
    now = now_utc()
    with store.transaction() as db:
        db.execute("UPDATE actions SET status=?, response_status=?, response_body=?, last_error=?, not_before=NULL,"
                   " updated_at=?, delivered_at=? WHERE action_id=?",
                   (status, code, body, error, now, now if status == "delivered" else None, action_id))


def counts(db: Database) -> dict[str, int]:
    return {r["status"]: int(r["n"]) for r in db.all("SELECT status, COUNT(*) AS n FROM actions GROUP BY status")}
