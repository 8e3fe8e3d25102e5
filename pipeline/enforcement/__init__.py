"""Enforcement: the penalty policy, plans, the action outbox with HTTP delivery and undo, and
violation notices. Scans never enforce: a person plans, then applies."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError

if TYPE_CHECKING:
    from ..config import Settings


class EnforcementError(PipelineError):
    """A plan, an apply or a delivery was refused (caps, changed cases, missing secret...)."""


def on_transition(settings: Settings, case_id: str, moved: dict[str, Any]) -> None:
    """Follow a reviewer's decision: a dismissed case gets the undo of every action that may have
    reached the endpoint queued, and sent at once when an endpoint and the secret are set (else
    `compliance enforce dispatch` sends it later)."""
    if moved.get("to") != "dismissed":
        return
    from loguru import logger

    from ..cases.store import open_store
    from .dispatch import dispatch
    from .outbox import queue
    from .plan import undos_owed

    store = open_store(settings.state_path, settings.case_store)
    try:
        with store.transaction() as db:
            queued = queue(db, undos_owed(db, case_id, f"case {case_id} dismissed"), None)
        if not queued:
            return
        es = settings.enforcement
        if not es.endpoint or not os.environ.get(es.secret_env):
            logger.warning("{} undo action(s) for {} queued; not sent (no endpoint or {} unset): "
                           "run `compliance enforce dispatch`", queued, case_id, es.secret_env)
            return
        report = dispatch(store, settings)
        logger.info("{} undo action(s) for {} queued; {} delivered{}", queued, case_id, report.n("delivered"),
                    f"; {report.stopped}" if report.stopped else "")
    finally:
        store.close()
