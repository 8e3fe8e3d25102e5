"""Enforcement plans: every intended action computed from case states and the policy, checked
against the caps, written to a JSON file and recorded (with its SHA-256) in the ``plans`` table.
Planning sends nothing."""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from ..cases.db import Database
from ..cases.store import CaseStore
from ..config import EnforcementCaps, Settings
from ..errors import Location
from ..faults import checkpoint, fail_point
from . import EnforcementError
from .notices import render_notice
from .policy import NOTICE_ACTION, UNDO, decide, intended_actions

PLAN_FORMAT = 1


@dataclass(frozen=True)
class PlannedAction:
    action_id: str
    case_id: str
    kind: str                 # enforce | notice | undo
    action: str
    product: str
    level: str
    mode: str
    target: str
    account_id: str | None
    clause: str
    reason: str
    deadline: str | None = None
    undo_of: str | None = None
    notice: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON the endpoint receives."""
        out: dict[str, Any] = {"action": self.action, "target": self.target, "case_id": self.case_id,
                               "clause": self.clause, "reason": self.reason, "deadline": self.deadline,
                               "action_id": self.action_id, "account_id": self.account_id,
                               "product": self.product, "level": self.level}
        if self.undo_of:
            out["undo_of"] = self.undo_of
        if self.notice:
            out["notice"] = self.notice
        return out


@dataclass(frozen=True)
class Plan:
    plan_id: str
    created_at: str
    created_by: str
    cases: dict[str, dict[str, Any]]           # case id → {status, epoch} as the plan saw it
    actions: tuple[PlannedAction, ...]
    skipped: tuple[dict[str, str], ...] = ()   # cases the policy does not act on, and why
    waiting: tuple[dict[str, str], ...] = ()   # cases that will be acted on later (review, notice)
    format: int = PLAN_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "plan_id": self.plan_id, "created_at": self.created_at,
                "created_by": self.created_by, "cases": self.cases,
                "actions": [asdict(a) for a in self.actions], "skipped": list(self.skipped),
                "waiting": list(self.waiting)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(plan_id=data["plan_id"], created_at=data["created_at"], created_by=data["created_by"],
                   cases=data["cases"], actions=tuple(PlannedAction(**a) for a in data["actions"]),
                   skipped=tuple(data.get("skipped", ())), waiting=tuple(data.get("waiting", ())),
                   format=data.get("format", PLAN_FORMAT))

    def enforcing(self) -> list[PlannedAction]:
        return [a for a in self.actions if a.kind == "enforce"]


def _id(prefix: str, *parts: object) -> str:
    return prefix + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:24]


def enforce_action_id(case_id: str, action: str, target: str, epoch: int) -> str:
    """Stable per case status epoch: planning twice yields the same key, so the outbox and the
    endpoint dedupe it; a case enforced again after an undo gets a new one."""
    return _id("A", case_id, action, target, epoch)


def undo_action_id(original: str) -> str:
    return _id("U", original)


def status_epochs(db: Database) -> dict[str, int]:
    """case id → id of its latest status change; any change between plan and apply alters it."""
    rows = db.all("SELECT case_id, MAX(id) AS epoch FROM case_history WHERE to_status IS NOT NULL GROUP BY case_id")
    return {r["case_id"]: int(r["epoch"]) for r in rows}


def episode_notice(db: Database, case_id: str) -> dict[str, Any] | None:
    """The notice sent for the case's current episode (since it was last resolved or dismissed)."""
    closed = db.scalar("SELECT MAX(at) FROM case_history WHERE case_id=? AND to_status IN ('resolved','dismissed')",
                       (case_id,))
    rows = db.all("SELECT action_id, payload, created_at FROM actions WHERE case_id=? AND kind='notice'"
                  " AND status NOT IN ('failed','cancelled') ORDER BY created_at DESC", (case_id,))
    for r in rows:
        if closed is None or r["created_at"] > closed:
            return r
    return None


def episode_enforcements(db: Database, case_id: str) -> list[dict[str, Any]]:
    """The enforcement actions of the case's current episode that were delivered or are on their
    way (queued or being sent), oldest first; a notice rendered now must say they were taken."""
    closed = db.scalar("SELECT MAX(at) FROM case_history WHERE case_id=? AND to_status IN ('resolved','dismissed')",
                       (case_id,))
    rows = db.all("SELECT action_id, action, target, status, delivered_at, created_at FROM actions"
                  " WHERE case_id=? AND kind='enforce' AND status IN ('delivered','sending','pending')"
                  " ORDER BY created_at, action_id", (case_id,))
    return [r for r in rows if closed is None or r["created_at"] > closed]


def undos_owed(db: Database, case_id: str, reason: str) -> list[PlannedAction]:
    """Undo actions for every enforcement action of ``case_id`` that may have been applied and
    has no undo yet."""
    rows = db.all("SELECT * FROM actions WHERE case_id=? AND kind='enforce' AND status IN "
                  "('delivered','sending','pending') ORDER BY created_at, action_id", (case_id,))
    out = []
    for orig in rows:
        uid = undo_action_id(orig["action_id"])
        if db.one("SELECT 1 AS x FROM actions WHERE action_id=?", (uid,)) is not None:
            continue
        sent = json.loads(orig["payload"])
        out.append(PlannedAction(uid, case_id, "undo", UNDO[orig["action"]], orig["product"] or "",
                                 orig["level"] or "", "undo", orig["target"], orig["account_id"],
                                 sent.get("clause", ""), f"{reason} (undo of {orig['action']} {orig['target']})",
                                 None, orig["action_id"]))
    return out



def make_plan(store: CaseStore, settings: Settings, *, by: str, now: datetime | None = None) -> Plan:
    """Every action the policy wants now; raises EnforcementError if the plan exceeds a cap."""
    now = now or datetime.now(timezone.utc)
    es = settings.enforcement
    db = store.db
    epochs = status_epochs(db)
    outbox = {r["action_id"] for r in db.all("SELECT action_id FROM actions")}
    actions: list[PlannedAction] = []
    seen: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    waiting: list[dict[str, str]] = []
    cases = store.list_cases()
    for record in cases.to_dict("records"):
        # a DataFrame turns missing values into NaN; the policy and the notice want None
        case = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        cid, status = str(case["case_id"]), str(case["status"])
        epoch = epochs.get(cid, 0)
        clause = f"§{case['clause']}"
        if status == "dismissed":
            undos = undos_owed(db, cid, f"case {cid} dismissed")
            actions.extend(undos)
            if undos:
                seen[cid] = {"status": status, "epoch": epoch}
            continue
        if status not in ("open", "confirmed"):
            continue
        decision = decide(es, str(case["category"]), str(case["severity"]))
        if decision is None:
            skipped.append({"case_id": cid, "reason": f"no policy entry for {case['category']} × {case['severity']}"})
            continue
        intended, why = intended_actions(case, decision.level)
        if not intended:
            skipped.append({"case_id": cid, "reason": why or "no action"})
            continue
        if db.scalar("SELECT COUNT(*) FROM actions WHERE case_id=? AND kind='enforce' AND status IN "
                     "('pending','sending')", (cid,)):
            waiting.append({"case_id": cid, "reason": "action queued: enforced once the endpoint acknowledges it"})
            continue
        reason = f"{case['rule_title'] or case['rule_id']} ({case['category']}, severity {case['severity']})"
        deadline: str | None = None
        if decision.mode == "review" and status != "confirmed":
            waiting.append({"case_id": cid, "reason": "review mode: waits for a reviewer to confirm"})
            continue
        if decision.mode == "notice":
            notice = episode_notice(db, cid)
            if notice is None:
                deadline = (now + timedelta(days=decision.notice_days)).isoformat(timespec="seconds")
                first = intended[0]
                actions.append(PlannedAction(
                    _id("N", cid, epoch), cid, "notice", NOTICE_ACTION, first.product, decision.level, "notice",
                    case.get("account_id") or str(case["subject_id"]), case.get("account_id"), clause,
                    f"violation notice: {reason}", deadline, None, render_notice(settings, case, deadline, now)))
                seen[cid] = {"status": status, "epoch": epoch}
                continue
            deadline = json.loads(notice["payload"]).get("deadline")
            if deadline and datetime.fromisoformat(deadline) > now:
                waiting.append({"case_id": cid, "reason": f"notice sent; enforced after {deadline} unless resolved"})
                continue
            reason += f"; notice deadline {deadline} passed"
        for it in intended:
            aid = enforce_action_id(cid, it.action, it.target, epoch)
            if aid in outbox:
                continue
            actions.append(PlannedAction(aid, cid, "enforce", it.action, it.product, it.level, decision.mode,
                                         it.target, case.get("account_id"), clause, reason, deadline))
            seen[cid] = {"status": status, "epoch": epoch}
    plan = Plan(f"P{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}", now.isoformat(timespec="seconds"),
                by, seen, tuple(actions), tuple(skipped), tuple(waiting))
    check_caps(plan, es.caps)
    return plan


def check_caps(plan: Plan, caps: EnforcementCaps) -> None:
    """Refuse the whole plan if it holds more enforcement actions than a cap allows."""
    enforcing = plan.enforcing()
    if len(enforcing) > caps.per_run:
        raise EnforcementError(
            f"plan refused: {len(enforcing)} enforcement actions exceed the cap per run of {caps.per_run}",
            hint="check the rules behind these cases, confirm fewer at once, or raise enforcement.caps.per_run")
    per_account = Counter(a.account_id for a in enforcing if a.account_id)
    over = sorted((n, acc) for acc, n in per_account.items() if n > caps.per_account)
    if over:
        n, acc = over[-1]
        others = f" (and {len(over) - 1} more account(s))" if len(over) > 1 else ""
        raise EnforcementError(
            f"plan refused: {n} enforcement actions against account {acc} exceed the cap per account of "
            f"{caps.per_account}{others}",
            hint="review that account's cases by hand, or raise enforcement.caps.per_account")


def plan_bytes(plan: Plan) -> bytes:
    return (json.dumps(plan.to_json(), ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def save_plan(store: CaseStore, plan: Plan, out: Path,
              audit: Callable[[Database, str], object] | None = None) -> str:
    """Write the plan file and record its SHA-256, which `apply` checks; returns the hash.

    The file is staged, then in one transaction the plan is recorded, ``audit(db, sha256)`` writes
    its audit entry and the file is renamed into place: a failure at any step (a full disk, a
    failing COMMIT) leaves neither the plan file nor its record (the caller's ``audited`` block
    cuts the entry back)."""
    data = plan_bytes(plan)
    digest = hashlib.sha256(data).hexdigest()
    if not out.parent.is_dir():
        raise EnforcementError(f"folder {out.parent} does not exist", hint="create it or choose another --out")
    tmp = out.with_name(f".{out.name}.tmp")
    published = False
    try:
        fail_point("plan.write")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        with store.transaction() as db:
            db.execute("INSERT INTO plans (plan_id, created_at, created_by, sha256, status, body) VALUES (?,?,?,?,?,?)",
                       (plan.plan_id, plan.created_at, plan.created_by, digest, "planned", data.decode("utf-8")))
            if audit is not None:
                audit(db, digest)
            checkpoint("plan.before_commit")
            tmp.replace(out)
            published = True
    except BaseException:
        tmp.unlink(missing_ok=True)
        if published:
            out.unlink(missing_ok=True)
        raise
    return digest


def load_plan(path: Path) -> tuple[Plan, str]:
    """A plan file and the SHA-256 of its exact bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EnforcementError(f"cannot read plan: {exc.strerror}", location=Location(str(path)),
                               hint="pass the file written by `compliance enforce plan --out`") from None
    try:
        plan = Plan.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise EnforcementError(f"not a plan file: {exc}", location=Location(str(path)),
                               hint="pass the file written by `compliance enforce plan --out`") from None
    return plan, hashlib.sha256(data).hexdigest()
