"""Applying a plan — exactly the plan, after checking its hash and that every case it names is
still in the state it saw — and undoing a case's actions on dismissal or a successful appeal.
Both write the outbox and the case transitions in one transaction; delivery comes after."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cases.store import CaseStore, now_utc
from ..config import Settings
from ..errors import Location
from ..faults import checkpoint
from ..query.audit import audited
from . import EnforcementError
from .outbox import queue
from .plan import Plan, check_caps, load_plan, status_epochs, undos_owed


@dataclass(frozen=True)
class Applied:
    plan_id: str
    queued: int              # actions new to the outbox
    enforced_cases: tuple[str, ...]


def apply_plan(store: CaseStore, settings: Settings, path: Path, *, by: str) -> Applied:
    """Verify the plan file against its recorded hash and the cases against the states it saw,
    then queue its actions, all in one transaction. A case whose action is queued is ``confirmed``
    (an open case under an ``auto`` policy becomes so) until the endpoint acknowledges the action;
    only then is it ``enforced`` (see ``dispatch``)."""
    plan, digest = load_plan(path)
    where = Location(str(path))
    # caps may have been lowered since planning; a plan over them is still refused as a whole
    check_caps(plan, settings.enforcement.caps)
    with audited(settings) as step, store.transaction() as db:  # effect and entry commit together
        row = db.one("SELECT sha256, status, applied_at, applied_by FROM plans WHERE plan_id=?", (plan.plan_id,))
        if row is None:
            raise EnforcementError(f"plan {plan.plan_id} is not known to this case store", location=where,
                                   hint="make a plan with `compliance enforce plan --out FILE` against this store")
        if row["sha256"] != digest:
            raise EnforcementError(f"plan {plan.plan_id} was changed after it was made (SHA-256 differs)",
                                   location=where, hint="make a new plan; plans are applied exactly as written")
        if row["status"] == "applied":
            raise EnforcementError(f"plan {plan.plan_id} was already applied at {row['applied_at']} by "
                                   f"{row['applied_by']}", location=where,
                                   hint="run `compliance enforce status` to see its actions")
        _check_states(db_states=_current(store, plan), plan=plan, where=where)
        queued = queue(db, plan.actions, plan.plan_id)
        enforced = sorted({a.case_id for a in plan.actions if a.kind == "enforce"})
        for cid in enforced:
            if plan.cases.get(cid, {}).get("status") == "open":
                store.transition(cid, "confirmed", by=by, reason=f"plan {plan.plan_id} applied; action pending",
                                 action="action queued")
        db.execute("UPDATE plans SET status='applied', applied_at=?, applied_by=? WHERE plan_id=?",
                   (now_utc(), by, plan.plan_id))
        step.append(by, "enforce.apply", {"plan_id": plan.plan_id, "sha256": digest, "queued": queued,
                                          "actions": [a.action_id for a in plan.actions],
                                          "enforced_cases": enforced}, db=db)
        checkpoint("apply.before_commit")
    return Applied(plan.plan_id, queued, tuple(enforced))


def _current(store: CaseStore, plan: Plan) -> dict[str, dict[str, object]]:
    epochs = status_epochs(store.db)
    out: dict[str, dict[str, object]] = {}
    for cid in plan.cases:
        row = store.db.one("SELECT status FROM cases WHERE case_id=?", (cid,))
        out[cid] = {"status": row["status"] if row else None, "epoch": epochs.get(cid, 0)}
    return out


def _check_states(*, db_states: dict[str, dict[str, object]], plan: Plan, where: Location) -> None:
    changed = []
    for cid, saw in plan.cases.items():
        now = db_states[cid]
        if now["status"] != saw["status"] or now["epoch"] != saw["epoch"]:
            was, became = saw["status"], now["status"] or "deleted"
            changed.append(f"{cid} ({was} → {became})" if was != became else f"{cid} ({was}, changed since)")
    if changed:
        raise EnforcementError(f"plan refused: {len(changed)} case(s) changed since it was made: "
                               + ", ".join(changed), location=where,
                               hint="make a new plan with `compliance enforce plan --out FILE`; nothing was queued")


def undo_case(store: CaseStore, settings: Settings, case_id: str, *, by: str, reason: str) -> int:
    """Dismiss the case (if it is not already) and queue the undo of each of its actions that may
    have been applied; returns how many undos were queued."""
    if not by or not reason:
        raise EnforcementError("an undo needs --by NAME and --reason TEXT")
    with audited(settings) as step, store.transaction() as db:
        row = db.one("SELECT status FROM cases WHERE case_id=?", (case_id,))
        if row is None:
            raise EnforcementError(f"no case {case_id!r}", hint="list case ids with `compliance cases list`")
        if row["status"] == "resolved":
            raise EnforcementError(f"case {case_id} is resolved; an undo dismisses a case",
                                   hint="reopen it first (`compliance cases reopen`), then undo")
        if row["status"] != "dismissed":
            store.transition(case_id, "dismissed", by=by, reason=reason, action="undo")
        undos = undos_owed(db, case_id, reason)
        queued = queue(db, undos, None)
        step.append(by, "enforce.undo", {"case_id": case_id, "reason": reason,
                                         "actions": [u.action_id for u in undos]}, db=db)
    return queued
