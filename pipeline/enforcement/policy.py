"""The penalty table: which product a case's subject belongs to, which action each level takes
there, each action's undo, and which policy entry (level, mode) governs a case."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Any

from ..config import EnforcementSettings, PolicyEntry

LEVELS = ("light", "medium", "severe")
MODES = ("auto", "review", "notice")

# product → level → action (product.md, Enforcement)
PENALTIES: dict[str, dict[str, str]] = {
    "object_storage": {"light": "disable_object", "medium": "freeze_bucket", "severe": "freeze_account"},
    "cdn": {"light": "block_url", "medium": "freeze_domain", "severe": "freeze_account"},
    "live_streaming": {"light": "disable_stream", "medium": "freeze_hub", "severe": "freeze_account"},
}

UNDO: dict[str, str] = {
    "disable_object": "enable_object",
    "freeze_bucket": "unfreeze_bucket",
    "freeze_account": "unfreeze_account",
    "block_url": "unblock_url",
    "freeze_domain": "unfreeze_domain",
    "disable_stream": "enable_stream",
    "freeze_hub": "unfreeze_hub",
}

NOTICE_ACTION = "send_notice"

PRODUCT_OF_SUBJECT: dict[str, str] = {
    "object": "object_storage",
    "bucket": "object_storage",
    "domain": "cdn",
    "url": "cdn",
    "stream": "live_streaming",
    "hub": "live_streaming",
}

# Cases against these subjects are never enforced against a customer, with the reason shown in plans.
NOT_ENFORCED: dict[str, str] = {
    # The client IP is a third party attacking a customer's site: the customer is the victim, and
    # freezing their service would punish them for it. Blocking the attacker belongs to the WAF.
    "client_ip": "the subject is a client IP attacking a customer's site; the customer is not at fault "
                 "(block the address at the edge instead)",
}


@dataclass(frozen=True)
class Decision:
    """What the policy says about one case."""

    level: str
    mode: str
    notice_days: int


@dataclass(frozen=True)
class Intended:
    """One action the policy wants taken against one target."""

    action: str
    product: str
    level: str
    target: str


def decide(settings: EnforcementSettings, category: str, severity: str) -> Decision | None:
    """The first policy entry matching ``category`` and ``severity``, or None."""
    for entry in settings.policy:
        if _matches(entry, category, severity):
            return Decision(entry.level, entry.mode, entry.notice_days or settings.notice_days)
    return None


def _matches(entry: PolicyEntry, category: str, severity: str) -> bool:
    return severity in entry.severities and any(fnmatch.fnmatchcase(category, g) for g in entry.categories)


def intended_actions(case: dict[str, Any], level: str) -> tuple[list[Intended], str | None]:
    """The actions ``level`` means for this case's subject, or ([], why not)."""
    stype, sid, account = case["subject_type"], str(case["subject_id"]), case.get("account_id")
    if stype in NOT_ENFORCED:
        return [], NOT_ENFORCED[stype]
    if stype == "account" or level == "severe":
        # an account-level violation has no smaller unit to act on
        if not account and stype != "account":
            return [], "severe penalty needs the case's account, which is unknown (add bindings)"
        return [Intended("freeze_account", PRODUCT_OF_SUBJECT.get(stype, "account"), "severe",
                         sid if stype == "account" else str(account))], None
    found = PRODUCT_OF_SUBJECT.get(stype)
    if found is None:
        return [], f"no product is known for subject type {stype!r}"
    product = found
    action = PENALTIES[product][level]
    if action == "block_url":
        urls = evidence_urls(case)
        if not urls:
            return [], ("light penalty blocks URLs, but the evidence keeps no full URL "
                        "(give this category level medium to take the domain offline)")
        return [Intended(action, product, level, u) for u in urls], None
    return [Intended(action, product, level, _target(stype, sid, action))], None


def _target(stype: str, sid: str, action: str) -> str:
    """The resource an action names: an object key, its bucket, a stream, its hub, a domain."""
    if action == "freeze_bucket" and stype == "object":
        return sid.split("/", 1)[0]
    if action == "freeze_hub" and stype == "stream":
        return sid.split("/", 1)[0]
    return sid


def evidence_urls(case: dict[str, Any]) -> list[str]:
    """Distinct URLs (domain + path) named in a domain case's evidence.

    A keyword match keeps only the matched span of the path, which is no URL to block; the full
    request path is taken from an evidence item's ``uri`` / ``path`` or a match's ``value`` where
    the scan kept it.
    """
    items = case["evidence"]
    if isinstance(items, str):
        items = json.loads(items)
    domain = str(case["subject_id"])
    urls: list[str] = []
    for item in items:
        candidates = [item.get("uri"), item.get("path")]
        candidates += [m.get("value") for m in item.get("matches", [])
                       if m.get("field") in ("uri", "path") and m.get("kind") != "aggregate"]
        for path in candidates:
            if isinstance(path, str) and path:
                url = domain + (path if path.startswith("/") else "/" + path)
                if url not in urls:
                    urls.append(url)
    return urls
