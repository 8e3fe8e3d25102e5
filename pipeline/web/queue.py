"""The review queue: filtered, sorted cases one page at a time, and counts per filter value.

Pages are keyset-paginated: the next page starts after the last row's (sort key, case id), so page
500 costs what page 1 does. Each status is read on its own through an index that starts with the
status and is ordered like the sort (see users.MIGRATIONS), and the few statuses shown are merged
here; a store of a million cases answers a page without sorting it. Counts are exact (no estimate):
one grouped pass over an index holding every column they read, reused for ``web.counts_ttl_s``
seconds and dropped at once when a decision is made in the app.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
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
    assigned: str | None = None        # "me" | "unassigned" | None (from a query; "claimed" internally)
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


# every distinct source value, one index seek each (a loose index scan over web_queue_source)
DISTINCT_SOURCES = ("WITH RECURSIVE s(v) AS (SELECT MIN(source) FROM cases UNION ALL"
                    " SELECT (SELECT MIN(source) FROM cases WHERE source > s.v) FROM s WHERE s.v IS NOT NULL)"
                    " SELECT v FROM s WHERE v IS NOT NULL")


def source_values(db: Database, source: str) -> list[str]:
    """The stored source values that name ``source``: a rule reading several sources keeps them
    comma-joined (``logs,objects``), so the filter is an IN list the index answers, never a LIKE
    that reads every row."""
    return [r["v"] for r in db.all(DISTINCT_SOURCES) if source in str(r["v"]).split(",")]


def _where(f: Filters, user: User, *, with_facets: bool, db: Database) -> tuple[list[str], list[Any]]:
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
        values = source_values(db, f.source)
        where.append(f"source IN ({','.join('?' * len(values))})" if values else "1 = 0")
        args += values
    if f.assigned == "me":
        where.append("case_id IN (SELECT case_id FROM web_claims WHERE user_name = ? AND expires_at > ?)")
        args += [user.name, iso(now())]
    elif f.assigned == "claimed":   # internal: the counts of "unassigned" subtract these
        where.append("case_id IN (SELECT case_id FROM web_claims WHERE expires_at > ?)")
        args.append(iso(now()))
    elif f.assigned == "unassigned":
        where.append("case_id NOT IN (SELECT case_id FROM web_claims WHERE expires_at > ?)")
        args.append(iso(now()))
    return where, args


def page(db: Database, f: Filters, user: User, size: int) -> Page:
    expr, desc = SORTS[f.sort]
    op, direction = ("<", "DESC") if desc else (">", "ASC")
    cursor = decode_cursor(f.after) if f.after else None
    if cursor is not None and (isinstance(cursor[0], bool)
                               or not isinstance(cursor[0], str if f.sort == "last_seen" else int)):
        cursor = None   # a cursor of another sort (an edited link): the first page, not an error
    base_where, base_args = _where(f, user, with_facets=True, db=db)
    rows: list[dict[str, Any]] = []
    if f.sort == "severity" and f.category and not f.severity:
        return _by_severity_within_category(db, f, cursor, base_where, base_args, size)
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


def _by_severity_within_category(db: Database, f: Filters, cursor: tuple[Any, str] | None, base_where: list[str],
                                 base_args: list[Any], size: int) -> Page:
    """The queue by severity under a category filter: one read per (severity, status), each a
    range of web_queue_facets2 (status, severity, category, case_id) already in case id order, most
    severe first, stopping once a page is full; no sort of the category's cases, however many."""
    rows: list[dict[str, Any]] = []
    for rank, severity in enumerate(reversed(SEVERITIES)):     # critical (0) … low (3), as SEVERITY_RANK
        if cursor is not None and rank < int(cursor[0]):
            continue
        for status in f.statuses():
            where, args = ["status = ?", "severity = ?", *base_where], [status, severity, *base_args]
            if cursor is not None and rank == int(cursor[0]):
                where.append("case_id > ?")
                args.append(cursor[1])
            rows += db.all(f"SELECT {COLUMNS}, {rank} AS sort_key FROM cases WHERE {' AND '.join(where)}"
                           " ORDER BY case_id LIMIT ?", (*args, size + 1))
        if len(rows) > size:
            break
    rows.sort(key=lambda r: (r["sort_key"], r["case_id"]))
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1]["sort_key"], rows[-1]["case_id"]) if more and rows else None)


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

    def memo(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> tuple[Any, float]:
        """``compute()``'s value, reused while younger than the TTL; (value, when it was computed)."""
        t = time.time()
        with self._lock:
            hit = self._cache.get(key)
        if hit and t - hit[0] < self.ttl_s:
            return hit[1], hit[0]
        value = compute()
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = (t, value)
        return value, t

    def grouped(self, db: Database, f: Filters, user: User) -> tuple[list[dict[str, Any]], float]:
        """Case counts per (status, severity, category) under the filters other than those three:
        one grouped pass over an index holding every column it reads (web_queue_facets2; under a rule
        filter web_rules_stats, under a source filter web_queue_source), so no case row is read
        unless an account filter (whose index is narrow) or "assigned to me" picks a few."""
        key = ("facets", f.rule, f.account, f.source, f.assigned, user.name if f.assigned == "me" else None)

        def count(f: Filters) -> list[dict[str, Any]]:
            where, args = _where(f, user, with_facets=False, db=db)
            sql = ("SELECT status, severity, category, COUNT(*) AS n FROM cases"
                   + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY status, severity, category")
            return db.all(sql, args)

        def unassigned() -> list[dict[str, Any]]:
            # every case less the claimed ones: claims are few, and "not claimed" is a condition no
            # index holds, so counting it directly would read every case row
            every = {(r["status"], r["severity"], r["category"]): int(r["n"])
                     for r in self.grouped(db, replace(f, assigned=None), user)[0]}
            for r in count(replace(f, assigned="claimed")):
                k = (r["status"], r["severity"], r["category"])
                every[k] = every.get(k, 0) - int(r["n"])
            return [{"status": k[0], "severity": k[1], "category": k[2], "n": n} for k, n in every.items() if n > 0]

        return self.memo(key, unassigned if f.assigned == "unassigned" else lambda: count(f))


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
