"""A parsed log file made ready for the store: its rows in the store's types, split by UTC day,
and its quarantine. Pure (writes nothing), so that a scan's worker can run it beside its parser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..records import LOGS
from ..sources.base import BLANK_LINE, undecodable_suffix
from ..sources.logs_common import LogTable, Quarantined
from . import ipkey
from .layout import STORE_SCHEMA

_US_PER_DAY = 86_400_000_000
_CANONICAL = pa.schema([STORE_SCHEMA.field(name) for name in LOGS])
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass
class Parsed:
    """One source file, parsed, split by UTC day, waiting to be merged."""

    path: str
    fmt: str
    sha256: str
    rows_read: int
    rows_quarantined: int
    by_day: dict[date, pa.Table] = field(default_factory=dict)
    partial: bool = False   # a truncated tail was not read: not recorded in the ledger, read again next time
    blank_lines: int = 0
    quarantine: list[Quarantined] = field(default_factory=list)   # written when the file joins a batch
    encoding: str = "utf-8"   # how its bytes were read, named when no line of it parsed

    @property
    def unparsed(self) -> bool:
        """Every line quarantined (none stored): not recorded in the ledger."""
        return self.rows_read > 0 and self.rows_quarantined == self.rows_read

    # A scan's worker sends this to the scan's process. Each day is a slice of one table, and a
    # pickled slice carries the whole table's buffers: as Arrow IPC each carries its own rows.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["by_day"] = {day: _ipc(table) for day, table in self.by_day.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["by_day"] = {day: pa.ipc.open_stream(buf).read_all() for day, buf in state["by_day"].items()}
        self.__dict__.update(state)


def _ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _lower(domain: pa.ChunkedArray) -> pa.ChunkedArray:
    """Domain names in lower case (they are case-insensitive: one spelling makes equality exact).

    The usual log writes them in lower case already: a scan of the bytes for an upper-case ASCII
    letter or a non-ASCII byte (which may be a cased letter) spares the copy of the column.
    """
    for chunk in domain.chunks:
        data = chunk.buffers()[2]
        if data is None:
            continue
        buf = np.frombuffer(data, dtype=np.uint8)
        if ((buf - np.uint8(65) < 26) | (buf >= 128)).any():
            return pc.utf8_lower(domain)
    return domain


def _to_days(columns: dict[str, pa.ChunkedArray], bindings: dict[str, str]) -> dict[date, pa.Table]:
    """Canonical Arrow columns → store-schema tables, one per UTC day, in the file's order.

    Each day is sorted into store order once, when it is published with the other files of that
    day (``partition.write_version``): sorting here too would copy every row twice.
    Consumes ``columns``: each is dropped as soon as it is no longer needed.
    """
    for name in list(columns):
        if name in _CANONICAL.names:
            columns[name] = columns[name].cast(_CANONICAL.field(name).type, safe=False)
        else:
            del columns[name]
    domain = columns["domain"] = _lower(columns["domain"])
    if bindings:
        names = pa.array(list(bindings), type=pa.string())
        bound = pc.take(pa.array(list(bindings.values()), type=pa.string()), pc.index_in(domain, value_set=names))
        columns["account_id"] = pc.coalesce(columns["account_id"], bound)
    del domain
    distinct_keys, key_code, _rank = ipkey.key_codes(columns["client_ip"])
    micros = columns["ts"].combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
    day_numbers = micros // _US_PER_DAY
    arrays = [columns.pop(name) for name in LOGS]
    arrays.append(distinct_keys.take(pa.array(key_code)))
    table = pa.Table.from_arrays(arrays, schema=STORE_SCHEMA)
    if len(day_numbers) and bool((np.diff(day_numbers) < 0).any()):
        # Days out of order (rare: a file spanning midnight out of order): one stable take groups them.
        order = np.argsort(day_numbers, kind="stable")
        table, day_numbers = table.take(pa.array(order)), day_numbers[order]
    # Rows in day order (the usual log): each day is a slice of the file's table, no copy.
    bounds = np.flatnonzero(np.diff(day_numbers)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(day_numbers)]))
    return {date.fromordinal(_EPOCH + int(day_numbers[a])): table.slice(a, b - a) for a, b in zip(starts, ends)}


def explain_table(table: LogTable, encoding: str) -> LogTable:
    """Reasons for lines that are not text name the encoding tried and the setting to change."""
    if not any(str(r[2]).startswith("invalid UTF-8") for r in table.quarantine):
        return table
    suffix = undecodable_suffix(encoding)
    return replace(table, quarantine=tuple((f, n, r + suffix if str(r).startswith("invalid UTF-8") else r, raw)
                                           for f, n, r, raw in table.quarantine))


def prepare(path: str, fmt: str, sha: str, table: LogTable, *, bindings: dict[str, str],
            encoding: str = "utf-8") -> Parsed:
    """A file's parsed table → its rows split by UTC day in the store's types, and its quarantine.

    Pure (writes nothing): the scan runs it on the worker that parsed the file, and the process
    holding the store lock publishes the result (``Ingester.add``). ``bindings``: domain (lower
    case) → account_id, filling rows that name no account.
    """
    records = table.records
    quarantine = list(table.quarantine)
    no_ts = pc.is_null(records["ts"])
    if pc.any(no_ts).as_py():
        # A row without a time belongs to no day; keep it, accounted for, in quarantine.
        for row in records.filter(no_ts).to_pylist():
            quarantine.append((str(row["source_file"]), int(row["source_line"]),
                               "no timestamp, cannot be placed in a day partition",
                               json.dumps(row, default=str).encode()))
        records = records.filter(pc.invert(no_ts))
    parsed = Parsed(path, fmt, sha, table.rows_read, len(quarantine), encoding=encoding,
                    blank_lines=sum(1 for q in quarantine if q[2] == BLANK_LINE), quarantine=quarantine)
    if records.num_rows:
        # Handed over column by column, with no other reference left, so _to_days can free each.
        columns = {name: records.column(name) for name in records.column_names}
        del records
        parsed.by_day = _to_days(columns, bindings)
    return parsed
