"""A reviewer's decision on a case, the same from the CLI (`compliance cases confirm|dismiss|resolve|
reopen --by NAME`) and from the review app: the status change and its history row, and the
hash-chained audit entry naming who decided, committed together; then what follows a decision
(a dismissed case gets the undo of its enforcement).

Kept apart from the app's other modules so that the CLI imports no web machinery for it.
"""

from __future__ import annotations

from typing import Any

from ..cases.store import CaseStore
from ..config import Settings
from ..errors import PipelineError

# action name (as the CLI names the command) → status it moves the case to
DECISIONS = {"confirm": "confirmed", "dismiss": "dismissed", "resolve": "resolved", "reopen": "open"}
MAX_REASON = 2000


class DecisionError(PipelineError):
    """A decision refused before anything changed (no reason, unknown action)."""


def clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise DecisionError("a reason is required", hint="say why, in the reason field (--reason on the CLI)")
    if len(text) > MAX_REASON:
        raise DecisionError(f"the reason is longer than {MAX_REASON} characters")
    return text


def record_decision(store: CaseStore, settings: Settings, actor: str, case_id: str, action: str, reason: str,
                    *, via: str) -> dict[str, Any]:
    """Move the case as ``action`` says, recorded in its history and in the audit log under ``actor``;
    ``via`` ("cli" or "web") says where the decision was made. Returns {case_id, from, to}."""
    from ..enforcement import on_transition
    from ..query.audit import audited  # the audit log lives with the queries, a later stage than the store

    if action not in DECISIONS:
        raise DecisionError(f"unknown action {action!r}", hint=f"valid actions: {', '.join(DECISIONS)}")
    actor = (actor or "").strip()
    if not actor:
        raise DecisionError("who decides is required", hint="pass --by NAME")
    reason = clean_reason(reason)
    # the move and its entry commit together: a failed audit write leaves the case as it was
    with audited(settings) as step, store.transaction() as db:
        moved = store.transition(case_id, DECISIONS[action], by=actor, reason=reason, action=action)
        step.append(actor, f"case.{action}", {"case_id": case_id, "from": moved["from"], "to": moved["to"],
                                               "reason": reason, "via": via}, db=db)
    on_transition(settings, case_id, moved)
    return moved
