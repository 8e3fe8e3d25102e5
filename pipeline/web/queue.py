"""The review queue: filtered, sorted cases one page at a time, and counts per filter value.

Pages are keyset-paginated: the next page starts after the last row's (sort key, case id), so page
500 costs what page 1 does. Each status is read on its own through an index that starts with the
status and is ordered like the sort (see users.MIGRATIONS), and the few statuses shown are merged
here; a store of a million cases answers a page without sorting it. Counts come from one grouped
pass over a covering index and are reused for ``web.counts_ttl_s`` seconds.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..cases.db import Database
from ..cases.store import STATUSES
from ..rules.model import SEVERITIES
from .users import SEVERITY_RANK, User, iso, now

QUEUE_STATUSES = ("open", "confirmed")
# sort name → (SQL expression, descending?)
SORTS: dict[str, tuple[str, bool]] = {
    "severity": (SEVERITY_RANK, False),
    "last_seen": ("last_seen", True),
    "hits": ("hit_count", True),
}
COLUMNS = ("case_id, status, severity, category, rule_id, rule_title, clause, subject_type, subject_id, account_id,"
           " source, hit_count, last_seen, evidence")


@dataclass(frozen=True)
class Filters:
    status: str | None = None          # None: the queue's statuses (open, confirmed)
    category: str | None = None
    severity: str | None = None
    rule: str | None = None
    account: str | None = None
    source: str | None = None
    assigned: str | None = None        # "me" | "unassigned" | None
    sort: str = "severity"
    after: str | None = None           # cursor of the previous page's last row

    @classmethod
    def from_query(cls, q: Any) -> Filters:
        def get(name: str, valid: tuple[str, ...] | None = None) -> str | None:
            v = (q.get(name) or "").strip()
            if not v or (valid is not None and v not in valid):
                return None
            return v[:200]
        return cls(status=get("status", STATUSES), category=get("category"), severity=get("severity", SEVERITIES),
                   rule=get("rule"), account=get("account"), source=get("source"),
                   assigned=get("assigned", ("me", "unassigned")), sort=get("sort", tuple(SORTS)) or "severity",
                   after=get("after"))

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters as query parameters (with ``changes``), for links."""
        f = replace(self, **changes)
        return {k: v for k, v in (("status", f.status), ("category", f.category), ("severity", f.severity),
                                  ("rule", f.rule), ("account", f.account), ("source", f.source),
                                  ("assigned", f.assigned), ("sort", f.sort if f.sort != "severity" else None),
                                  ("after", f.after)) if v}

    def statuses(self) -> tuple[str, ...]:
        return (self.status,) if self.status else QUEUE_STATUSES


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_after: str | None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    total: int = 0
    counted_at: float = 0.0


def encode_cursor(key: Any, case_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([key, case_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str] | None:
    try:
        key, cid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(cid, str) or not isinstance(key, (str, int, float)):
        return None
    return key, cid


def _where(f: Filters, user: User, *, with_facets: bool) -> tuple[list[str], list[Any]]:
    """SQL conditions for the filters other than status; with_facets adds severity and category."""
    where: list[str] = []
    args: list[Any] = []
    for col, val in (("rule_id", f.rule), ("account_id", f.account)):
        if val:
            where.append(f"{col} = ?")
            args.append(val)
    if with_facets:
        for col, val in (("severity", f.severity), ("category", f.category)):
            if val:
                where.append(f"{col} = ?")
                args.append(val)
    if f.source:
        # a rule may read several sources: the column holds them comma-joined
        where.append("(',' || source || ',') LIKE ?")
        args.append(f"%,{f.source},%")
    if f.assigned == "me":
        where.append("case_id IN (SELECT case_id FROM web_claims WHERE user_name = ? AND expires_at > ?)")
        args += [user.name, iso(now())]
    elif f.assigned == "unassigned":
        where.append("case_id NOT IN (SELECT case_id FROM web_claims WHERE expires_at > ?)")
        args.append(iso(now()))
    return where, args


def page(db: Database, f: Filters, user: User, size: int) -> Page:
    expr, desc = SORTS[f.sort]
    op, direction = ("<", "DESC") if desc else (">", "ASC")
    cursor = decode_cursor(f.after) if f.after else None
    base_where, base_args = _where(f, user, with_facets=True)
    rows: list[dict[str, Any]] = []
    for status in f.statuses():
        where, args = ["status = ?", *base_where], [status, *base_args]
        if cursor is not None:
            where.append(f"({expr}, case_id) {op} (?, ?)")
            args += [cursor[0], cursor[1]]
        sql = (f"SELECT {COLUMNS}, {expr} AS sort_key FROM cases WHERE {' AND '.join(where)} "
               f"ORDER BY {expr} {direction}, case_id {direction} LIMIT ?")
        rows += db.all(sql, (*args, size + 1))
    rows.sort(key=lambda r: (r["sort_key"], r["case_id"]), reverse=desc)
    more = len(rows) > size
    rows = rows[:size]
    nxt = encode_cursor(rows[-1]["sort_key"], rows[-1]["case_id"]) if more and rows else None
    return Page(rows, nxt)


class CountCache:
    """Counts per filter value, reused for a few seconds: the grouped pass over a large store costs
    more than a page, and a reviewer paging through the queue does not need it recounted each time."""

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[float, list[dict[str, Any]]]] = {}

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def grouped(self, db: Database, f: Filters, user: User) -> tuple[list[dict[str, Any]], float]:
        where, args = _where(f, user, with_facets=False)
        key = (f.rule, f.account, f.source, f.assigned, user.name if f.assigned == "me" else None)
        t = time.time()
        with self._lock:
            hit = self._cache.get(key)
        if hit and t - hit[0] < self.ttl_s:
            return hit[1], hit[0]
        sql = ("SELECT status, severity, category, COUNT(*) AS n FROM cases"
               + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY status, severity, category")
        rows = db.all(sql, args)
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (t, rows)
        return rows, t


def facet_counts(grouped: list[dict[str, Any]], f: Filters) -> tuple[dict[str, dict[str, int]], int]:
    """Per facet, the count of each value with the other facets' filters applied (so a count says
    how many cases picking that value would show), and the total the current filters show."""
    statuses = set(f.statuses())
    counts: dict[str, dict[str, int]] = {"status": {}, "severity": {}, "category": {}}
    total = 0
    for r in grouped:
        st, sev, cat, n = r["status"], r["severity"], r["category"], int(r["n"])
        ok_sev = f.severity is None or sev == f.severity
        ok_cat = f.category is None or cat == f.category
        ok_st = st in statuses
        if ok_sev and ok_cat:
            counts["status"][st] = counts["status"].get(st, 0) + n
        if ok_st and ok_cat:
            counts["severity"][sev] = counts["severity"].get(sev, 0) + n
        if ok_st and ok_sev:
            counts["category"][cat] = counts["category"].get(cat, 0) + n
        if ok_st and ok_sev and ok_cat:
            total += n
    counts["severity"] = {s: counts["severity"][s] for s in reversed(SEVERITIES) if s in counts["severity"]}
    counts["category"] = dict(sorted(counts["category"].items(), key=lambda kv: (-kv[1], kv[0])))
    return counts, total
