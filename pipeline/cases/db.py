"""A thin portable layer over SQLite and PostgreSQL for the case store.

SQL is written once with ``?`` placeholders and ``{autoid}``, ``{blob}``, ... in DDL; this module
adapts it to each engine. Writers serialize: SQLite with ``BEGIN IMMEDIATE``, PostgreSQL with a
transaction-scoped advisory lock, so two scans or a scan and a reviewer never interleave writes.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StoreError, StoreUnavailable

WRITE_LOCK_KEY = 0x636F6D70  # advisory lock ids, within the store's own namespace (see Database.lock_space)

DDL = {
    "sqlite": {"autoid": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB", "without_rowid": "WITHOUT ROWID",
               "cases_fillfactor": ""},
    "postgresql": {"autoid": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA", "without_rowid": "",
                   "cases_fillfactor": "ALTER TABLE cases SET (fillfactor = 60)"},
}


class Database:
    """One connection to the case store; ``dialect`` is "sqlite" or "postgresql"."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError:
                raise StoreError("case_store is a PostgreSQL URL but psycopg is not installed",
                                 hint='pip install -e ".[postgres]"') from None
            try:
                self.conn: Any = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot connect to the case store {_redact(url)}: {' '.join(str(exc).split())}",
                                 hint="check case_store in the config and that PostgreSQL is running") from None
            self.dialect = "postgresql"
            # advisory locks are database-wide: key them by database and schema, so that two case
            # stores sharing a server (or a database, in different schemas) do not block each other
            row = self.conn.execute("SELECT current_database() || '.' || current_schema()").fetchone()
            where = row[0] if row else url
            self.lock_space = zlib.crc32(str(where).encode()) - (1 << 31)
        elif url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            # a new store: 16 KiB pages (SQLite's default is 4 KiB) hold a dozen cases with their evidence,
            # so a fold makes a quarter as many page reads and writes; an existing store keeps the size it has
            self.conn.execute("PRAGMA page_size=16384")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA busy_timeout=60000")
            # the fold stages a run's hits in temporary tables: keep them off the disk
            self.conn.execute("PRAGMA temp_store=MEMORY")
            # a fold updates every case a run sees in one transaction: with SQLite's default 2 MiB page
            # cache it spills and reads back pages of cases mid-transaction (this is a ceiling, not an allocation)
            self.conn.execute("PRAGMA cache_size=-65536")
            self.dialect = "sqlite"
        else:
            raise StoreError(f"unsupported case store URL {_redact(url)!r}",
                             hint="use sqlite:///path/cases.db or postgresql://user@host:5432/db")
        self._depth = 0

    def try_lock(self, key: int) -> bool:
        """A session-level advisory lock in this store's namespace (PostgreSQL only)."""
        return bool(self.scalar("SELECT pg_try_advisory_lock(?, ?)", (self.lock_space, key)))

    def unlock(self, key: int) -> None:
        self.scalar("SELECT pg_advisory_unlock(?, ?)", (self.lock_space, key))

    def close(self) -> None:
        self.conn.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def ddl(self, sql: str) -> str:
        return sql.format(**DDL[self.dialect])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        else:
            self.conn.executemany(sql, [tuple(r) for r in rows])

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Insert many rows into ``table``: ``COPY`` on PostgreSQL, one prepared statement on SQLite."""
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                                  rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description] if cur.description else []
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction, serialized against every other writer of the same store."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        if self.dialect == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn.execute("BEGIN")
            self.conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (self.lock_space, WRITE_LOCK_KEY))
        self._depth = 1
        try:
            yield self
            self._depth = 0
            self.conn.execute("COMMIT")
        except BaseException:
            self._depth = 0
            self._rollback()
            raise

    def _rollback(self) -> None:
        """Roll back without hiding why: SQLite rolls back by itself on a full disk (a ROLLBACK then
        fails with "no transaction is active"), and a lost connection cannot roll back at all (the
        server drops the transaction); either way the error that matters is the one being raised."""
        if self.dialect == "sqlite" and not self.conn.in_transaction:
            return
        try:
            self.conn.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - see above
            pass


def _redact(url: str) -> str:
    """A URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url
