"""What the app's buttons do, each through the same functions the CLI calls: a case decision is
``decisions.record_decision`` (`compliance cases confirm|dismiss|resolve|reopen`),
a plan is ``make_plan`` + ``save_plan`` (`enforce plan`), applying is ``apply_plan`` (`enforce apply`)
then ``dispatch`` when an endpoint and its secret are set, an undo is ``undo_case`` (`enforce undo`).
Every one is recorded with the user's name in the case history and the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cases.store import CaseStore
from ..config import Settings
from ..enforcement import EnforcementError
from ..enforcement.apply import apply_plan, undo_case
from ..enforcement.dispatch import check_can_send, dispatch, not_sent
from ..enforcement.plan import make_plan, save_plan
from ..errors import PipelineError
from ..query.audit import append_audit
from . import assign
from .decisions import DECISIONS, clean_reason, record_decision
from .users import User, WebError

PLAN_ID = re.compile(r"^P\d{8}T\d{6}Z-[0-9a-f]{6}$")


def decide(store: CaseStore, settings: Settings, user: User, case_id: str, action: str, reason: str) -> dict[str, Any]:
    """Confirm, dismiss, resolve or reopen one case, as `compliance cases ACTION --by USER` does;
    refused while another reviewer holds the case."""
    if action not in DECISIONS:
        raise WebError(f"unknown action {action!r}", hint=f"valid actions: {', '.join(DECISIONS)}")
    reason = clean_reason(reason)
    assign.check_not_claimed_by_other(store.db, case_id, user)
    moved = record_decision(store, settings, user.name, case_id, action, reason, via="web")
    assign.release(store.db, case_id, user, why=f"released on {action}")
    return moved


def claim(store: CaseStore, settings: Settings, user: User, case_id: str) -> str:
    until = assign.claim(store.db, case_id, user, settings.web.claim_minutes)
    append_audit(settings, user.name, "case.claim", {"case_id": case_id, "until": until, "via": "web"})
    return until


def release(store: CaseStore, settings: Settings, user: User, case_id: str) -> bool:
    done = assign.release(store.db, case_id, user)
    if done:
        append_audit(settings, user.name, "case.release", {"case_id": case_id, "via": "web"})
    return done


@dataclass
class BulkResult:
    done: list[str]
    failed: list[tuple[str, str]]


def bulk(store: CaseStore, settings: Settings, user: User, case_ids: list[str], action: str,
         reason: str | None) -> BulkResult:
    """One action on each selected case; a case that refuses (wrong status, claimed by someone else)
    is reported and the others go on."""
    if action in DECISIONS:
        reason = clean_reason(reason)
    elif action not in ("claim", "release"):
        raise WebError(f"unknown action {action!r}", hint=f"valid actions: {', '.join([*DECISIONS, 'claim', 'release'])}")
    out = BulkResult([], [])
    for cid in dict.fromkeys(case_ids):
        try:
            if action == "claim":
                claim(store, settings, user, cid)
            elif action == "release":
                release(store, settings, user, cid)
            else:
                decide(store, settings, user, cid, action, reason or "")
            out.done.append(cid)
        except PipelineError as exc:
            out.failed.append((cid, exc.message))
    return out


def plans_dir(settings: Settings) -> Path:
    path = Path(settings.state_path) / "plans"
    path.mkdir(parents=True, exist_ok=True)
    return path


def plan(store: CaseStore, settings: Settings, user: User) -> tuple[str, int]:
    """`compliance enforce plan --out <state_dir>/plans/<id>.json --by USER`; (plan id, actions)."""
    p = make_plan(store, settings, by=user.name)
    out = plans_dir(settings) / f"{p.plan_id}.json"
    digest = save_plan(store, p, out)
    append_audit(settings, user.name, "enforce.plan", {"plan_id": p.plan_id, "sha256": digest, "file": str(out),
                                                       "actions": len(p.actions), "enforcing": len(p.enforcing()),
                                                       "via": "web"})
    return p.plan_id, len(p.actions)


def _send(store: CaseStore, settings: Settings, user: User) -> str:
    """Deliver what is queued when an endpoint and its secret are set; say what happened."""
    try:
        check_can_send(settings, before="sent")
        if not settings.enforcement.endpoint:
            raise EnforcementError("no endpoint")
        report = dispatch(store, settings, actor=user.name)
    except EnforcementError as exc:
        return not_sent(exc, settings)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    return f"outbox: {counts}" + (f"; stopped: {report.stopped}" if report.stopped else "")


def apply(store: CaseStore, settings: Settings, user: User, plan_id: str) -> str:
    """`compliance enforce apply <plan file> --by USER`: approvers only."""
    if not user.can("approver"):
        raise PermissionError("applying a plan needs the approver role")
    if not PLAN_ID.match(plan_id):
        raise WebError(f"not a plan id: {plan_id!r}")
    path = plans_dir(settings) / f"{plan_id}.json"
    if not path.exists():
        raise WebError(f"plan {plan_id} has no plan file in {path.parent}",
                       hint="make a new plan from this page or with `compliance enforce plan`")
    done = apply_plan(store, settings, path, by=user.name)
    sent = _send(store, settings, user)
    return (f"plan {done.plan_id}: {done.queued} action(s) queued; {len(done.enforced_cases)} case(s) enforced. "
            + sent)


def undo(store: CaseStore, settings: Settings, user: User, case_id: str, reason: str) -> str:
    """`compliance enforce undo CASE --by USER --reason ...`: approvers only."""
    if not user.can("approver"):
        raise PermissionError("undoing enforcement needs the approver role")
    n = undo_case(store, settings, case_id, by=user.name, reason=clean_reason(reason))
    return f"case {case_id} dismissed; {n} undo action(s) queued. " + (_send(store, settings, user) if n else "")
