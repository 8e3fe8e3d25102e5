"""The case store: cases, their hits and history, scan runs, quarantined rows and the enforcement
outbox, on SQLite (default, WAL) or PostgreSQL.

Applying a run's hits is one transaction (``fold.py``, set-based): new cases are opened, known
ones gain only the hits they did not have (``case_hits`` is keyed by the event), so scanning the
same data twice adds nothing. Every status change is a row in ``case_history``. Schema changes go
through numbered migrations (``schema.py``) recorded in ``schema_version``.
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
from ..rules.model import RuleSet
from .db import Database
from .fold import ApplyResult, fold
from .schema import MIGRATIONS, migrate  # noqa: F401  (MIGRATIONS: importers of store.MIGRATIONS)

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



def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


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
        migrate(self.db)

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
        with self.transaction() as db:
            for source, rows in quarantine:
                _insert_quarantine(db, run_id, source, rows)
            result = fold(db, run_id, hits, rules, max_evidence, now)
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
        return result

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


def store_url(state_dir: Path, url: str | None = None) -> str:
    """The configured case store URL: SQLite at <state_dir>/cases.db unless the config names one."""
    return url or f"sqlite:///{state_dir / 'cases.db'}"


def open_store(state_dir: Path, url: str | None = None) -> CaseStore:
    """Open (and migrate) the configured case store."""
    return CaseStore(store_url(state_dir, url))
