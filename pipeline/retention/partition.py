"""Writing one day's partition as a new version and publishing it atomically.

The version is written under a temporary name, fsynced, renamed into place, and only then named
by the pointer (``os.replace``); the previous version is removed last. A kill at any instant
leaves the old version or the new one visible, and remains that ``layout.clean_leftovers`` removes.

A day is a few *runs*: each ingest that adds rows to a day writes them as a run of its own, sorted
(by IP, then time) and split into files, and the new version takes the previous version's files as
they are (hard links: nothing is read or rewritten). Once a day would hold more than ``MAX_RUNS``
runs, the ingest merges all of them into one, as the first ingest of the day wrote it. An ingest
of an hour's file thus costs that file, not the whole day so far: a cron adding a CDN's hourly
logs rewrites each row about once per ``MAX_RUNS`` ingests, where merging every time rewrote the
day at each one. A query reads every file of its days, each pruned by its own row groups'
statistics.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import Settings
from ..errors import Location, StoreError
from ..faults import checkpoint
from ..files import sha256_file
from .layout import (IP_KEY, MANIFEST, POINTER, SCHEMA_VERSION, STORE_SCHEMA, TMP_PREFIX, Partition,
                     days_dir, fsync_dir)

ROW_GROUP_ROWS = 50_000     # small enough that one IP's rows touch one or two groups of a day
FILE_ROWS = 2_000_000       # a big day is split into several files so none grows without bound
MAX_RUNS = 8                # runs a day holds before an ingest merges them into one (see above)
# Stable sort: rows equal on both keys keep their arrival order (old version first, then files in order).
SORT_KEYS = [(IP_KEY, "ascending"), ("ts", "ascending")]
# Columns whose values seldom repeat within a row group (line numbers, byte counts, times down to
# the second sorted by IP): a dictionary costs a hash per value and is then abandoned. Plain, they
# write ~25% faster and zstd makes the files smaller than with it (8.4 -> 6.4 MiB a 500k-row day).
# The request's target and path nearly never repeat in a day either (and are the longest values).
PLAIN_COLUMNS = frozenset({"source_line", "bytes_sent", "ts", "uri", "path"})
_DICTIONARY = [name for name in STORE_SCHEMA.names if name not in PLAIN_COLUMNS]
# Min/max statistics only where a regulator's query filters (``query.run``): the sort keys, then
# domain and account. Elsewhere they never prune a group and comparing the values costs ~10% of
# the write (free text most of it). A query that filters on a new column must add it here.
QUERIED_COLUMNS = (IP_KEY, "ts", "domain", "account_id")
_STATISTICS = list(QUERIED_COLUMNS)


def read_partition(part: Partition) -> pa.Table:
    """All rows of a published partition, in the store schema."""
    tables = [pq.read_table(path, schema=STORE_SCHEMA) for path in part.files]
    return pa.concat_tables(tables) if tables else STORE_SCHEMA.empty_table()


def store_order(table: pa.Table) -> np.ndarray:
    """The stable order of ``SORT_KEYS`` (nulls last), sorted on integers rather than strings.

    A day holds few distinct IP keys: each gets its rank among them, and one ``lexsort`` of
    (rank, time) is several times cheaper than Arrow's sort of the string column.
    """
    encoded = pc.dictionary_encode(table.column(IP_KEY).combine_chunks())
    distinct = len(encoded.dictionary)
    rank = np.empty(distinct + 1, dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(distinct)
    rank[distinct] = distinct
    codes = encoded.indices.fill_null(distinct).to_numpy(zero_copy_only=False)
    micros = table.column("ts").combine_chunks().cast(pa.int64())
    micros = pc.fill_null(micros, np.iinfo(np.int64).max).to_numpy(zero_copy_only=False)
    return np.lexsort((micros, rank[codes]))


def _write_file(path: Path, table: pa.Table) -> None:
    with pq.ParquetWriter(
        path, STORE_SCHEMA, compression="zstd", write_statistics=_STATISTICS, use_dictionary=_DICTIONARY,
        sorting_columns=[pq.SortingColumn(STORE_SCHEMA.get_field_index(IP_KEY)),
                         pq.SortingColumn(STORE_SCHEMA.get_field_index("ts"))],
    ) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def runs(part: Partition) -> int:
    """How many sorted runs a published day holds (a manifest written before runs were kept apart,
    whose files carry no run number, is one run: its day was sorted as a whole)."""
    return len({f.get("run", 0) for f in part.manifest["files"]})


def _carry(previous: Partition, name: str, into: Path) -> None:
    """The previous version's file ``name`` in the new version's folder, the same bytes: a hard link,
    or a copy where the filesystem has none."""
    source = previous.folder / name
    try:
        os.link(source, into / name)
    except FileNotFoundError:
        raise StoreError(f"partition {previous.day} (version {previous.folder.name}) is damaged: its data file "
                         f"{name}, listed in its manifest, is missing", location=Location(str(source)),
                         hint="run `compliance logs verify`; restore the state folder from backup") from None
    except OSError:   # no hard links here (some network and FUSE filesystems)
        shutil.copyfile(source, into / name)
        with open(into / name, "rb") as fh:
            os.fsync(fh.fileno())


def write_version(settings: Settings, day: date, table: pa.Table, sources: list[dict[str, Any]],
                  previous: Partition | None, *, keep_previous: bool = False) -> Partition:
    """Sort ``table``, write it as a new version and publish it.

    ``keep_previous``: ``table`` holds only the rows new to the day; they become a run of their own
    beside the previous version's files, which the new version lists as they are. Otherwise
    ``table`` is the whole day, written as one run. ``sources``: every source of the new version.
    """
    folder = days_dir(settings) / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    version = f"v-{time.time_ns():x}-{os.getpid()}"
    tmp = folder / f"{TMP_PREFIX}{version}"
    tmp.mkdir()

    files: list[dict[str, Any]] = []
    rows = table.num_rows
    run = 0
    if keep_previous and previous is not None:
        for entry in previous.manifest["files"]:
            _carry(previous, entry["name"], tmp)
            files.append({**entry, "run": entry.get("run", 0)})
        rows += previous.rows
        run = max(f["run"] for f in files) + 1 if files else 0
    # One contiguous table first: a take from the many slices of a day (one per source file) costs
    # more than the copy that joins them.
    table = table.combine_chunks()
    table = table.take(pa.array(store_order(table)))
    # a day written whole has at least one file, even empty; a run adds only files with rows. A
    # version's files are part-00000 on, carried ones keeping their names: new ones number on.
    ends = table.num_rows if files else max(table.num_rows, 1)
    for index, start in enumerate(range(0, ends, FILE_ROWS), start=len(files)):
        chunk = table.slice(start, FILE_ROWS)
        name = f"part-{index:05d}.parquet"
        _write_file(tmp / name, chunk)
        files.append({"name": name, "rows": chunk.num_rows, "sha256": sha256_file(tmp / name), "run": run})
        checkpoint("file-written")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "day": day.isoformat(),
        "version": version,
        "rows": rows,
        "sources": sorted(sources, key=lambda s: (s["sha256"], s["file"])),
        "files": files,
        "sort": [k for k, _ in SORT_KEYS],
        "row_group_rows": ROW_GROUP_ROWS,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    os.rename(tmp, folder / version)
    fsync_dir(folder)
    checkpoint("version-written")

    pointer_tmp = folder / f"{TMP_PREFIX}{POINTER}.{os.getpid()}"
    with open(pointer_tmp, "w", encoding="utf-8") as fh:
        fh.write(version + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer_tmp, folder / POINTER)
    fsync_dir(folder)
    checkpoint("published")

    if previous is not None and previous.folder.name != version:
        shutil.rmtree(previous.folder, ignore_errors=True)
    return Partition(day, folder / version, manifest)
