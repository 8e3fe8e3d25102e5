"""Regulators' queries over the retained store, their exports, and the hash-chained audit log."""

from .audit import AuditReport, append_audit, read_audit, verify_audit
from .run import QueryResult, run_query

__all__ = ["AuditReport", "QueryResult", "append_audit", "read_audit", "run_query", "verify_audit"]
