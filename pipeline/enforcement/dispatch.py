"""HTTP delivery of outbox actions to the operations endpoint: signed JSON POSTs with an
idempotency key, timeouts, and retries with exponential backoff.

Outcomes: 2xx is delivered; 409 Conflict is delivered too (the endpoint has already seen this
idempotency key, i.e. applied the action before — typically our own earlier attempt whose answer
was lost); 429 and 5xx, connection errors and timeouts are retried; any other 4xx fails the action
with the response kept, since sending the same bytes again cannot succeed. When retries run out
the action goes back to pending and the batch stops: the endpoint is down, and the next
`compliance enforce dispatch` carries on where this one stopped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from ..cases.store import CaseStore
from ..config import Settings
from ..faults import checkpoint
from ..query.audit import append_audit
from . import EnforcementError
from .outbox import claim_next, queue, renew, settle
from .plan import undos_owed

SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRIABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class Outcome:
    action_id: str
    action: str
    target: str
    status: str              # delivered | failed | pending
    attempts: int
    code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class DispatchReport:
    outcomes: tuple[Outcome, ...] = ()
    stopped: str | None = None           # why the batch stopped early, if it did
    counts: dict[str, int] = field(default_factory=dict)

    def n(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def signing_secret(settings: Settings) -> bytes:
    name = settings.enforcement.secret_env
    value = os.environ.get(name)
    if not value:
        raise EnforcementError(f"the signing secret is not set: environment variable {name} is empty or unset",
                               hint=f"export {name}=<secret shared with the operations endpoint>; nothing was sent")
    return value.encode("utf-8")


def check_can_send(settings: Settings, *, before: str) -> None:
    """Refuse, before ``before`` changes anything, a command that would queue actions and then
    fail to send them for want of the signing secret. No endpoint configured is not refused:
    actions then stay queued by design (see ``not_sent``)."""
    if not settings.enforcement.endpoint:
        return
    try:
        signing_secret(settings)
    except EnforcementError as exc:
        name = settings.enforcement.secret_env
        raise EnforcementError(
            f"{exc.message}; nothing was {before}",
            hint=f"export {name}=<secret shared with the operations endpoint> and run the command again, "
                 "or pass --no-dispatch to queue the actions without sending them") from None


def not_sent(exc: EnforcementError, settings: Settings) -> str:
    """What to tell the user when actions were queued but delivery could not start."""
    es = settings.enforcement
    if not es.endpoint:
        why, fix = "no enforcement endpoint is configured", "enforcement.endpoint is set in the config"
    elif not os.environ.get(es.secret_env):
        why, fix = f"the signing secret {es.secret_env} is not set", f"{es.secret_env} is exported"
    else:
        why, fix = exc.message, "that is fixed"
    return (f"not sent: {why}. The actions are queued in the outbox; "
            f"run `compliance enforce dispatch` once {fix}")


def sign(secret: bytes, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _endpoint(settings: Settings) -> str:
    url = settings.enforcement.endpoint
    if not url:
        raise EnforcementError("no enforcement endpoint is configured; actions stay queued in the outbox",
                               hint="set enforcement.endpoint in the config, then run `compliance enforce dispatch`")
    return url


def lease_seconds(settings: Settings) -> float:
    """How long a claimed action is ours: one attempt's connect and read timeouts, plus slack."""
    return 2 * settings.enforcement.timeout_s + 1.0


def dispatch(store: CaseStore, settings: Settings, *, actor: str | None = None, limit: int | None = None,
             session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep) -> DispatchReport:
    """Send pending actions, oldest first, until none is left, ``limit`` is reached or the endpoint fails."""
    url = _endpoint(settings)
    secret = signing_secret(settings)
    queue_dismissal_undos(store)
    http = session or requests.Session()
    outcomes: list[Outcome] = []
    stopped = None
    while limit is None or len(outcomes) < limit:
        row = claim_next(store, lease_seconds(settings))
        if row is None:
            break
        outcome = _deliver(store, settings, http, url, secret, row, sleep)
        outcomes.append(outcome)
        append_audit(settings, actor, "enforce.deliver", {
            "action_id": outcome.action_id, "case_id": row["case_id"], "action": outcome.action,
            "target": outcome.target, "status": outcome.status, "code": outcome.code, "attempts": outcome.attempts,
            "error": outcome.error})
        if outcome.status == "pending":
            stopped = f"endpoint unavailable ({outcome.error}); remaining actions stay queued"
            break
    with store.transaction() as db:
        counts = {r["status"]: int(r["n"]) for r in db.all("SELECT status, COUNT(*) AS n FROM actions GROUP BY status")}
    return DispatchReport(tuple(outcomes), stopped, counts)


def queue_dismissal_undos(store: CaseStore) -> int:
    """Queue the undos owed to cases dismissed since their actions were queued (a reviewer's
    `cases dismiss` does not touch the outbox itself)."""
    with store.transaction() as db:
        dismissed = [r["case_id"] for r in db.all(
            "SELECT DISTINCT c.case_id FROM cases c JOIN actions a ON a.case_id = c.case_id"
            " WHERE c.status='dismissed' AND a.kind='enforce'")]
        return sum(queue(db, undos_owed(db, cid, f"case {cid} dismissed"), None) for cid in dismissed)


def _deliver(store: CaseStore, settings: Settings, http: requests.Session, url: str, secret: bytes,
             row: dict[str, Any], sleep: Callable[[float], None]) -> Outcome:
    es = settings.enforcement
    body = row["payload"].encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", IDEMPOTENCY_HEADER: row["action_id"],
               SIGNATURE_HEADER: sign(secret, body)}
    attempts = int(row["attempts"])
    error = ""
    for attempt in range(es.retries + 1):
        if attempt:
            sleep(min(es.backoff_max_s, es.backoff_s * 2 ** (attempt - 1)))
        renew(store, row["action_id"], lease_seconds(settings))
        attempts += 1
        try:
            resp = http.post(url, data=body, headers=headers, timeout=(es.timeout_s, es.timeout_s))
        except RETRIABLE as exc:
            error = f"{type(exc).__name__}: {_short(str(exc))}"
            continue
        # the endpoint has answered: a kill here is the worst case (applied there, not marked here)
        checkpoint("enforce.after_send")
        text = resp.text[:2000]
        if 200 <= resp.status_code < 300 or resp.status_code == 409:
            settle(store, row["action_id"], "delivered", code=resp.status_code, body=text)
            acknowledged(store, row)
            return Outcome(row["action_id"], row["action"], row["target"], "delivered", attempts, resp.status_code)
        if resp.status_code == 429 or resp.status_code >= 500:
            error = f"HTTP {resp.status_code}: {_short(text)}"
            continue
        settle(store, row["action_id"], "failed", code=resp.status_code, body=text,
               error=f"HTTP {resp.status_code}: {_short(text)}")
        return Outcome(row["action_id"], row["action"], row["target"], "failed", attempts, resp.status_code,
                       _short(text))
    settle(store, row["action_id"], "pending", error=error)
    return Outcome(row["action_id"], row["action"], row["target"], "pending", attempts, None, error)


def acknowledged(store: CaseStore, row: dict[str, Any]) -> None:
    """The endpoint acknowledged an enforcement action: its case is now ``enforced`` (it stayed
    ``confirmed`` while the action was queued), recorded as done by whoever applied the plan."""
    if row.get("kind") != "enforce":
        return
    case = store.db.one("SELECT status FROM cases WHERE case_id=?", (row["case_id"],))
    if case is None or case["status"] not in ("open", "confirmed"):
        return   # dismissed or resolved meanwhile: its undo is owed instead
    plan = store.db.one("SELECT applied_by FROM plans WHERE plan_id=?", (row["plan_id"],)) if row.get("plan_id") else None
    by = (plan or {}).get("applied_by") or "enforcement"
    store.transition(row["case_id"], "enforced", by=by, action="enforced",
                     reason=f"{row['action']} on {row['target']} acknowledged by the endpoint")


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
