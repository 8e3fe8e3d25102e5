"""Answer a regulator's request from the retained store with DuckDB, export it, audit it.

Only the partitions whose day lies in the window are read, and their files are taken from the
manifests (never a glob over the store). Filters are pushed into the Parquet scan: an IP or a CIDR
block is a range on ``ip_key`` (the column each day is sorted by), so whole row groups are skipped
by their min/max statistics; the domain, account and time filters are pushed down the same way.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import Settings
from ..errors import DiskError, Location, PipelineError, QueryError, StoreError
from ..faults import checkpoint, fail_point
from ..records import LOGS, conform
from ..retention.layout import IP_KEY, STORE_SCHEMA, Partition, partitions_between
from ..retention.verify import check_files, still_unchanged
from .audit import append_audit, audited
from .request import Request, TimeLike, build_request, zone

CSV_NAME, PARQUET_NAME, MANIFEST_NAME = "result.csv", "result.parquet", "manifest.json"


@dataclass(frozen=True)
class QueryResult:
    df: pd.DataFrame
    manifest: dict[str, Any]
    out_dir: Path
    window: str = ""   # the window in the deployment's zone, for people


def _sql_list(paths: Sequence[Path]) -> str:
    # Paths come from our own manifests; quoting still keeps a stray quote from breaking the SQL.
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _where(request: Request) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if request.ip_range is not None:
        low, high = request.ip_range
        if low == high:
            clauses.append(f"{IP_KEY} = ?")
            params.append(low)
        else:
            clauses.append(f"{IP_KEY} BETWEEN ? AND ?")
            params += [low, high]
    if request.domain is not None:
        clauses.append("domain = ?")
        params.append(request.domain)
    if request.account is not None:
        clauses.append("account_id = ?")
        params.append(request.account)
    if request.url_contains is not None:
        clauses.append("contains(uri, ?)")
        params.append(request.url_contains)
    if request.start is not None:
        clauses.append("ts >= ?")
        params.append(request.start)
    if request.end is not None:
        clauses.append("ts < ?")
        params.append(request.end)
    return " AND ".join(clauses), params


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process (a cursor per query): opening one costs ~25 ms, and it
    keeps Parquet footers cached between queries, which is most of a warm query's time."""
    con = duckdb.connect()
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET GLOBAL parquet_metadata_cache = true")
    return con


_VERIFY_HINT = ("run `compliance logs verify` to list every damaged file, then restore the state folder from backup; "
                "the query was not answered and is recorded in the audit log as query.failed")


def _data_files(parts: Sequence[Partition]) -> list[Path]:
    """The data files the manifests of ``parts`` list; StoreError naming the first one that is missing
    (DuckDB would fail on it anyway, and a partial answer to a regulator must never pass as complete)."""
    files: list[Path] = []
    for part in parts:
        try:
            listed = part.files
        except (KeyError, TypeError):
            raise StoreError(f"the manifest of partition {part.day} (version {part.folder.name}) does not list "
                             "its data files", location=Location(str(part.folder / "manifest.json")),
                             hint=_VERIFY_HINT) from None
        for path in listed:
            if not path.is_file():
                raise StoreError(f"partition {part.day} (version {part.folder.name}) is damaged: its data file "
                                 f"{path.name}, listed in its manifest, is missing",
                                 location=Location(str(path)), hint=_VERIFY_HINT)
        files += listed
    return files


def select(parts: Sequence[Partition], request: Request) -> pd.DataFrame:
    """The matching rows of ``parts`` with the requested fields, ordered by time."""
    columns = {name: LOGS[name] for name in request.fields}
    files = _data_files(parts)
    if not files:
        return conform(pd.DataFrame(), columns)
    where, params = _where(request)
    names = ", ".join(f'"{name}"' for name in request.fields)
    sql = (f"SELECT {names} FROM read_parquet({_sql_list(files)}) WHERE {where} "
           "ORDER BY ts, source_file, source_line")
    try:
        with _database().cursor() as con:
            table = con.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as exc:  # a data file present but unreadable (truncated, overwritten, ...)
        named = [(p, f) for p in parts for f in p.files if str(f) in str(exc)]
        if named:
            part, path = named[0]
            raise StoreError(f"partition {part.day} (version {part.folder.name}) is damaged: its data file "
                             f"{path.name} could not be read ({type(exc).__name__}: {exc})",
                             location=Location(str(path)), hint=_VERIFY_HINT) from None
        days = ", ".join(p.day.isoformat() for p in parts)
        raise StoreError(f"the partition(s) {days} could not be read: {type(exc).__name__}: {exc}",
                         hint=_VERIFY_HINT) from None
    return conform(table.to_pandas(), columns)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _default_out(settings: Settings, request: Request) -> Path:
    safe = re.sub(r"[^0-9A-Za-z._-]+", "_", request.request_ref).strip("_") or "request"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return settings.state_path / "exports" / f"{safe}-{stamp}"


def _staged(out: Path, name: str) -> Path:
    return out / f".{name}.partial"


def _export(df: pd.DataFrame, request: Request, out: Path) -> dict[str, str]:
    """Write the result files under staged names (published only once the query is audited)."""
    if (out / MANIFEST_NAME).exists():
        raise QueryError(f"{out} already holds an export", hint="choose another --out folder; exports are never overwritten")
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([STORE_SCHEMA.field(name) for name in request.fields])
    fail_point("query.export")
    pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False, safe=False),
                   _staged(out, PARQUET_NAME), compression="zstd")
    # UTF-8 with BOM: Excel, which the recipients open it with, otherwise garbles Chinese text.
    df.to_csv(_staged(out, CSV_NAME), index=False, encoding="utf-8-sig", date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return {name: _sha256(_staged(out, name)) for name in (CSV_NAME, PARQUET_NAME)}


def _discard(out: Path, created: bool) -> None:
    """Remove what an export that did not complete left (its staged files; the folder if it made it)."""
    for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME):
        _staged(out, name).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()


def _audit_failure(settings: Settings, request: Request, exc: BaseException) -> str:
    """Record a valid request that could not be answered (damaged store, unwritable export, ...).
    Returns "" or, when even that entry cannot be written (a full disk), a note saying so."""
    reason = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
    try:
        append_audit(settings, request.requested_by, "query.failed", {**request.describe(), "reason": reason})
    except OSError as err:
        return f"; this failure could not be recorded in the audit log either ({err.strerror or err})"
    return ""


def _disk_error(what: str, exc: OSError, note: str = "") -> DiskError:
    return DiskError(f"disk full: {what}: {exc.strerror or exc}; nothing was exported{note}",
                     hint="free space and run the query again; the audit chain is intact (`compliance audit verify`)")


def run_query(settings: Settings, *, request_ref: str | None, authority: str | None, ip: str | None = None,
              cidr: str | None = None, domain: str | None = None, url_contains: str | None = None,
              account: str | None = None, start: TimeLike = None, end: TimeLike = None,
              fields: Sequence[str] | str | None = None, out_dir: str | Path | None = None,
              requested_by: str | None = None) -> QueryResult:
    """Answer one request; every call, refused or not, is appended to the audit log."""
    asked = {"request_ref": request_ref, "authority": authority, "requested_by": requested_by,
             "selectors": {k: v for k, v in {"ip": ip, "cidr": cidr, "domain": domain, "url_contains": url_contains,
                                             "account": account}.items() if v is not None},
             "start": str(start) if start is not None else None, "end": str(end) if end is not None else None,
             "fields": fields if isinstance(fields, str) or fields is None else list(fields)}
    try:
        request = build_request(request_ref=request_ref, authority=authority, requested_by=requested_by, ip=ip,
                                cidr=cidr, domain=domain, url_contains=url_contains, account=account, start=start,
                                end=end, fields=fields, tz=zone(settings.retention.timezone))
    except QueryError as exc:
        append_audit(settings, requested_by, "query.refused", {**asked, "reason": str(exc)})
        raise

    try:
        first, last = request.days()
        parts = partitions_between(settings, first, last)
        checks = check_files(settings, parts)   # a regulator's answer comes only from data proven intact
        df = select(parts, request)
        still_unchanged(checks)
    except Exception as exc:
        note = _audit_failure(settings, request, exc)
        if note and isinstance(exc, PipelineError):
            exc.message += note
        raise
    out = Path(out_dir) if out_dir is not None else _default_out(settings, request)
    created = not out.exists()
    try:
        outputs = _export(df, request, out)
        manifest: dict[str, Any] = {
            **request.describe(),
            "rows": len(df),
            "partitions_read": [{"day": p.day.isoformat(), "version": p.folder.name, "rows": p.rows} for p in parts],
            "verification": {"method": "each data file's SHA-256 and row count against its partition manifest, "
                                       "before the query read it",
                             "files": [c.record() for c in checks]},
            "outputs": outputs,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        text = json.dumps(manifest, ensure_ascii=False, indent=1) + "\n"
        _staged(out, MANIFEST_NAME).write_text(text, encoding="utf-8")
    except QueryError as exc:
        _discard(out, created)
        append_audit(settings, requested_by, "query.refused", {**asked, "reason": str(exc)})
        raise
    except OSError as exc:
        _discard(out, created)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            failure: PipelineError = _disk_error(f"cannot write the export in {out}", exc)
        else:
            failure = QueryError(f"cannot write the export in {out}: {exc.strerror or exc}",
                                 hint="choose a writable --out folder; the query is recorded in the audit log as query.failed")
        note = _audit_failure(settings, request, failure)
        failure.message += note
        raise failure from None
    except Exception as exc:
        _discard(out, created)
        _audit_failure(settings, request, exc)
        raise
    # The audit entry is the commit point: the export is published (renamed into place, which needs
    # no space) only once it is recorded; if the entry cannot be written, the export is removed.
    try:
        with audited(settings) as step:
            step.append(requested_by, "query", {
                **request.describe(), "rows": len(df), "partitions_read": [p["day"] for p in manifest["partitions_read"]],
                "files_verified": len(checks), "out_dir": str(out), "outputs": outputs,
                "manifest_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            })
            checkpoint("query.before_publish")
            for name in (CSV_NAME, PARQUET_NAME, MANIFEST_NAME):  # the manifest last: it marks a complete export
                os.replace(_staged(out, name), out / name)
    except OSError as exc:
        _discard(out, created)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_error("the query's audit entry could not be written, so its export was removed", exc) from None
        raise
    except BaseException:
        _discard(out, created)
        raise
    return QueryResult(df, manifest, out, request.window())
