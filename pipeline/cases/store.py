"""The case store: cases, their hits and history, scan runs and quarantined rows, in SQLite (WAL).

Applying a run's hits is one transaction: new cases are opened, known ones gain only the hits
they did not have (``case_hits`` is keyed by the event), so scanning the same data twice adds
nothing. Schema changes go through numbered migrations recorded in ``schema_version``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StoreError
from ..rules.model import RuleSet
from .ids import case_id

STATUSES = ("open", "confirmed", "enforced", "resolved", "dismissed")

MIGRATIONS: list[str] = [
    # 1: the first schema
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
        id INTEGER PRIMARY KEY AUTOINCREMENT, case_id TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, from_status TEXT, to_status TEXT, reason TEXT, run_id TEXT
    );
    CREATE INDEX case_history_case ON case_history(case_id);
    CREATE TABLE quarantine (
        run_id TEXT NOT NULL, source TEXT, source_file TEXT, source_line INTEGER, reason TEXT, raw BLOB
    );
    """,
]


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ApplyResult:
    new: int
    updated: int      # known cases that gained hits in this run
    unchanged: int    # known cases seen again with no new hit


class CaseStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA busy_timeout=30000")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > len(MIGRATIONS):
                raise StoreError(f"case store {self.path} has schema version {current}, newer than this "
                                 f"program knows ({len(MIGRATIONS)})", hint="upgrade the pipeline package")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for stmt in MIGRATIONS[version - 1].split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    # -- runs --------------------------------------------------------------------------------

    def begin_run(self, config_path: str | None, rules_digest: str) -> str:
        run_id = datetime.now(timezone.utc).strftime("R%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        with self.transaction() as c:
            c.execute("INSERT INTO runs (run_id, started_at, status, config_path, rules_digest) VALUES (?,?,?,?,?)",
                      (run_id, now_utc(), "running", config_path, rules_digest))
        return run_id

    def finish_run(self, run_id: str, status: str, counts: dict[str, Any]) -> None:
        cols = ("files", "rows_read", "rows_parsed", "rows_quarantined", "hits",
                "cases_new", "cases_updated", "cases_unchanged")
        with self.transaction() as c:
            c.execute(
                f"UPDATE runs SET status=?, finished_at=?, {', '.join(f'{k}=?' for k in cols)}, details=? WHERE run_id=?",
                (status, now_utc(), *(int(counts.get(k, 0)) for k in cols),
                 json.dumps(counts.get("details", {}), ensure_ascii=False), run_id),
            )

    def runs(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM runs ORDER BY started_at", self.conn)

    def save_quarantine(self, run_id: str, source: str, q: pd.DataFrame) -> None:
        if q.empty:
            return
        rows = [(run_id, source, r.source_file, None if pd.isna(r.source_line) else int(r.source_line),
                 r.reason, r.raw if isinstance(r.raw, (bytes, bytearray)) else str(r.raw).encode())
                for r in q.itertuples(index=False)]
        with self.transaction() as c:
            c.executemany("INSERT INTO quarantine VALUES (?,?,?,?,?,?)", rows)

    # -- cases -------------------------------------------------------------------------------

    def apply_hits(self, run_id: str, hits: pd.DataFrame, rules: RuleSet, max_evidence: int,
                   source_of: dict[str, str] | None = None) -> ApplyResult:
        """Fold a run's hits (pipeline.matchers.hits.HIT_COLUMNS) into cases, in one transaction."""
        if hits.empty:
            return ApplyResult(0, 0, 0)
        now = now_utc()
        hits = hits.copy()
        hits["case_id"] = [case_id(r, t, s) for r, t, s in zip(hits["rule_id"], hits["subject_type"], hits["subject_id"])]
        hits = hits.sort_values(["case_id", "event_time", "hit_key"], kind="stable")
        new = updated = unchanged = 0
        with self.transaction() as c:
            for cid, group in hits.groupby("case_id", sort=False):
                group = group.drop_duplicates("hit_key")
                first = group.iloc[0]
                rule = rules.by_id(first["rule_id"])
                existing = c.execute("SELECT hit_count, evidence, rule_hash, first_event, last_event "
                                     "FROM cases WHERE case_id=?", (cid,)).fetchone()
                keys = group["hit_key"].astype(str).tolist()
                before = c.total_changes
                c.executemany("INSERT OR IGNORE INTO case_hits (case_id, hit_key, run_id) VALUES (?,?,?)",
                              [(cid, k, run_id) for k in keys])
                added = c.total_changes - before
                c.execute("INSERT OR IGNORE INTO case_runs (case_id, run_id) VALUES (?,?)", (cid, run_id))
                t_first, t_last = _iso(group["event_time"].min()), _iso(group["event_time"].max())
                items = [_evidence_item(r) for r in group.head(max_evidence).itertuples(index=False)]
                accounts = [a for a in group["account_id"] if isinstance(a, str) and a]
                account = max(set(accounts), key=accounts.count) if accounts else None
                if existing is None:
                    new += 1
                    c.execute(
                        "INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category, severity,"
                        " source, subject_type, subject_id, account_id, status, first_seen, last_seen, first_event,"
                        " last_event, hit_count, evidence, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (cid, rule.id, rule.content_hash, rule.title, rule.clause, rule.law, rule.category,
                         rule.severity, (source_of or {}).get(rule.id, rule.sources[0]), first["subject_type"],
                         first["subject_id"], account, "open", now, now, t_first, t_last, added,
                         json.dumps(items, ensure_ascii=False), now))
                    c.execute("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id)"
                              " VALUES (?,?,?,?,?,?,?,?)",
                              (cid, now, "scan", "opened", None, "open", f"{added} hit(s) of rule {rule.id}", run_id))
                    continue
                old_items = json.loads(existing["evidence"])
                known = {i.get("hit_key") for i in old_items}
                merged = old_items + [i for i in items if i["hit_key"] not in known]
                count = c.execute("SELECT COUNT(*) FROM case_hits WHERE case_id=?", (cid,)).fetchone()[0]
                c.execute(
                    "UPDATE cases SET last_seen=?, hit_count=?, evidence=?, rule_hash=?, account_id=COALESCE(account_id, ?),"
                    " first_event=MIN(COALESCE(first_event, ?), ?), last_event=MAX(COALESCE(last_event, ?), ?),"
                    " updated_at=? WHERE case_id=?",
                    (now, count, json.dumps(merged[:max_evidence], ensure_ascii=False), rule.content_hash, account,
                     t_first, t_first, t_last, t_last, now, cid))
                if existing["rule_hash"] != rule.content_hash:
                    c.execute("INSERT INTO case_history (case_id, at, actor, action, reason, run_id) VALUES (?,?,?,?,?,?)",
                              (cid, now, "scan", "rule_changed", f"rule {rule.id} now {rule.content_hash[:12]}", run_id))
                if added:
                    updated += 1
                    c.execute("INSERT INTO case_history (case_id, at, actor, action, reason, run_id) VALUES (?,?,?,?,?,?)",
                              (cid, now, "scan", "hits_added", f"{added} new hit(s)", run_id))
                else:
                    unchanged += 1
        return ApplyResult(new, updated, unchanged)

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
        df = pd.read_sql_query(sql, self.conn, params=args)
        runs = pd.read_sql_query("SELECT case_id, run_id FROM case_runs ORDER BY run_id", self.conn)
        by_case = runs.groupby("case_id")["run_id"].apply(list).to_dict()
        df["run_ids"] = [by_case.get(c, []) for c in df["case_id"]]
        return df

    def get_case(self, cid: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM cases WHERE case_id=?", (cid,)).fetchone()
        if row is None:
            raise StoreError(f"no case {cid!r}", hint="list case ids with `compliance cases list`")
        case = dict(row)
        case["evidence"] = json.loads(case["evidence"])
        case["run_ids"] = [r[0] for r in self.conn.execute(
            "SELECT run_id FROM case_runs WHERE case_id=? ORDER BY run_id", (cid,))]
        case["history"] = [dict(r) for r in self.conn.execute(
            "SELECT at, actor, action, from_status, to_status, reason, run_id FROM case_history "
            "WHERE case_id=? ORDER BY id", (cid,))]
        return case


def _iso(t: Any) -> str | None:
    if t is None or pd.isna(t):
        return None
    return pd.Timestamp(t).isoformat()


def _evidence_item(r: Any) -> dict[str, Any]:
    return {
        "hit_key": str(r.hit_key),
        "source_file": r.source_file,
        "source_line": None if r.source_line is None or pd.isna(r.source_line) else int(r.source_line),
        "event_time": _iso(r.event_time),
        "matches": json.loads(r.evidence) if isinstance(r.evidence, str) else r.evidence,
    }


def open_store(state_dir: Path, url: str | None = None) -> CaseStore:
    """The configured case store: SQLite at <state_dir>/cases.db unless a URL names another."""
    if url and not url.startswith("sqlite:"):
        raise StoreError(f"unsupported case store URL {url!r}", hint="use sqlite:///path/to/cases.db or leave case_store empty")
    path = Path(url[len("sqlite:///"):]) if url else state_dir / "cases.db"
    return CaseStore(path)
