"""Ingest access-log files into the retained store: parse, quarantine, merge into day partitions.

Idempotent and crash-safe: a source file is known by its SHA-256. Once all its rows are published
a ledger entry records it and a later ingest skips it. A run killed part-way leaves some days
published with the file listed in their manifests; the next run re-reads the file and adds its
rows only to the days whose manifest does not list it yet, so every row is stored exactly once.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from ..config import Settings
from ..errors import Location, SourceError
from ..faults import checkpoint
from ..sources.base import (FileTrouble, Stored, UnreadableFile, collecting_troubles, expand, reading_encoding,
                            read_stored)
from ..sources.logs_common import LOG_READERS, LogTable, Quarantined
from .layout import clean_leftovers, ledger_dir, load_partition, quarantine_dir, store_lock, write_json_atomic
from .partition import MAX_RUNS, read_partition, runs, write_version
from .prepare import Parsed, explain_table, prepare

try:  # the parsers register their formats on import
    import pipeline.sources.logs  # noqa: F401
except ImportError:  # pragma: no cover - only while the parsers are absent
    pass

BATCH_ROWS = 2_000_000   # rows parsed before day partitions are rewritten (bounds memory)


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did. For the files read: rows_read == rows_stored + rows_quarantined."""

    files_read: int
    files_skipped: tuple[str, ...]        # already ingested (same SHA-256), nothing added
    rows_read: int
    rows_stored: int                      # rows of the files read now in the store
    rows_quarantined: int
    rows_recovered: int                   # of rows_stored, found already published by a killed run
    partitions_written: tuple[date, ...]
    # Files of which no line parsed (every line quarantined): most likely the wrong format. Nothing of
    # them is stored and they are not recorded as ingested, so they can be ingested again correctly.
    files_unparsed: tuple[tuple[str, str, int], ...] = ()   # (path, format, lines)
    # Files that could not be read (permission denied, vanished, corrupt compression), or only up to a
    # truncated tail: {path, reason, bytes, partial}. Not recorded as ingested, so the next run retries them.
    files_quarantined: tuple[dict[str, Any], ...] = ()
    blank_lines: int = 0    # of rows_quarantined, blank lines (counted as scans count them)
    # seconds per stage: read (the stored bytes and their SHA-256), parse, prepare (split by day, in
    # store order), publish (quarantine, partitions, ledger)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.rows_read == self.rows_stored + self.rows_quarantined


def _write_quarantine(settings: Settings, sha: str, rows: list[Quarantined]) -> None:
    if not rows:
        # A file not recorded as ingested (no line parsed) may have left lines here under a wrong format.
        (quarantine_dir(settings) / f"{sha}.parquet").unlink(missing_ok=True)
        return
    table = pa.table({
        "source_file": pa.array([r[0] for r in rows], type=pa.string()),
        "source_line": pa.array([r[1] for r in rows], type=pa.int64()),
        "reason": pa.array([r[2] for r in rows], type=pa.string()),
        "raw": pa.array([r[3] for r in rows], type=pa.binary()),
    })
    folder = quarantine_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{sha}.parquet"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(folder / f"{sha}.parquet")


def _flush(settings: Settings, batch: list[Parsed]) -> tuple[list[date], int]:
    """Merge a batch into its days and publish each; then record its files in the ledger."""
    per_day: dict[date, list[tuple[Parsed, pa.Table]]] = defaultdict(list)
    for parsed in batch:
        for day, table in parsed.by_day.items():
            per_day[day].append((parsed, table))
    written: list[date] = []
    recovered = 0
    for day in sorted(per_day):
        previous = load_partition(settings, day)
        already = previous.source_rows() if previous else {}
        fresh = [(p, t) for p, t in per_day[day] if p.sha256 not in already]
        recovered += sum(t.num_rows for p, t in per_day[day] if p.sha256 in already)
        if not fresh:
            continue
        tables = [t for _, t in fresh]
        added = sum(t.num_rows for t in tables)
        sources = list(previous.manifest["sources"]) if previous else []
        # the new rows become a run of their own beside the day's files, until the day holds
        # MAX_RUNS of them: then the whole day is merged into one (``partition``)
        keep = previous is not None and runs(previous) < MAX_RUNS
        if previous is not None and not keep:
            tables.insert(0, read_partition(previous))
        sources += [{"sha256": p.sha256, "file": p.path, "format": p.fmt, "rows": t.num_rows} for p, t in fresh]
        write_version(settings, day, pa.concat_tables(tables), sources, previous, keep_previous=keep)
        written.append(day)
        logger.debug("published partition {} (+{} rows{})", day, added, "" if keep or previous is None else
                     ", its runs merged into one")
        checkpoint("partition-published")
    checkpoint("before-ledger")
    for parsed in batch:
        if parsed.unparsed or parsed.partial:
            continue  # nothing (or not all) stored: leave it ingestible again, e.g. with the right format
        write_json_atomic(ledger_dir(settings) / f"{parsed.sha256}.json", {
            "sha256": parsed.sha256, "file": parsed.path, "format": parsed.fmt,
            "rows_read": parsed.rows_read, "rows_quarantined": parsed.rows_quarantined,
            "rows_stored": sum(t.num_rows for t in parsed.by_day.values()),
            "days": {d.isoformat(): t.num_rows for d, t in sorted(parsed.by_day.items())},
            "ingested_at": datetime.now(timezone.utc).isoformat(),
        })
    return written, recovered


def ingested(settings: Settings) -> dict[str, dict[str, Any]]:
    """The ledger: SHA-256 → entry of every source file fully ingested."""
    folder = ledger_dir(settings)
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("*.json")
            if not p.name.startswith(".")}


def _progress_enabled(settings: Settings, files: int) -> bool:
    mode = settings.scan.progress
    return files > 1 and (mode == "always" or (mode == "auto" and sys.stderr.isatty()))


MISSING_DOMAIN_HINT = ("give --domain with the site these logs were served for, or `domain:` in the file's "
                       "sources.logs entry; nothing was ingested")


def missing_domain_message(fmt: str) -> str:
    return (f"format {fmt} carries no domain on its lines and no domain was given: its rows could never be found "
            "by a domain query nor joined to their account, and a file is ingested only once")


@dataclass(frozen=True)
class LogSource:
    """Files to ingest (a file, folder or glob) with what their format may lack."""

    path: str | Path
    format: str
    domain: str | None = None
    account_id: str | None = None
    encoding: str = "utf-8"


class Ingester:
    """Publishes parsed files into the store, batch by batch, under the store's lock.

    ``ingest`` feeds it the files it parses itself; a scan feeds it the files its workers parsed
    (``prepare``), so the lines a scan reads are the lines the store keeps. Each ``add`` writes
    the file's quarantine; every ``BATCH_ROWS`` rows, and at ``close``, the batch is merged into its
    days and its files recorded in the ledger. Leaving the ``with`` block by an exception publishes
    nothing more: what was published stays, and the next run completes it without doubling.
    """

    def __init__(self, settings: Settings, *, strict: bool = False) -> None:
        self.settings = settings
        self.strict = strict
        self.done: dict[str, dict[str, Any]] = {}
        self.skipped: list[str] = []
        self.batch: list[Parsed] = []
        self.batch_rows = 0
        self.written: set[date] = set()
        self.totals = {"read": 0, "stored": 0, "quarantined": 0, "recovered": 0, "files": 0, "blank": 0}
        self.unparsed: list[tuple[str, str, int]] = []
        self.troubled: list[dict[str, Any]] = []
        self._lock: Any = None
        self.timings: dict[str, float] = {}

    def timed(self, stage: str, began: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - began

    def __enter__(self) -> Ingester:
        self._lock = store_lock(self.settings)
        self._lock.__enter__()
        if removed := clean_leftovers(self.settings):
            logger.info("removed {} leftover(s) of an interrupted store write", removed)
        self.done = ingested(self.settings)
        return self

    def __exit__(self, *exc: object) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(*exc)

    def known(self, sha: str, path: str) -> bool:
        """Whether a file with these bytes is ingested already (or in this batch): then it is skipped."""
        if sha in self.done or any(p.sha256 == sha for p in self.batch):
            logger.info("{} already ingested (same SHA-256 as {}), nothing added", path,
                        self.done.get(sha, {}).get("file", "a file in this run"))
            self.skipped.append(path)
            return True
        return False

    def quarantine_file(self, path: str, trouble: FileTrouble) -> None:
        if self.strict:
            raise UnreadableFile(path, trouble.reason, size=trouble.bytes,
                                 hint="without --strict the file is reported and the others are ingested")
        self.troubled.append(trouble.as_dict())
        logger.warning("{}: {}{} (not marked as ingested; the next ingest reads it again)", path,
                       trouble.reason, "" if trouble.partial else ", nothing of it was stored")

    def add(self, parsed: Parsed, troubles: Sequence[FileTrouble] = ()) -> None:
        """One parsed file; ``troubles``: its unreadable tail (it is then stored but not recorded)."""
        if self.known(parsed.sha256, parsed.path):
            return
        began = time.perf_counter()
        for trouble in troubles:
            self.quarantine_file(parsed.path, trouble)
            parsed.partial = True
        _write_quarantine(self.settings, parsed.sha256, parsed.quarantine)
        checkpoint("quarantine-written")
        parsed.quarantine = []
        t = self.totals
        t["files"] += 1
        t["read"] += parsed.rows_read
        t["quarantined"] += parsed.rows_quarantined
        t["blank"] += parsed.blank_lines
        stored = sum(tb.num_rows for tb in parsed.by_day.values())
        t["stored"] += stored
        if parsed.unparsed:
            self.unparsed.append((parsed.path, parsed.fmt, parsed.rows_read))
            logger.warning("no line of {} parsed as format {} read as {} (all {} quarantined): is it another "
                           "format or encoding? Nothing was stored and the file is not marked as ingested; check "
                           "--format and --encoding (or `format:` and `encoding:` in its sources.logs entry) and "
                           "ingest it again", parsed.path, parsed.fmt, parsed.encoding, parsed.rows_read)
        self.batch.append(parsed)
        self.batch_rows += stored
        self.timed("publish", began)
        if self.batch_rows >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        began = time.perf_counter()
        if self.batch:
            days, recovered = _flush(self.settings, self.batch)
            self.written.update(days)
            self.totals["recovered"] += recovered
            for parsed in self.batch:
                if not parsed.unparsed:
                    self.done[parsed.sha256] = {"file": parsed.path}
        self.batch, self.batch_rows = [], 0
        self.timed("publish", began)

    def close(self) -> IngestReport:
        """Publish what is left and say what was done."""
        self.flush()
        t = self.totals
        report = IngestReport(t["files"], tuple(self.skipped), t["read"], t["stored"], t["quarantined"],
                              t["recovered"], tuple(sorted(self.written)), tuple(self.unparsed),
                              tuple(self.troubled), t["blank"], dict(self.timings))
        logger.info("ingested {} file(s): {} rows read, {} stored, {} quarantined; {} skipped; {} partition(s) written",
                    report.files_read, report.rows_read, report.rows_stored, report.rows_quarantined,
                    len(report.files_skipped), len(report.partitions_written))
        return report


def read_file(path: str, fmt: str, stored: Stored, *, domain: str | None, account_id: str | None,
              encoding: str = "utf-8") -> LogTable:
    """One file's records as the format's reader makes them from its stored bytes (read once)."""
    with reading_encoding(encoding):
        table = LOG_READERS.get(fmt)(path, data=stored, domain=domain, account_id=account_id)
    return explain_table(table, encoding)


def ingest(settings: Settings, sources: Sequence[tuple[str | Path, str] | LogSource], *,
           bindings: dict[str, str] | None = None, domain: str | None = None,
           account_id: str | None = None, encoding: str = "utf-8", strict: bool = False) -> IngestReport:
    """Ingest sources (files, folders or globs) into the retained store, in one pass.

    ``sources``: ``(path, format)`` pairs, read with ``domain``, ``account_id`` and ``encoding``, or
    ``LogSource`` entries carrying their own (the config's ``sources.logs``; the arguments are then
    the fallback for what an entry does not say).

    A file that cannot be read (permission denied, vanished, corrupt compression) is reported in
    ``files_quarantined`` and the others are ingested; a truncated gzip stores its whole lines and
    reports its tail. Neither is recorded as ingested, so the next run reads them again.
    ``strict``: the first such file stops the ingest instead (what was published stays), and a path
    naming no file is an error. ``encoding``: how the files' bytes are text (see ``decode_text``).

    ``bindings`` (domain → account_id) fills account_id where a row has none; ``domain`` and
    ``account_id`` are passed to the parser for formats that do not carry them. A format that never
    carries the domain (``NO_DOMAIN_FORMATS``) is refused without ``domain``, before any work.
    """
    binding_map = {k.lower(): v for k, v in (bindings or {}).items()}
    entries = [s if isinstance(s, LogSource) else LogSource(s[0], s[1]) for s in sources]
    files: list[tuple[str, LogSource]] = []
    for entry in entries:
        entry = replace(entry, domain=(entry.domain or domain or "").strip() or None,
                        account_id=entry.account_id or account_id,
                        encoding=entry.encoding if entry.encoding != "utf-8" else encoding)
        fmt = LOG_READERS.get(entry.format)  # an unknown format fails before any work, listing the valid ones
        if not fmt.carries_domain and not entry.domain:
            raise SourceError(missing_domain_message(entry.format), location=Location(str(entry.path)),
                              hint=MISSING_DOMAIN_HINT)
        found = expand(str(entry.path))
        if not found:
            if strict:
                raise SourceError("names no file", location=Location(str(entry.path)),
                                  hint="check the path or glob; without --strict this is a warning")
            logger.warning("{}: names no file (check the path or glob)", entry.path)
        files.extend((f, entry) for f in found)
    if not files:
        raise SourceError("no log files to ingest", hint="pass paths, or list sources.logs in config.yaml")

    with Ingester(settings, strict=strict) as ingester:
        for path, entry in _iterate(files, _progress_enabled(settings, len(files))):
            began = time.perf_counter()
            try:
                stored = read_stored(path)
            except UnreadableFile as exc:
                ingester.quarantine_file(path, FileTrouble(path, exc.reason + (f" ({exc.hint})" if exc.hint else ""), -1))
                continue
            sha = hashlib.sha256(stored).hexdigest()
            ingester.timed("read", began)
            if ingester.known(sha, path):
                continue
            began = time.perf_counter()
            try:
                with collecting_troubles() as troubles:
                    table = read_file(path, entry.format, stored, domain=entry.domain, account_id=entry.account_id,
                                      encoding=entry.encoding)
            except UnreadableFile as exc:
                ingester.quarantine_file(path, FileTrouble(path, exc.reason, len(stored)))
                continue
            del stored  # the parsed columns no longer need the file's bytes: free them before the next file
            ingester.timed("parse", began)
            began = time.perf_counter()
            parsed = prepare(path, entry.format, sha, table, bindings=binding_map, encoding=entry.encoding)
            del table
            ingester.timed("prepare", began)
            ingester.add(parsed, troubles)
        return ingester.close()


def _iterate(files: list[tuple[str, LogSource]], show: bool) -> Iterable[tuple[str, LogSource]]:
    if not show:
        yield from files
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("ingest", total=len(files))
        for item in files:
            yield item
            progress.advance(task)
