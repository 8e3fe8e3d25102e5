"""The case store's schema: numbered migrations, applied once each and recorded in ``schema_version``.

DDL is written once with placeholders (``{autoid}``, ``{blob}``, ...) that ``Database.ddl`` fills per engine.
A migration is appended, never edited: stores in the field have run the earlier ones.
"""

from __future__ import annotations

from ..errors import StoreError
from .db import Database

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
    # 5: every rescan writes a row of case_runs for each case it sees and updates the case: SQLite
    # keeps hit keys and runs in their primary key's tree alone (WITHOUT ROWID, not a table and an
    # index beside it); PostgreSQL leaves room on each page of cases for the new row versions, so
    # an update that changes no indexed column writes no index entry (a HOT update)
    """
    CREATE TABLE case_hits_v5 (case_id TEXT NOT NULL, hit_key TEXT NOT NULL, run_id TEXT NOT NULL,
                               PRIMARY KEY (case_id, hit_key)) {without_rowid};
    INSERT INTO case_hits_v5 (case_id, hit_key, run_id) SELECT case_id, hit_key, run_id FROM case_hits;
    DROP TABLE case_hits;
    ALTER TABLE case_hits_v5 RENAME TO case_hits;
    CREATE TABLE case_runs_v5 (case_id TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (case_id, run_id))
        {without_rowid};
    INSERT INTO case_runs_v5 (case_id, run_id) SELECT case_id, run_id FROM case_runs;
    DROP TABLE case_runs;
    ALTER TABLE case_runs_v5 RENAME TO case_runs;
    {cases_fillfactor}
    """,
]



def migrate(db: Database) -> None:
    """Bring the store to the newest schema, in one transaction (a store newer than this program is refused)."""
    run_migrations(db, MIGRATIONS, table="schema_version", what="case store")


def run_migrations(db: Database, migrations: list[str], *, table: str, what: str) -> None:
    """Apply the ``migrations`` not yet recorded in ``table``, in one transaction serialized with every
    other writer; also used for tables kept beside the cases by other parts (the review app's)."""
    with db.transaction():
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
        current = db.scalar(f"SELECT MAX(version) FROM {table}") or 0
        if current > len(migrations):
            raise StoreError(f"{what} has schema version {current}, newer than this program knows "
                             f"({len(migrations)})", hint="upgrade the pipeline package")
        for version in range(current + 1, len(migrations) + 1):
            for stmt in db.ddl(migrations[version - 1]).split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"INSERT INTO {table} (version) VALUES (?)", (version,))
