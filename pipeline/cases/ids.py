"""Stable case ids: the same rule, subject type and subject always give the same id."""

from __future__ import annotations

import hashlib


def case_id(rule_id: str, subject_type: str, subject_id: str) -> str:
    digest = hashlib.sha256(f"{rule_id}\x1f{subject_type}\x1f{subject_id}".encode()).hexdigest()
    return "C" + digest[:16]
