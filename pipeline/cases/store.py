"""The case store: cases, their hits and history, scan runs, quarantined rows and the enforcement
outbox, on SQLite (default, WAL) or PostgreSQL.

Applying a run's hits is one transaction: new cases are opened, known ones gain only the hits
they did not have (``case_hits`` is keyed by the event), so scanning the same data twice adds
nothing. Every status change is a row in ``case_history``. Schema changes go through numbered
migrations recorded in ``schema_version``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StoreError
from ..faults import checkpoint
from ..rules.model import RuleSet
from .db import Database
from .ids import case_id

STATUSES = ("open", "confirmed", "enforced", "resolved", "dismissed")
# status → statuses a person (or the enforcement step) may move a case to
TRANSITIONS: dict[str, tuple[str, ...]] = {
    # open → enforced: `auto` policies and expired notices enforce without a reviewer's confirmation
    "open": ("confirmed", "dismissed", "resolved", "enforced"),
    "confirmed": ("enforced", "dismissed", "resolved", "open"),
    "enforced": ("resolved", "dismissed"),
    "resolved": ("open",),
    "dismissed": ("open",),
}

MIGRATIONS: list[str] = [
    # 1: cases, hits, runs, history, quarantine
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
        config_path TEXT, rules_digest TEXT, files INTEGER DEFAULT 0, rows_read INTEGER DEFAULT 0,
        rows_parsed INTEGER DEFAULT 0, rows_quarantined INTEGER DEFAULT 0, hits INTEGER DEFAULT 0,
        cases_new INTEGER DEFAULT 0, cases_updated INTEGER DEFAULT 0, cases_unchanged INTEGER DEFAULT 0,
        details TEXT
    );
    CREATE TABLE cases (
        case_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, rule_hash TEXT NOT NULL, rule_title TEXT,
        clause TEXT, law TEXT, category TEXT NOT NULL, severity TEXT NOT NULL, source TEXT,
        subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, account_id TEXT, status TEXT NOT NULL,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, first_event TEXT, last_event TEXT,
        hit_count INTEGER NOT NULL, evidence TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    CREATE INDEX cases_status ON cases(status);
    CREATE INDEX cases_account ON cases(account_id);
    CREATE INDEX cases_rule ON cases(rule_id);
    CREATE TABLE case_hits (case_id TEXT NOT NULL, hit_key TEXT NOT NULL, run_id TEXT NOT NULL,
                            PRIMARY KEY (case_id, hit_key));
    CREATE TABLE case_runs (case_id TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (case_id, run_id));
    CREATE TABLE case_history (
        id {autoid}, case_id TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, from_status TEXT, to_status TEXT, reason TEXT, run_id TEXT
    );
    CREATE INDEX case_history_case ON case_history(case_id);
    CREATE TABLE quarantine (
        run_id TEXT NOT NULL, source TEXT, source_file TEXT, source_line INTEGER, reason TEXT, raw {blob}
    )
    """,
    # 2: incremental scans remember each source file; enforcement plans and the action outbox
    """
    CREATE TABLE scanned_files (
        path TEXT PRIMARY KEY, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, sha256 TEXT NOT NULL,
        source TEXT NOT NULL, format TEXT NOT NULL, run_id TEXT NOT NULL, scanned_at TEXT NOT NULL
    );
    CREATE TABLE plans (
        plan_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, created_by TEXT, sha256 TEXT NOT NULL,
        status TEXT NOT NULL, applied_at TEXT, applied_by TEXT, body TEXT NOT NULL
    );
    CREATE TABLE actions (
        action_id TEXT PRIMARY KEY, plan_id TEXT, case_id TEXT NOT NULL, kind TEXT NOT NULL,
        action TEXT NOT NULL, product TEXT, level TEXT, mode TEXT, target TEXT NOT NULL,
        account_id TEXT, payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        not_before TEXT, last_error TEXT, response_status INTEGER, response_body TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, delivered_at TEXT, undo_of TEXT
    );
    CREATE INDEX actions_status ON actions(status);
    CREATE INDEX actions_case ON actions(case_id)
    """,
    # 3: the audit log, when the case store is shared (PostgreSQL); one canonical JSON line an entry
    """
    CREATE TABLE audit_log (seq BIGINT PRIMARY KEY, line TEXT NOT NULL);
    CREATE TABLE audit_head (id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)
    """,
    # 4: incremental object scans: the newest put_time already scanned, per bucket
    """
    CREATE TABLE watermarks (source TEXT NOT NULL, scope TEXT NOT NULL, value TEXT NOT NULL,
                             PRIMARY KEY (source, scope))
    """,
]


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ApplyResult:
    new: int
    updated: int      # known cases that gained hits in this run, or were reopened by it
    unchanged: int    # known cases seen again with no new hit
    reopened: int = 0


class CaseStore:
    def __init__(self, url: str):
        self.db = Database(url)
        self.url = url
        self._migrate()

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        with self.db.transaction() as db:
            yield db

    def _migrate(self) -> None:
        with self.db.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.scalar("SELECT MAX(version) FROM schema_version") or 0
            if current > len(MIGRATIONS):
                raise StoreError(f"case store has schema version {current}, newer than this program knows "
                                 f"({len(MIGRATIONS)})", hint="upgrade the pipeline package")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for stmt in db.ddl(MIGRATIONS[version - 1]).split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def schema_versions(self) -> list[int]:
        return [r["version"] for r in self.db.all("SELECT version FROM schema_version ORDER BY version")]

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self, config_path: str | None, rules_digest: str) -> str:
        run_id = datetime.now(timezone.utc).strftime("R%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        with self.transaction() as db:
            # a run still marked running was killed: nothing it did was committed
            db.execute("UPDATE runs SET status='interrupted' WHERE status='running'")
            db.execute("INSERT INTO runs (run_id, started_at, status, config_path, rules_digest) VALUES (?,?,?,?,?)",
                       (run_id, now_utc(), "running", config_path, rules_digest))
        return run_id

    def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        cols = ("files", "rows_read", "rows_parsed", "rows_quarantined", "hits",
                "cases_new", "cases_updated", "cases_unchanged")
        with self.transaction() as db:
            db.execute(
                f"UPDATE runs SET status=?, finished_at=?, {', '.join(f'{k}=?' for k in cols)}, details=? WHERE run_id=?",
                (status, now_utc(), *(int(counts.get(k, 0)) for k in cols),
                 json.dumps(counts.get("details", {}), ensure_ascii=False, default=str), run_id))

    def runs(self) -> pd.DataFrame:
        return self.db.frame("SELECT * FROM runs ORDER BY started_at")

    def save_quarantine(self, run_id: str, source: str, q: pd.DataFrame) -> None:
        with self.transaction() as db:
            _insert_quarantine(db, run_id, source, q)

    # -- incremental scans -------------------------------------------------------------------

    def scanned_files(self) -> dict[str, dict[str, Any]]:
        return {r["path"]: r for r in self.db.all("SELECT * FROM scanned_files")}

    # -- cases -------------------------------------------------------------------------------

    def watermarks(self, source: str) -> dict[str, str]:
        """scope → newest value already scanned (objects: bucket → put_time, ISO-8601 UTC)."""
        return {r["scope"]: r["value"] for r in self.db.all("SELECT scope, value FROM watermarks WHERE source=?",
                                                             (source,))}

    def apply_hits(self, run_id: str, hits: pd.DataFrame, rules: RuleSet, max_evidence: int,
                   files: list[dict[str, Any]] | None = None,
                   watermarks: dict[str, dict[str, str]] | None = None,
                   quarantine: Sequence[tuple[str, pd.DataFrame]] = ()) -> ApplyResult:
        """Fold a run's hits (pipeline.matchers.hits.HIT_COLUMNS) into cases, in one transaction.

        ``files`` (incremental scans) and the run's ``quarantine`` rows ((source, rows) pairs) are
        written in the same transaction, so a run killed before it commits leaves no trace but its
        run record and is simply scanned again.
        """
        now = now_utc()
        new = updated = unchanged = reopened = 0
        with self.transaction() as db:
            for source, rows in quarantine:
                _insert_quarantine(db, run_id, source, rows)
            if not hits.empty:
                hits = hits.copy()
                hits["case_id"] = [case_id(r, t, s) for r, t, s in
                                   zip(hits["rule_id"], hits["subject_type"], hits["subject_id"])]
                hits = hits.sort_values(["case_id", "event_time", "hit_key"], kind="stable")
                for cid, group in hits.groupby("case_id", sort=False):
                    outcome = self._apply_case(db, run_id, str(cid), group.drop_duplicates("hit_key"),
                                               rules, max_evidence, now)
                    checkpoint("store.case_applied")
                    new += outcome == "new"
                    updated += outcome in ("updated", "reopened")
                    unchanged += outcome == "unchanged"
                    reopened += outcome == "reopened"
            if files:
                for f in files:
                    db.execute("DELETE FROM scanned_files WHERE path=?", (f["path"],))
                    db.execute("INSERT INTO scanned_files VALUES (?,?,?,?,?,?,?,?)",
                               (f["path"], f["size"], f["mtime_ns"], f["sha256"], f["source"], f["format"],
                                run_id, now))
            for source, marks in (watermarks or {}).items():
                for scope, value in marks.items():
                    old = db.scalar("SELECT value FROM watermarks WHERE source=? AND scope=?", (source, scope))
                    if old is None:
                        db.execute("INSERT INTO watermarks VALUES (?,?,?)", (source, scope, value))
                    elif value > old:  # ISO-8601 UTC strings order like the times they name
                        db.execute("UPDATE watermarks SET value=? WHERE source=? AND scope=?", (value, source, scope))
        return ApplyResult(new, updated, unchanged, reopened)

    def _apply_case(self, db: Database, run_id: str, cid: str, group: pd.DataFrame, rules: RuleSet,
                    max_evidence: int, now: str) -> str:
        first = group.iloc[0]
        rule = rules.by_id(first["rule_id"])
        existing = db.one("SELECT status, evidence, rule_hash, first_event, last_event FROM cases WHERE case_id=?",
                          (cid,))
        before = db.scalar("SELECT COUNT(*) FROM case_hits WHERE case_id=?", (cid,))
        db.executemany("INSERT INTO case_hits (case_id, hit_key, run_id) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                       [(cid, str(k), run_id) for k in group["hit_key"]])
        count = db.scalar("SELECT COUNT(*) FROM case_hits WHERE case_id=?", (cid,))
        added = count - before
        db.execute("INSERT INTO case_runs (case_id, run_id) VALUES (?,?) ON CONFLICT DO NOTHING", (cid, run_id))
        t_first, t_last = _iso(group["event_time"].min()), _iso(group["event_time"].max())
        items = [_evidence_item(r) for r in group.head(max_evidence).itertuples(index=False)]
        accounts = [a for a in group["account_id"] if isinstance(a, str) and a]
        account = max(sorted(set(accounts)), key=accounts.count) if accounts else None
        if existing is None:
            db.execute(
                "INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category, severity,"
                " source, subject_type, subject_id, account_id, status, first_seen, last_seen, first_event,"
                " last_event, hit_count, evidence, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (cid, rule.id, rule.content_hash, rule.title, rule.clause, rule.law, rule.category, rule.severity,
                 ",".join(rule.sources), first["subject_type"], first["subject_id"], account, "open", now, now,
                 t_first, t_last, count, json.dumps(items, ensure_ascii=False), now))
            self._history(db, cid, "scan", "opened", None, "open", f"{added} hit(s) of rule {rule.id}", run_id, now)
            return "new"
        old_items = json.loads(existing["evidence"])
        known = {i.get("hit_key") for i in old_items}
        merged = (old_items + [i for i in items if i["hit_key"] not in known])[:max_evidence]
        first_event = min(x for x in (existing["first_event"], t_first) if x) if (existing["first_event"] or t_first) else None
        last_event = max(x for x in (existing["last_event"], t_last) if x) if (existing["last_event"] or t_last) else None
        db.execute("UPDATE cases SET last_seen=?, hit_count=?, evidence=?, rule_hash=?,"
                   " account_id=COALESCE(account_id, ?), first_event=?, last_event=?, updated_at=? WHERE case_id=?",
                   (now, count, json.dumps(merged, ensure_ascii=False), rule.content_hash, account,
                    first_event, last_event, now, cid))
        if existing["rule_hash"] != rule.content_hash:
            self._history(db, cid, "scan", "rule_changed", None, None,
                          f"rule {rule.id} now {rule.content_hash[:12]}", run_id, now)
        if added:
            self._history(db, cid, "scan", "hits_added", None, None, f"{added} new hit(s)", run_id, now)
        if existing["status"] == "resolved" and (added or self._auto_resolved(db, cid)):
            # The violation is back: a resolved case opens again on a new event. A case the scan itself
            # resolved (a full scan no longer found it) also opens again when a scan finds its known
            # events once more (the same object version is back in the listing); one a reviewer resolved
            # does not: the reviewer saw those events. The hit count stays the number of distinct events.
            # A dismissed case stays dismissed and only records the new hits.
            why = "violation found again" + ("" if added else " (hits already recorded before it was resolved)")
            db.execute("UPDATE cases SET status='open' WHERE case_id=?", (cid,))
            self._history(db, cid, "scan", "reopened", "resolved", "open", why, run_id, now)
            return "reopened"
        return "updated" if added else "unchanged"

    @staticmethod
    def _auto_resolved(db: Database, cid: str) -> bool:
        """Whether the case's last move to resolved was the scan's own (auto_resolve)."""
        row = db.one("SELECT action FROM case_history WHERE case_id=? AND to_status='resolved' ORDER BY id DESC",
                     (cid,))
        return row is not None and row["action"] == "auto_resolved"

    @staticmethod
    def _history(db: Database, cid: str, actor: str, action: str, from_status: str | None, to_status: str | None,
                 reason: str | None, run_id: str | None, at: str) -> None:
        db.execute("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id)"
                   " VALUES (?,?,?,?,?,?,?,?)", (cid, at, actor, action, from_status, to_status, reason, run_id))

    def auto_resolve(self, run_id: str, rule_ids: list[str], seen_case_ids: set[str]) -> list[str]:
        """Resolve open cases of ``rule_ids`` that this (full) run did not find again."""
        if not rule_ids:
            return []
        marks = ",".join("?" * len(rule_ids))
        now = now_utc()
        resolved = []
        with self.transaction() as db:
            rows = db.all(f"SELECT case_id FROM cases WHERE status='open' AND rule_id IN ({marks})", rule_ids)
            for r in rows:
                if r["case_id"] in seen_case_ids:
                    continue
                db.execute("UPDATE cases SET status='resolved', updated_at=? WHERE case_id=?", (now, r["case_id"]))
                self._history(db, r["case_id"], "scan", "auto_resolved", "open", "resolved",
                              "violation no longer found by a full scan", run_id, now)
                resolved.append(r["case_id"])
        return resolved

    def transition(self, cid: str, to_status: str, *, by: str, reason: str, action: str | None = None) -> dict[str, Any]:
        """Move a case to ``to_status`` if that move is allowed from its current status; recorded in history."""
        if not by or not reason:
            raise StoreError("a case transition needs --by NAME and --reason TEXT")
        with self.transaction() as db:
            row = db.one("SELECT status FROM cases WHERE case_id=?", (cid,))
            if row is None:
                raise StoreError(f"no case {cid!r}", hint="list case ids with `compliance cases list`")
            current = row["status"]
            if to_status not in TRANSITIONS.get(current, ()):
                allowed = ", ".join(TRANSITIONS.get(current, ())) or "none"
                raise StoreError(f"case {cid} is {current}; it cannot become {to_status}",
                                 hint=f"from {current} it can become: {allowed}")
            now = now_utc()
            db.execute("UPDATE cases SET status=?, updated_at=? WHERE case_id=?", (to_status, now, cid))
            self._history(db, cid, by, action or to_status, current, to_status, reason, None, now)
        return {"case_id": cid, "from": current, "to": to_status}

    def held_days(self) -> dict[Any, list[str]]:
        """UTC days of access logs that unfinished cases cite: day → case ids. Purging keeps them."""
        from datetime import date, timedelta

        rows = self.db.all("SELECT case_id, first_event, last_event FROM cases WHERE status IN "
                           "('open', 'confirmed', 'enforced') AND source LIKE '%logs%' AND first_event IS NOT NULL")
        out: dict[date, list[str]] = {}
        for r in rows:
            first = pd.Timestamp(r["first_event"]).tz_convert("UTC").date()
            last = pd.Timestamp(r["last_event"] or r["first_event"]).tz_convert("UTC").date()
            day = first
            while day <= last:
                out.setdefault(day, []).append(r["case_id"])
                day += timedelta(days=1)
        return out

    def list_cases(self, *, status: str | None = None, category: str | None = None, severity: str | None = None,
                   account: str | None = None, rule: str | None = None, subject_type: str | None = None) -> pd.DataFrame:
        where, args = [], []
        for col, val in (("status", status), ("category", category), ("severity", severity),
                         ("account_id", account), ("rule_id", rule), ("subject_type", subject_type)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM cases" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, case_id"
        df = self.db.frame(sql, args)
        runs = self.db.frame("SELECT case_id, run_id FROM case_runs ORDER BY run_id")
        by_case = runs.groupby("case_id")["run_id"].apply(list).to_dict() if len(runs) else {}
        df["run_ids"] = [by_case.get(c, []) for c in df["case_id"]]
        return df

    def get_case(self, cid: str) -> dict[str, Any]:
        case = self.db.one("SELECT * FROM cases WHERE case_id=?", (cid,))
        if case is None:
            raise StoreError(f"no case {cid!r}", hint="list case ids with `compliance cases list`")
        case["evidence"] = json.loads(case["evidence"])
        case["run_ids"] = [r["run_id"] for r in self.db.all(
            "SELECT run_id FROM case_runs WHERE case_id=? ORDER BY run_id", (cid,))]
        case["history"] = self.db.all(
            "SELECT at, actor, action, from_status, to_status, reason, run_id FROM case_history "
            "WHERE case_id=? ORDER BY id", (cid,))
        return case


def _insert_quarantine(db: Database, run_id: str, source: str, q: pd.DataFrame) -> None:
    if q.empty:
        return
    rows = [(run_id, source, r.source_file, None if pd.isna(r.source_line) else int(r.source_line),
             r.reason, bytes(r.raw) if isinstance(r.raw, (bytes, bytearray)) else str(r.raw).encode())
            for r in q.itertuples(index=False)]
    db.executemany("INSERT INTO quarantine VALUES (?,?,?,?,?,?)", rows)


def _iso(t: Any) -> str | None:
    if t is None or pd.isna(t):
        return None
    return pd.Timestamp(t).isoformat()


def _evidence_item(r: Any) -> dict[str, Any]:
    context = getattr(r, "context", None)
    return {
        "hit_key": str(r.hit_key),
        "source_file": r.source_file,
        "source_line": None if r.source_line is None or pd.isna(r.source_line) else int(r.source_line),
        "event_time": _iso(r.event_time),
        # the matched record's own fields (object key and etag, requested uri, stream title)
        **(json.loads(context) if isinstance(context, str) and context else {}),
        "matches": json.loads(r.evidence) if isinstance(r.evidence, str) else r.evidence,
    }


def store_url(state_dir: Path, url: str | None = None) -> str:
    """The configured case store URL: SQLite at <state_dir>/cases.db unless the config names one."""
    return url or f"sqlite:///{state_dir / 'cases.db'}"


def open_store(state_dir: Path, url: str | None = None) -> CaseStore:
    """Open (and migrate) the configured case store."""
    return CaseStore(store_url(state_dir, url))
