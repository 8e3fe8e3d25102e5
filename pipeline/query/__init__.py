"""Regulators' queries over the retained store, their exports, and the hash-chained audit log."""

from .audit import AuditReport, RepairReport, append_audit, audited, read_audit, repair_audit, verify_audit
from .run import QueryResult, run_query

__all__ = ["AuditReport", "QueryResult", "RepairReport", "append_audit", "audited", "read_audit", "repair_audit",
           "run_query", "verify_audit"]
