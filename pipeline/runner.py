"""Builds the Dask work for a scan and folds its results into cases; the only module that knows Dask.

One task per source file: the worker reads and canonicalizes the file, evaluates the source's
rules on it and returns hits, quarantined rows and counts. The rule set travels once per worker
(scattered, small); each worker process compiles it once and caches it by the rule set's digest,
so no automaton is ever pickled.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from loguru import logger

from .cases.store import CaseStore, open_store
from .faults import checkpoint, pause_point
from .files import sha256_file
from .incremental import fingerprint, scan_lock
from .logging import quiet_distributed
from .config import Settings
from .errors import ConfigError, Location, PipelineError, SourceError, UnavailableError
from .matchers.evaluate import CompiledRules
from .matchers import aggregate
from .matchers.hits import HIT_COLUMNS, LOG_SUBJECT_TYPES, empty_hits, record_hits
from .matchers.keyword_bytes import NORMALIZE_SECONDS
from .matchers.rule_rows import rule_rows
from .records import SCHEMAS, conform
from .signals import held, raise_if_received, stop_helpers
from .rules.loader import load_configured_rules
from .rules.model import RuleSet
from .rules.sigma.mapping import LOG_FORMAT, reads_log_format
from .sources.base import (BLANK_LINE, REGISTRIES, FilePart, FileTrouble, ReadResult, UnreadableFile, collecting_troubles,
                           counting_blank_lines,
                           cut_inside_a_field, expand, explain_undecodable, os_trouble, plan_parts, reading_encoding,
                           read_stored, reading_part, shift_lines, wrong_encoding)
from .sources.bindings import load_bindings, owners
from .sources.logs_common import LOG_READERS, NO_DOMAIN_FORMATS, RAW, keeping_raw

# Source kinds scanned by record rules, and the modules that register their formats.
SCANNED_SOURCES = ("objects", "logs", "streams")
FORMAT_MODULES = {"objects": "pipeline.sources.objects", "logs": "pipeline.sources.logs",
                  "streams": "pipeline.sources.streams"}
# Entry settings each kind's readers accept.
READER_EXTRAS = {"objects": ("bucket", "account_id"), "logs": ("domain", "account_id"),
                 "streams": ("account_id",)}


@dataclass(frozen=True)
class ScanTask:
    source: str
    path: str
    format: str
    extras: tuple[tuple[str, str], ...] = ()
    part: FilePart | None = None   # a part of the file (see split_tasks), or None for all of it
    encoding: str = "utf-8"        # the source entry's `encoding:` (pipeline.sources.base.decode_text)
    sha256: str = ""               # of the file as stored, when the scan's fingerprint computed it


# Object formats read line by line, whose files can be read in parts: whether the first line
# names the columns (every part is then read after it).
PART_FORMATS = {"csv": True, "jsonl": False, "qiniu-json": False, "qshell": False, "s3-inventory": False}


def split_tasks(tasks: list[ScanTask], part_bytes: int) -> list[ScanTask]:
    """Each object listing larger than ``part_bytes`` (local, uncompressed, line-oriented) as one
    task per part of about that size; every other file as it is."""
    out: list[ScanTask] = []
    for task in tasks:
        header = PART_FORMATS.get(task.format) if task.source == "objects" else None
        if task.encoding != "utf-8":
            header = None   # cut at b"\n" only in UTF-8 bytes (UTF-16 has zero bytes around its newlines)
        parts = plan_parts(task.path, part_bytes, header=header) if header is not None else []
        if parts:
            logger.info("{}: read in {} parts of about {} MB", task.path, len(parts), part_bytes >> 20)
        out += [replace(task, part=part) for part in parts] or [task]
    return out


@dataclass(frozen=True)
class ScanContext:
    """What every task needs besides its file: the rules and who owns which domain / hub."""

    ruleset: RuleSet
    # incremental scans: objects put at or before this time (per bucket) were scanned already
    put_time_scanned: dict[str, str] = field(default_factory=dict)
    domain_owner: dict[str, str] = field(default_factory=dict)
    hub_owner: dict[str, str] = field(default_factory=dict)
    keyword_backend: str = "pyahocorasick"
    batch_rows: int = 200_000  # records evaluated at a time (bounds the matcher's working memory)
    bindings: pd.DataFrame | None = None  # every binding row, for the licensing checks
    strict: bool = False  # --strict: the first file that cannot be read stops the scan (exit 2)
    # retention.ingest_on_scan: log files are also prepared for the retained store (pipeline.retention),
    # except those whose SHA-256 its ledger lists already
    ingest_logs: bool = False
    ingested: frozenset[str] = frozenset()


@dataclass
class FileResult:
    task: ScanTask
    rows_read: int
    rows_parsed: int
    hits: pd.DataFrame
    quarantine: pd.DataFrame
    partials: dict[str, pd.DataFrame] = field(default_factory=dict)  # aggregate rule id → partials
    volume: pd.DataFrame | None = None  # logs: per-domain traffic; objects: objects per bucket
    error: PipelineError | None = None  # bad input: returned, not raised, so Dask neither retries nor logs it
    rows_already_scanned: int = 0       # parsed objects older than their bucket's watermark: not evaluated again
    read_whole: bool = False            # a part was cut inside a quoted value: its file is to be read whole
    timings: dict[str, float] = field(default_factory=dict)  # seconds: read, compile, normalize, match, hit_rows
    troubles: list[FileTrouble] = field(default_factory=list)  # the file's unreadable tail, or why no line decoded
    blank_lines: int = 0                # empty lines: skipped by object formats, quarantined by log formats
    ingest: Any = None                  # logs: the file's rows by day for the retained store (retention.ingest.prepare)


@dataclass
class ScanReport:
    run_id: str
    files: int = 0
    rows_read: int = 0
    rows_parsed: int = 0
    rows_quarantined: int = 0
    hits: int = 0
    cases_new: int = 0
    cases_updated: int = 0
    cases_unchanged: int = 0
    cases_reopened: int = 0
    cases_resolved: int = 0
    files_skipped: int = 0
    files_quarantined: list[dict[str, Any]] = field(default_factory=list)  # {path, reason, bytes, partial}
    blank_lines: int = 0    # empty lines in every format: object formats skip them, log formats quarantine them
    rows_already_scanned: int = 0
    put_time_max: dict[str, str] = field(default_factory=dict)  # bucket → newest put_time seen this run
    per_source: dict[str, dict[str, int]] = field(default_factory=dict)
    checks_skipped: dict[str, str] = field(default_factory=dict)  # licensing rule id → why it did not run
    rules_skipped: dict[str, str] = field(default_factory=dict)   # unsupported Sigma rule id → why
    quarantine_samples: list[dict[str, Any]] = field(default_factory=list)
    # per record rule: rows hit, share of its source's rows scanned, noisy (over scan.noisy_rule_share)
    rules: list[dict[str, Any]] = field(default_factory=list)
    # seconds per stage: dask_start, read, compile, normalize, match, hit_rows, ingest_prepare (summed over
    # tasks), store (publishing log rows into the retained store), case_store, total
    timings: dict[str, float] = field(default_factory=dict)
    status: str = "completed"   # or "completed_with_errors": some file was quarantined whole or in part
    # log files put into the retained store by this scan (retention.ingest_on_scan): files, rows_stored,
    # files_already_ingested, partitions_written
    logs_stored: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def load_formats(source: str) -> None:
    """Import the module that registers a source kind's formats (a no-op once imported)."""
    module = FORMAT_MODULES.get(source)
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def read_records(source: str, path: str, fmt: str, **extras: str) -> pd.DataFrame:
    """One file's canonical records as a scan task evaluates them (with the raw line of a log),
    in this process: for benchmarks, differential tests and notebooks that evaluate rules directly."""
    load_formats(source)
    with keeping_raw(source == "logs"):
        res = REGISTRIES[source].get(fmt)(path, **extras)
    records = conform(res.records, SCHEMAS[source])
    if RAW in res.records.columns:
        records[RAW] = res.records[RAW].reset_index(drop=True)
    return records


def plan_tasks(settings: Settings, *, strict: bool = False) -> list[ScanTask]:
    """Every file named by the config's sources, checked before any work is sent. An entry that
    names no file is warned about, and stops the scan under ``strict``."""
    tasks: list[ScanTask] = []
    for source in SCANNED_SOURCES:
        entries = getattr(settings.sources, source)
        if not entries:
            continue
        load_formats(source)
        registry = REGISTRIES[source]
        for i, entry in enumerate(entries):
            where = Location(f"sources.{source} entry {i + 1} ({entry.path})")
            try:
                registry.get(entry.format)  # unknown format: error listing the valid ones
                paths = expand(settings.resolve(entry.path))
            except PipelineError as exc:   # say which entry of the config it is
                raise type(exc)(exc.message, location=where, hint=exc.hint) from None
            if source == "logs" and entry.format in NO_DOMAIN_FORMATS and not (entry.domain or "").strip():
                raise ConfigError(f"format {entry.format} carries no domain on its lines and the entry gives none: "
                                  "its hits would have no domain to be about and no account to be held against",
                                  location=where, hint="give `domain:` in this entry: the site these logs were served for")
            extras = tuple((k, getattr(entry, k)) for k in READER_EXTRAS[source] if getattr(entry, k, None))
            if not paths:
                warn_no_files(where, strict)
            for path in paths:
                if source == "objects" and entry.format == "s3-inventory" and path.endswith("manifest.json"):
                    continue  # the manifest describes the data files beside it; it is not data
                tasks.append(ScanTask(source, path, entry.format, extras, encoding=entry.encoding))
    return tasks


def warn_no_files(where: Location, strict: bool) -> None:
    """A source entry whose glob or folder names no file: likely a typo or a missing export."""
    if strict:
        raise ConfigError("names no file", location=where,
                          hint="check the path or glob; without --strict this is a warning and the scan goes on")
    logger.warning("{}: names no file (check the path or glob)", where)


_COMPILED: dict[tuple[str, str, str], CompiledRules] = {}


def compiled_for(ruleset: RuleSet, source: str, backend: str = "pyahocorasick") -> CompiledRules:
    """This process's compiled rules for a source, built once per rule-set digest and keyword backend."""
    key = (ruleset.digest, source, backend)
    if key not in _COMPILED:
        if len(_COMPILED) > 8:  # rule sets change rarely; keep a few, not every one ever seen
            _COMPILED.clear()
        _COMPILED[key] = CompiledRules(ruleset.for_source(source), source, backend=backend)
    return _COMPILED[key]


def _attribute(records: pd.DataFrame, source: str, ctx: ScanContext) -> pd.DataFrame:
    """Fill account_id from the bindings where the source itself does not say."""
    owners, key = ({"logs": (ctx.domain_owner, "domain"), "streams": (ctx.hub_owner, "hub")}
                   .get(source, ({}, "")))
    if not owners or records.empty:
        return records
    looked_up = records[key].astype("string").str.lower().map(owners).astype("string")
    records["account_id"] = records["account_id"].fillna(looked_up)
    return records


def scan_file(task: ScanTask, ctx: ScanContext) -> FileResult:
    """Runs on a worker: read one file, evaluate its source's rules, return hits, partials and counts."""
    pause_point("scan.task")
    try:
        with collecting_troubles() as troubles, reading_encoding(task.encoding), counting_blank_lines() as blanks:
            res = _scan_file(task, ctx)
        res.troubles = troubles + res.troubles
        quarantined_blanks = int((res.quarantine["reason"] == BLANK_LINE).sum()) if len(res.quarantine) else 0
        res.blank_lines = blanks[0] + quarantined_blanks
        return res
    except PipelineError as exc:
        return FileResult(task, 0, 0, empty_hits(), pd.DataFrame(), error=exc)


def _scan_file(task: ScanTask, ctx: ScanContext) -> FileResult:
    began = time.perf_counter()
    load_formats(task.source)
    reader = REGISTRIES[task.source].get(task.format)
    compiled = compiled_for(ctx.ruleset, task.source, ctx.keyword_backend)  # once per worker process
    compile_s = time.perf_counter() - began
    if task.source == "logs":   # never split in parts (split_tasks): parsed once, for rules and store
        with _fewer_collections():
            return _scan_log_file(task, ctx, compiled, began, compile_s)
    result: ReadResult
    if task.part is None:
        result = reader(task.path, **dict(task.extras))
    else:
        with reading_part(task.part):
            result = reader(task.path, **dict(task.extras))
        if cut_inside_a_field(result, task.part):
            return FileResult(task, 0, 0, empty_hits(), pd.DataFrame(), read_whole=True)
        result = shift_lines(result, task.part)
    troubles: list[FileTrouble] = []
    wrong = wrong_encoding(task.path, task.encoding, result.quarantine, result.rows_read) if task.part is None else None
    if wrong is not None:
        troubles.append(wrong)
    result = ReadResult(result.records, explain_undecodable(result.quarantine, task.encoding), result.rows_read)
    records = _attribute(conform(result.records, SCHEMAS[task.source]), task.source, ctx)
    fresh = _not_yet_scanned(records, task.source, ctx)
    timings = {"read": time.perf_counter() - began - compile_s, "compile": compile_s}
    hits, parts = evaluate_batches(compiled, fresh, ctx.batch_rows, timings)
    return FileResult(task, result.rows_read, len(records), hits, result.quarantine, parts,
                      _volume(records, task.source), rows_already_scanned=len(records) - len(fresh), timings=timings,
                      troubles=troubles)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cyclic collector run less often while a log file is scanned: parsing and evaluating
    allocate many short-lived objects and no cycles, and each full collection walks every object of
    the process (its modules, the rules) for nothing. Thresholds are process-wide: the first
    thread in sets them, the last one out puts them back."""
    with _COLLECTIONS_LOCK:
        if not _COLLECTIONS_HELD:
            _COLLECTIONS_HELD.append(gc.get_threshold())
            gc.set_threshold(50_000, 20, 20)
        _COLLECTIONS_HELD.append(None)
    try:
        yield
    finally:
        with _COLLECTIONS_LOCK:
            _COLLECTIONS_HELD.pop()
            if len(_COLLECTIONS_HELD) == 1:
                gc.set_threshold(*_COLLECTIONS_HELD.pop())


_COLLECTIONS_LOCK = threading.Lock()
_COLLECTIONS_HELD: list[Any] = []   # the thresholds saved, then one entry per thread inside


def _scan_log_file(task: ScanTask, ctx: ScanContext, compiled: CompiledRules, began: float,
                   compile_s: float) -> FileResult:
    """A log file parsed once into its Arrow table: the rules evaluate its pandas view and, when
    the scan ingests, the same table is cut into the retained store's day partitions here, on the
    worker, for the scan's process to publish (``retention.Ingester``)."""
    from .retention.ingest import explain_table, prepare

    stored = read_stored(task.path)
    extras = dict(task.extras)
    with keeping_raw(compiled.needs_raw):   # only rules reading the raw line pay for it
        table = LOG_READERS.get(task.format)(task.path, data=stored, domain=extras.get("domain"),
                                             account_id=extras.get("account_id"))
    table = explain_table(table, task.encoding)
    parsed_at = time.perf_counter()
    payload = None
    if ctx.ingest_logs:
        sha = task.sha256 or hashlib.sha256(stored).hexdigest()
        if sha not in ctx.ingested:
            owners = {k.lower(): v for k, v in ctx.domain_owner.items()}
            payload = prepare(task.path, task.format, sha, replace(table, raw=None), bindings=owners,
                              encoding=task.encoding)
    del stored
    prepared_at = time.perf_counter()
    result = table.to_result()
    del table
    troubles: list[FileTrouble] = []
    wrong = wrong_encoding(task.path, task.encoding, result.quarantine, result.rows_read)
    if wrong is not None:
        troubles.append(wrong)
    records = _attribute(result.records, task.source, ctx)
    if reads_log_format(compiled.rules):   # Sigma fields mapped per log format
        records[LOG_FORMAT] = task.format
    timings = {"read": parsed_at - began - compile_s + time.perf_counter() - prepared_at, "compile": compile_s,
               "ingest_prepare": prepared_at - parsed_at}
    hits, parts = evaluate_batches(compiled, records, ctx.batch_rows, timings)
    return FileResult(task, result.rows_read, len(records), hits, result.quarantine, parts,
                      _volume(records, task.source), timings=timings, troubles=troubles, ingest=payload)


def evaluate_batches(compiled: CompiledRules, records: pd.DataFrame, batch_rows: int,
                     timings: dict[str, float] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Hit rows and aggregate partials of ``records``, evaluated ``batch_rows`` at a time: every
    rule looks at one record at a time, and partials of batches combine like those of files.
    ``timings`` gains the seconds spent normalizing, matching (the rest of evaluating) and building hit rows."""
    if not compiled.rules or records.empty:
        return empty_hits(), {}
    hits: list[pd.DataFrame] = []
    parts: dict[str, list[pd.DataFrame]] = {}
    spent = timings if timings is not None else {}
    for lo in range(0, len(records), batch_rows):
        batch = records.iloc[lo:lo + batch_rows].reset_index(drop=True)
        began, normalized = time.perf_counter(), NORMALIZE_SECONDS[0]
        results, masks = compiled.evaluate_all(batch)
        evaluated = time.perf_counter()
        hits.append(record_hits(compiled, batch, results))
        normalizing = NORMALIZE_SECONDS[0] - normalized
        spent["normalize"] = spent.get("normalize", 0.0) + normalizing
        spent["match"] = spent.get("match", 0.0) + evaluated - began - normalizing
        spent["hit_rows"] = spent.get("hit_rows", 0.0) + time.perf_counter() - evaluated
        for rule in compiled.rules:
            if rule.aggregate is not None:
                parts.setdefault(rule.id, []).append(aggregate.partials(rule, batch, masks[rule.id]))
    return (hits[0] if len(hits) == 1 else _concat_hits(hits),
            {rule_id: p[0] if len(p) == 1 else pd.concat(p, ignore_index=True) for rule_id, p in parts.items()})


def _concat_hits(frames: list[pd.DataFrame]) -> pd.DataFrame:
    found = [f for f in frames if len(f)]
    return pd.concat(found, ignore_index=True) if found else empty_hits()


def _not_yet_scanned(records: pd.DataFrame, source: str, ctx: ScanContext) -> pd.DataFrame:
    """Objects put after their bucket's watermark (all of them on a full scan or a first scan)."""
    if source != "objects" or not ctx.put_time_scanned or records.empty:
        return records
    marks = records["bucket"].astype("string").map(ctx.put_time_scanned)
    marks = pd.to_datetime(marks, utc=True, format="ISO8601")
    old = (records["put_time"].notna() & marks.notna() & (records["put_time"] <= marks)).to_numpy(dtype=bool)
    return records[~old].reset_index(drop=True)


def _volume(records: pd.DataFrame, source: str) -> pd.DataFrame | None:
    """What the licensing checks need to know of a file: traffic per domain, or objects per bucket."""
    if source == "logs":
        return (records.assign(domain=records["domain"].astype("string").str.lower())
                .groupby("domain", dropna=True)
                .agg(requests=("ts", "size"), bytes_sent=("bytes_sent", "sum"), first_ts=("ts", "min"),
                     last_ts=("ts", "max")).reset_index())
    if source == "objects":
        return (records.groupby("bucket", dropna=True)
                .agg(objects=("bucket", "size"), put_time_max=("put_time", "max")).reset_index())
    return None


def _combine_volume(frames: list[pd.DataFrame], source: str) -> pd.DataFrame:
    if source == "logs":
        if not frames:
            return pd.DataFrame(columns=["domain", "requests", "bytes_sent", "first_ts", "last_ts"])
        return (pd.concat(frames, ignore_index=True).groupby("domain")
                .agg(requests=("requests", "sum"), bytes_sent=("bytes_sent", "sum"), first_ts=("first_ts", "min"),
                     last_ts=("last_ts", "max")).reset_index())
    if not frames:
        return pd.DataFrame(columns=["bucket", "objects", "put_time_max"])
    return (pd.concat(frames, ignore_index=True).groupby("bucket")
            .agg(objects=("objects", "sum"), put_time_max=("put_time_max", "max")).reset_index())


@contextmanager
def dask_client(settings: Settings) -> Iterator[Any]:
    """A distributed Client: to the configured scheduler, or to a fresh LocalCluster of processes."""
    from distributed import Client, LocalCluster

    quiet_distributed()
    address = settings.scheduler_address
    if address:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise UnavailableError(f"cannot reach the Dask scheduler at {address}: {exc}",
                                   hint="start it, or set dask.scheduler: local") from None
        try:
            _check_workers(client, address)
            yield client
        finally:
            client.close()
        return
    # workers' own logs stay quiet: errors reach the user once, as one line, through the client
    # workers ignore Ctrl-C (pipeline.worker_setup): the terminal sends it to the whole process
    # group, and this process stops them itself, without a traceback from each
    # a SIGINT / SIGTERM while the cluster starts is held until it has (pipeline.signals), so the
    # cluster is always closed by its context manager, never left half-built
    import dask

    try:
        with ExitStack() as stack:
            # the workers' statistical profiler samples every thread every 10 ms: CPU the scan's
            # own work loses, for a dashboard nobody looks at during a scan
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False,
                                                 "distributed.admin.system-monitor.interval": "2s"}))
            with held(stderr_to=settings.state_path / "workers.log"):
                cluster = stack.enter_context(LocalCluster(**cluster_options(settings.dask.workers)))
                client = stack.enter_context(Client(cluster))
            yield client
    finally:
        stop_helpers()


def code_digest() -> str:
    """A digest of this installation's pipeline package (its version and every module's source): a
    worker of a running cluster must run the same code as the scan, or rules it cannot parse, kinds
    it has not registered and formats it does not know would fail there, file after file."""
    import hashlib
    from pathlib import Path

    from . import __version__

    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        digest = hashlib.sha256(__version__.encode())
        package = Path(__file__).parent
        for path in sorted(package.rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
        _CODE_DIGEST = digest.hexdigest()[:16]
    return _CODE_DIGEST


_CODE_DIGEST: str | None = None


def _check_workers(client: Any, address: str) -> None:
    """Refuse a running cluster whose workers cannot import this pipeline or run other code."""
    from . import __version__

    hint = (f"install this version of the pipeline ({__version__}, code {code_digest()}) on every worker of "
            f"{address} and restart them, or set dask.scheduler: local")
    try:
        theirs = client.run(code_digest)
    except Exception as exc:  # noqa: BLE001 - what a worker raised: it cannot run the scan's tasks either
        raise UnavailableError(f"the Dask workers at {address} cannot run the pipeline: "
                               f"{type(exc).__name__}: {exc}", hint=hint) from None
    if not theirs:   # the tasks wait for workers to join: each is checked as it runs them
        logger.warning("the Dask scheduler at {} has no workers yet: the scan waits for them", address)
        return
    other = sorted(worker for worker, digest in theirs.items() if digest != code_digest())
    if other:
        raise UnavailableError(f"{len(other)} of the {len(theirs)} Dask workers at {address} run other pipeline "
                               f"code than this scan ({', '.join(other[:3])}{' …' if len(other) > 3 else ''})",
                               hint=hint)


def cluster_options(workers: int) -> dict[str, Any]:
    """A LocalCluster of ``workers`` single-threaded workers (pyahocorasick holds the GIL).

    Two or more are processes. One is a thread of this process, which only waits for it while
    it works: a process of its own would cost a start (its interpreter, its imports), a copy of
    every result sent back and a wait for it to exit, for no extra core.
    """
    options: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "dashboard_address": ":0",
                               "silence_logs": logging.CRITICAL}
    if workers == 1:
        from .worker_setup import ThreadWorker

        return {**options, "processes": False, "worker_class": ThreadWorker}
    return {**options, "processes": True, "preload": ["pipeline.worker_setup"]}


class EarlyClient:
    """A ``dask_client`` started in a thread of its own, so that the cluster comes up while the
    rules load and the files are planned and fingerprinted. The thread also closes it (a client
    is entered and exited in one thread): ``get`` waits for the client (raising what starting it
    raised), ``release`` lets it shut down, ``close`` waits until it has (used or not; both may be
    called again)."""

    def __init__(self, settings: Settings):
        import threading

        self._settings = settings
        self._client: Any = None
        self._error: BaseException | None = None
        self._ready, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="dask-start", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with dask_client(self._settings) as client:
                self._client = client
                self._ready.set()
                try:   # the workers load now what their first task would load (tasks queue behind it)
                    client.run(_warm_worker)
                except Exception as exc:  # noqa: BLE001 - only a head start: the tasks load it again
                    logger.debug("warming the workers failed: {}", exc)
                self._done.wait()
        except BaseException as exc:  # noqa: BLE001 - re-raised by get(), in the scan's own thread
            if self._client is None:
                self._error = exc
        finally:
            self._ready.set()

    def get(self) -> Any:
        # woken every 0.1 s: a Ctrl-C that reached another thread is handled in this one only
        # between bytecodes, and must stop the scan before a worker it killed fails the start
        while not self._ready.wait(0.1):
            pass
        if self._error is not None:
            raise self._error
        return self._client

    def release(self) -> None:
        """Start shutting the cluster down, in its thread (the workers take a second or two to exit:
        the case store's work goes on meanwhile)."""
        self._done.set()

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def _warm_worker() -> None:
    """On each worker of an early cluster: the modules and compiled kernels every scan task needs
    (formats, normalization, the prefilter), loaded while the scan is still planning."""
    import numpy as np

    from .matchers.prefilter import Prefilter
    from .normalize import normalize_many

    for source in FORMAT_MODULES:
        load_formats(source)
    normalize_many(["賭 場 c.a.s.i.n.o ＡＢＣ①"])
    Prefilter.build([b"ab", b"abcde"]).cut(np.frombuffer(b"xxabcdexx" * 64, dtype=np.uint8))


def _progress_enabled(settings: Settings) -> bool:
    mode = settings.scan.progress
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def run_tasks(client: Any, tasks: list[ScanTask], ctx: ScanContext, settings: Settings) -> Iterator[FileResult]:
    """Submit one task per file or file part and yield one result per file as its tasks finish,
    with a progress bar. The parts of a file are merged into one result; if one was cut inside
    a quoted value, the file is read again whole by a task of its own."""
    from distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # The context is a task, not scattered data: the scheduler keeps how to make it, so when every
    # worker holding it dies (memory pressure, a restart) it is computed again on the new ones.
    shared = client.submit(_context, ctx, key=f"scan-context-{uuid.uuid4().hex}", pure=False,
                           retries=settings.dask.retries)

    def submit(task: ScanTask) -> Any:
        return client.submit(scan_file, task, shared, retries=settings.dask.retries, pure=False)

    futures = [submit(t) for t in tasks]
    unit = "files" if all(t.part is None for t in tasks) else "file parts"
    progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                        TimeElapsedColumn(), disable=not _progress_enabled(settings), transient=False)
    parts: dict[str, list[FileResult]] = {}
    read_whole: set[str] = set()
    failed: set[str] = set()
    with progress:
        bar = progress.add_task("scan", total=len(futures))
        try:
            queue = as_completed(futures)
            for fut in queue:
                result = fut.result()
                progress.advance(bar)
                if result.error is not None and (ctx.strict or not isinstance(result.error, SourceError)):
                    raise result.error
                if ctx.strict and result.troubles:
                    t = result.troubles[0]
                    raise UnreadableFile(t.path, t.reason, size=t.bytes,
                                         hint="without --strict the file is quarantined and the scan goes on")
                part = result.task.part
                if part is not None and part.path in failed:
                    continue   # another part of the file could not be read: the file is quarantined whole
                if result.error is not None and part is not None:
                    failed.add(part.path)
                    parts.pop(part.path, None)
                    yield replace(result, task=replace(result.task, part=None))
                elif part is None:
                    yield result
                elif part.path in read_whole:
                    continue   # the file is being read whole instead
                elif result.read_whole:
                    logger.info("{}: a quoted value spans the lines where it was cut; reading it whole", part.path)
                    read_whole.add(part.path)
                    parts.pop(part.path, None)
                    futures.append(submit(replace(result.task, part=None)))
                    queue.add(futures[-1])
                    progress.update(bar, total=len(futures))
                else:
                    done = parts.setdefault(part.path, [])
                    done.append(result)
                    if len(done) == part.count:
                        yield merge_parts(parts.pop(part.path))
        finally:
            for f in futures:
                f.cancel()
            shared.cancel()


def _context(ctx: ScanContext) -> ScanContext:
    """The scan context as the result of a task (see run_tasks)."""
    return ctx


def merge_parts(results: list[FileResult]) -> FileResult:
    """The results of a file's parts as the one result of reading it whole."""
    results = sorted(results, key=lambda r: r.task.part.index if r.task.part else 0)
    quarantine = [r.quarantine for r in results if len(r.quarantine)]
    partials: dict[str, list[pd.DataFrame]] = {}
    for r in results:
        for rule_id, frame in r.partials.items():
            partials.setdefault(rule_id, []).append(frame)
    volumes = [r.volume for r in results if r.volume is not None]
    return FileResult(
        replace(results[0].task, part=None),
        rows_read=sum(r.rows_read for r in results), rows_parsed=sum(r.rows_parsed for r in results),
        hits=_concat_hits([r.hits for r in results]),
        quarantine=pd.concat(quarantine, ignore_index=True) if quarantine else results[0].quarantine,
        partials={k: pd.concat(v, ignore_index=True) for k, v in partials.items()},
        volume=pd.concat(volumes, ignore_index=True) if volumes else None,
        rows_already_scanned=sum(r.rows_already_scanned for r in results),
        timings={k: sum(r.timings.get(k, 0.0) for r in results) for k in {k for r in results for k in r.timings}},
        blank_lines=sum(r.blank_lines for r in results))


def scan(settings: Settings, *, config_path: str | None = None, client: Any = None,
         full: bool = False, strict: bool = False) -> ScanReport:
    """Run the configured sources through the rules and fold the hits into cases.

    Incremental by default: files unchanged since the last completed scan are skipped. ``full``
    rescans everything (and, when ``scan.auto_resolve`` is on, resolves open cases whose violation
    was not found again). The case update is one transaction, so a killed scan changes nothing
    and the next run redoes its work.

    A source file that cannot be read (permission denied, vanished, corrupt or truncated
    compression, no line decoding) is quarantined as a file and the scan goes on; the run is then
    ``completed_with_errors`` and the file is not recorded as scanned, so the next run retries it.
    ``strict``: such a file stops the scan instead (exit 2), as does a source entry naming no file.
    """
    # a full scan reads every file: its cluster starts now, while the rules load and files are planned
    early = EarlyClient(settings) if full and client is None else None
    try:
        return _scan(settings, config_path, client if early is None else early, full, strict)
    finally:
        if early is not None:
            early.close()


def _scan(settings: Settings, config_path: str | None, client: Any, full: bool, strict: bool) -> ScanReport:
    ruleset = load_configured_rules(settings)  # a broken rule file stops the scan before any data is read
    if ruleset.skipped:
        logger.warning("{} Sigma rule(s) skipped as unsupported (sigma.unsupported: skip): {}", len(ruleset.skipped),
                       "; ".join(f"{s.rule_id}: {s.reason}" for s in ruleset.skipped))
    all_tasks = plan_tasks(settings, strict=strict)
    store = open_store(settings.state_path, settings.case_store)
    try:
        with scan_lock(settings.state_path, store):
            return _scan_locked(settings, store, ruleset, all_tasks, config_path, client, full, strict)
    finally:
        store.close()


def _scan_locked(settings: Settings, store: CaseStore, ruleset: RuleSet, all_tasks: list[ScanTask],
                 config_path: str | None, client: Any, full: bool, strict: bool = False) -> ScanReport:
    known = {} if full else store.scanned_files()
    tasks, files = [], []
    unreadable: list[tuple[ScanTask, UnreadableFile]] = []
    for task in all_tasks:
        try:
            # A full scan reads every file whatever its digest: the digests of files other than logs
            # (whose digest decides what the retained store already holds) are taken beside the scan.
            record, changed = fingerprint(task.path, known.get(task.path), digest=not full or task.source == "logs")
        except OSError as exc:   # vanished or unreadable since it was listed
            trouble = os_trouble(task.path, exc)
            if strict:
                raise trouble from None
            unreadable.append((task, trouble))
            continue
        if changed:
            tasks.append(replace(task, sha256=record.get("sha256") or ""))
            files.append({**record, "source": task.source, "format": task.format})
    ctx = replace(scan_context(settings, ruleset), strict=strict)
    if not full:
        ctx = replace(ctx, put_time_scanned=store.watermarks("objects"))
    run_id = store.begin_run(config_path, ruleset.digest)
    report = ScanReport(run_id)
    report.rules_skipped = {s.rule_id: s.reason for s in ruleset.skipped}
    report.files_skipped = len(all_tasks) - len(tasks) - len(unreadable)
    licensing = sum(len(expand(settings.resolve(e.path))) for kind in ("icp", "licences")
                    for e in getattr(settings.sources, kind)) if ruleset.for_source("icp") else 0
    logger.info("scan {}: {} rules, {} changed file(s) to read{}, {} unchanged (skipped)", run_id,
                len(ruleset.rules), len(tasks) + len(unreadable),
                f" and {licensing} filing / licence file(s), read on every scan" if licensing else "",
                report.files_skipped)
    began = time.perf_counter()
    digests = _Digests([f for f in files if not f["sha256"] and f["size"] >= 0])
    try:
        quarantined: list[tuple[str, pd.DataFrame]] = []  # committed with the cases, so a killed run leaves none
        for task, trouble in unreadable:
            report.files += 1
            report.per_source.setdefault(task.source, {"files": 0, "rows_read": 0, "rows_parsed": 0,
                                                       "rows_quarantined": 0})["files"] += 1
            _quarantine_file(quarantined, report, task, FileTrouble(task.path, trouble.reason, -1), trouble.hint)
        with _log_ingester(settings, tasks, strict) as ingester:
            if ingester is not None:
                ctx = replace(ctx, ingest_logs=True, ingested=frozenset(ingester.done))
            hits = _collect(settings, tasks, ctx, store, report, client, quarantined, ingester)
            if ingester is not None:
                # Published before the cases are: every log case's evidence is a row the store holds.
                storing = time.perf_counter()
                stored = ingester.close()
                report.timings["store"] = report.timings.get("store", 0.0) + time.perf_counter() - storing
                already = sum(1 for t in tasks if t.source == "logs" and t.sha256 in ctx.ingested)
                report.logs_stored = {"files": stored.files_read, "rows_stored": stored.rows_stored,
                                      "files_already_ingested": already + len(stored.files_skipped),
                                      "partitions_written": len(stored.partitions_written)}
        _report_rules(report, hits, ruleset, settings.scan.noisy_rule_share)
        checkpoint("scan.before_apply")
        raise_if_received()   # a Ctrl-C whose exception was lost in a callback still stops the scan
        folding = time.perf_counter()
        troubled = {f["path"] for f in report.files_quarantined}
        digests.wait()
        applied = store.apply_hits(run_id, hits, ruleset, settings.scan.max_evidence,
                                   files=[f for f in files if f["size"] >= 0 and f["path"] not in troubled],
                                   watermarks={"objects": report.put_time_max}, quarantine=quarantined)
        if full and settings.scan.auto_resolve:
            scanned_sources = {t.source for t in all_tasks}
            rule_ids = [r.id for r in ruleset.rules if set(r.sources) & scanned_sources]
            seen = set(applied.case_ids)  # digested once, by the fold
            report.cases_resolved = len(store.auto_resolve(run_id, rule_ids, seen))
        report.timings["case_store"] = time.perf_counter() - folding
        report.timings["total"] = time.perf_counter() - began
    except BaseException as exc:
        # Ctrl-C and SIGTERM mark the run interrupted; nothing of it was committed either way
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            store.finish_run(run_id, status, report.as_dict())
        except Exception as err:  # the store itself may be what failed (disk full, connection lost)
            logger.debug("run {} could not be marked {}: {}", run_id, status, err)
        raise
    report.hits = len(hits)
    report.cases_new, report.cases_updated, report.cases_unchanged = applied.new, applied.updated, applied.unchanged
    report.cases_reopened = applied.reopened
    report.status = "completed_with_errors" if report.files_quarantined else "completed"
    store.finish_run(run_id, report.status, {**report.as_dict(), "details": {
        **report.per_source, "files_quarantined": report.files_quarantined}})
    logger.info("scan {} {}: {} file(s), {} rows, {} quarantined, {} new cases", run_id, report.status.replace("_", " "),
                report.files, report.rows_read, report.rows_quarantined, report.cases_new)
    for f in report.files_quarantined:
        logger.warning("{}: quarantined as a file: {} (retried by the next run)", f["path"], f["reason"])
    return report


class _Digests:
    """The SHA-256 of ``files`` (their records, filled in place), taken in a thread of its own while
    the scan runs: hashing releases the GIL, so it takes a core the scan's tasks leave idle. A file
    that cannot be read again keeps an empty digest: the next scan that finds it changed reads it."""

    def __init__(self, files: list[dict[str, Any]]):
        import threading

        self._files = files
        self._thread = threading.Thread(target=self._run, name="file-digests", daemon=True)
        if files:
            self._thread.start()

    def _run(self) -> None:
        for record in self._files:
            try:
                record["sha256"] = sha256_file(record["path"])
            except OSError as exc:
                logger.debug("{}: no digest recorded: {}", record["path"], exc)

    def wait(self) -> None:
        if self._files:
            self._thread.join()


def _report_rules(report: ScanReport, hits: pd.DataFrame, ruleset: RuleSet, noisy_share: float) -> None:
    """Rows hit per rule in the report; a rule over ``noisy_share`` of its source's rows is warned of."""
    scanned = {source: c["rows_parsed"] - (report.rows_already_scanned if source == "objects" else 0)
               for source, c in report.per_source.items() if source in SCANNED_SOURCES}
    report.rules = rule_rows(hits, ruleset, scanned, noisy_share)
    for r in report.rules:
        if r["noisy"]:
            top = ", ".join(f"{p} ({n})" for p, n in r["top_patterns"])
            logger.warning("noisy rule {}: it hit {:.1%} of the {} rows scanned (over scan.noisy_rule_share {:.1%}); "
                           "most frequent patterns: {}", r["rule_id"], r["share"], r["source"], noisy_share, top)


def _quarantine_file(quarantined: list[tuple[str, pd.DataFrame]], report: ScanReport, task: ScanTask,
                     trouble: FileTrouble, hint: str | None = None) -> None:
    """Record a file that could not be read (or whose tail could not): in the report, the run's
    details and the quarantine (one row with no line number; ``quarantine list`` shows it)."""
    reason = trouble.reason + (f" ({hint})" if hint else "")
    size = trouble.bytes
    if size < 0 and "://" not in task.path:
        try:
            size = os.path.getsize(task.path)
        except OSError:
            size = -1
    report.files_quarantined.append({**FileTrouble(task.path, reason, size, trouble.partial).as_dict(),
                                     "source": task.source})
    quarantined.append((task.source, pd.DataFrame(
        [{"source_file": task.path, "source_line": None, "raw": b"",
          "reason": f"file ({size if size >= 0 else '?'} bytes{', tail only' if trouble.partial else ''}): {reason}"}])))


@contextmanager
def _log_ingester(settings: Settings, tasks: list[ScanTask], strict: bool) -> Iterator[Any]:
    """The retained store's writer for a scan that reads log files (``retention.ingest_on_scan``), else None.

    It holds the store's lock for the scan, so a ``logs ingest`` at the same time waits for it.
    """
    if not settings.retention.ingest_on_scan or not any(t.source == "logs" for t in tasks):
        yield None
        return
    from .retention.ingest import Ingester

    with Ingester(settings, strict=strict) as ingester:
        yield ingester


def scan_context(settings: Settings, ruleset: RuleSet) -> ScanContext:
    b = load_bindings(settings.sources.bindings, settings.resolve)
    return ScanContext(ruleset, domain_owner=owners(b, "domain"), hub_owner=owners(b, "hub"), bindings=b,
                       keyword_backend=settings.scan.keyword_backend, batch_rows=settings.scan.batch_rows)


def _collect(settings: Settings, tasks: list[ScanTask], ctx: ScanContext, store: CaseStore,
             report: ScanReport, client: Any, quarantined: list[tuple[str, pd.DataFrame]],
             ingester: Any = None) -> pd.DataFrame:
    frames: list[pd.DataFrame] = []
    partials: dict[str, list[pd.DataFrame]] = {}
    volumes: dict[str, list[pd.DataFrame]] = {"logs": [], "objects": []}

    def consume(results: Iterator[FileResult]) -> None:
        for res in results:
            report.files += 1
            if res.error is not None:
                err = res.error
                reason = err.reason if isinstance(err, UnreadableFile) else str(PipelineError(
                    err.message, location=err.location))
                _quarantine_file(quarantined, report, res.task, FileTrouble(res.task.path, reason,
                                 getattr(err, "size", -1)), err.hint)
                src = report.per_source.setdefault(res.task.source, {"files": 0, "rows_read": 0, "rows_parsed": 0,
                                                                      "rows_quarantined": 0})
                src["files"] += 1
                continue
            for trouble in res.troubles:
                _quarantine_file(quarantined, report, res.task, trouble)
            if res.ingest is not None and ingester is not None:
                storing = time.perf_counter()
                ingester.add(res.ingest, res.troubles)
                report.timings["store"] = report.timings.get("store", 0.0) + time.perf_counter() - storing
                res.ingest = None
            report.blank_lines += res.blank_lines
            report.rows_read += res.rows_read
            report.rows_parsed += res.rows_parsed
            report.rows_quarantined += len(res.quarantine)
            report.rows_already_scanned += res.rows_already_scanned
            for stage, seconds in res.timings.items():
                report.timings[stage] = report.timings.get(stage, 0.0) + seconds
            src = report.per_source.setdefault(res.task.source, {"files": 0, "rows_read": 0, "rows_parsed": 0,
                                                                  "rows_quarantined": 0})
            src["files"] += 1
            src["rows_read"] += res.rows_read
            src["rows_parsed"] += res.rows_parsed
            src["rows_quarantined"] += len(res.quarantine)
            if len(res.quarantine):
                quarantined.append((res.task.source, res.quarantine))
                for q in res.quarantine.head(3).itertuples(index=False):
                    if len(report.quarantine_samples) < 10:
                        report.quarantine_samples.append({"file": q.source_file, "line": _int(q.source_line),
                                                          "reason": q.reason})
            if len(res.hits):
                frames.append(res.hits)
            for rule_id, part in res.partials.items():
                if len(part):
                    partials.setdefault(rule_id, []).append(part)
            if res.volume is not None and len(res.volume):
                volumes[res.task.source].append(res.volume)
                if res.task.source == "objects":
                    for bucket, newest in zip(res.volume["bucket"], res.volume["put_time_max"]):
                        if pd.notna(newest):
                            iso = pd.Timestamp(newest).tz_convert("UTC").isoformat()
                            report.put_time_max[str(bucket)] = max(iso, report.put_time_max.get(str(bucket), iso))

    work = split_tasks(tasks, settings.scan.part_bytes)
    if work and isinstance(client, EarlyClient):
        starting = time.perf_counter()
        started = client.get()
        report.timings["dask_start"] = time.perf_counter() - starting  # what was left to wait for
        try:
            consume(run_tasks(started, work, ctx, settings))
        finally:
            client.release()  # closed meanwhile; ``scan`` waits for it at its end
    elif work and client is not None:
        consume(run_tasks(client, work, ctx, settings))
    elif work:
        starting = time.perf_counter()
        with dask_client(settings) as c:
            report.timings["dask_start"] = time.perf_counter() - starting
            consume(run_tasks(c, work, ctx, settings))
    for rule_id, parts in partials.items():
        agg_hits = aggregate_hits(ctx.ruleset.by_id(rule_id), pd.concat(parts, ignore_index=True))
        is_domain = agg_hits["subject_type"] == "domain"
        agg_hits.loc[is_domain, "account_id"] = [ctx.domain_owner.get(str(d).lower(), "")
                                                 for d in agg_hits.loc[is_domain, "subject_id"]]
        frames.append(agg_hits)
    hits = pd.concat(frames, ignore_index=True) if frames else empty_hits()
    site_rules = [r.id for r in ctx.ruleset.rules if r.category.startswith(SITE_PREFIX)]
    site = hits["rule_id"].isin(site_rules).to_numpy(dtype=bool)
    licensing = _licensing(settings, ctx, quarantined, report, hits[site],
                           _combine_volume(volumes["logs"], "logs"), _combine_volume(volumes["objects"], "objects"))
    found = hits[~site].reset_index(drop=True) if site.any() else hits
    return pd.concat([found, licensing], ignore_index=True) if len(licensing) else found


SITE_PREFIX = "site_"  # categories of rules that only infer a site's field of content, never cases


def _licensing(settings: Settings, ctx: ScanContext, quarantined: list[tuple[str, pd.DataFrame]], report: ScanReport,
               site_hits: pd.DataFrame,
               traffic: pd.DataFrame, object_buckets: pd.DataFrame) -> pd.DataFrame:
    """The licensing checks: filings and licences joined with bindings, traffic and inferred content."""
    rules = ctx.ruleset.for_source("icp")
    if not rules:
        return empty_hits()
    from .licensing import LicensingInput, evaluate_licensing, read_licensing_sources, skipped_checks
    from .licensing.checks import INPUTS

    read = read_licensing_sources(settings, strict=ctx.strict)
    filings, licences, quarantine, counts = read.filings, read.licences, read.quarantine, read.counts
    for kind, trouble, hint in read.troubles:   # quarantined as files, like object and log files
        _quarantine_file(quarantined, report, ScanTask(kind, trouble.path, ""), trouble, hint)
    report.blank_lines += read.blank_lines
    for kind, c in counts.items():
        # filings and licences are read whole on every scan, incremental or not: count every file read,
        # so that `files` is the sum of per_source's files
        files = sum(len(expand(settings.resolve(e.path))) for e in getattr(settings.sources, kind))
        if files:
            report.per_source[kind] = {"files": files, **c}
            report.files += files
            report.rows_read += c["rows_read"]
            report.rows_parsed += c["rows_parsed"]
            report.rows_quarantined += c["rows_quarantined"]
    quarantined.append(("icp", quarantine))
    bindings = ctx.bindings if ctx.bindings is not None else load_bindings(settings.sources.bindings, settings.resolve)
    unconfigured = frozenset(kind for kind in INPUTS if not getattr(settings.sources, kind))
    report.checks_skipped = skipped_checks(ctx.ruleset.rules, unconfigured)
    if report.checks_skipped:
        logger.warning("skipped {} licensing rule(s), {}: {}",
                       len(report.checks_skipped), "; ".join(sorted(set(report.checks_skipped.values()))),
                       ", ".join(sorted(report.checks_skipped)))
    data = LicensingInput(filings, licences, bindings, traffic, site_hits.reset_index(drop=True), object_buckets,
                          unconfigured)
    return evaluate_licensing(ctx.ruleset.rules, data)  # checks and the site_* rules whose params they read


def aggregate_hits(rule: Any, parts: pd.DataFrame) -> pd.DataFrame:
    """An aggregate rule's episodes over the threshold, as hit rows (one per episode)."""
    episodes = aggregate.evaluate(rule, parts)
    if episodes.empty:
        return empty_hits()
    agg = rule.aggregate
    subject_field = rule.subject or agg.group_by[0]
    stype = LOG_SUBJECT_TYPES.get(subject_field, subject_field)
    measure = (f"distinct {agg.distinct_field} >= {agg.distinct_gte}" if agg.distinct_field
               else f"sum {agg.sum_field} >= {agg.sum_gte:g}" if agg.sum_field else f"count >= {agg.count_gte}")
    rows = []
    for ep in episodes.to_dict("records"):
        samples = json.loads(ep["samples"])
        first = samples[0].rsplit(":", 1) if samples else ["", ""]
        group = ", ".join(f"{g}={ep[g]}" for g in agg.group_by)
        rows.append({
            "rule_id": rule.id, "subject_type": stype, "subject_id": str(ep[subject_field]),
            "account_id": str(ep["account_id"]) if "account_id" in ep and ep["account_id"] else "",
            "event_time": ep["window_start"], "source_file": first[0],
            "source_line": int(first[1]) if len(first) > 1 and first[1].isdigit() else None,
            "hit_key": f"window:{ep['window_start'].isoformat()}",
            "evidence": json.dumps([{
                "field": agg.distinct_field or agg.sum_field or "requests", "kind": "aggregate",
                "pattern": f"{measure} per {'+'.join(agg.group_by)} in {agg.window_seconds}s",
                "text": f"{group}: {ep['value']:g} between {ep['window_start'].isoformat()} and "
                        f"{ep['window_end'].isoformat()}",
                "value": ep["value"], "threshold": ep["threshold"], "lines": samples,
            }], ensure_ascii=False),
        })
    return pd.DataFrame(rows, columns=HIT_COLUMNS)


def _int(v: Any) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


__all__ = ["ScanReport", "ScanTask", "scan", "scan_file", "plan_tasks", "dask_client"]
