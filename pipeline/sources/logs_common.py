"""What every access-log reader shares: the format registry, the table a reader returns, and
assembling it from canonical columns. Lines are split in ``logs_lines``, fields converted in
``logs_fields``.

Line accounting, the contract a caller reconciles against ``wc -l``:
a file's physical lines are its ``\\n``-terminated lines plus a final unterminated line if the file
does not end in ``\\n`` (so ``wc -l`` + 1 in that case). ``\\r\\n`` endings are accepted. Every
physical line is a data line except the directive lines a format declares (W3C ``#...`` lines),
which are neither records nor quarantine. Blank lines are data lines and are quarantined as
``blank line``, so that ``rows_read == physical lines - directive lines`` always holds.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..records import LOGS, TS, conform
from ..registry import Registry
from .base import LOG_FORMATS, ReadResult, Stored, quarantine_frame
from .logs_fields import constant
from .logs_lines import Lines, take_ascending

# --- assembling the result --------------------------------------------------------------------

def _pandas(col: pa.Array | pa.ChunkedArray, dtype: str) -> pd.Series:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if dtype == TS:
        return pd.Series(col.to_pandas(), dtype=TS) if len(col) else pd.Series([], dtype=TS)
    if dtype == "string":
        return pd.Series(pd.arrays.ArrowStringArray(pc.cast(col, pa.large_string())), dtype="string") \
            if len(col) else pd.Series([], dtype="string")
    mapper = {"Int64": pd.Int64Dtype(), "Float64": pd.Float64Dtype()}
    return col.to_pandas(types_mapper={col.type: mapper[dtype]}.get).astype(dtype)


# The Arrow type of each canonical dtype; strings stay large (64-bit offsets) as the parsers make them.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.large_string(), "Int64": pa.int64(), "Float64": pa.float64(), TS: pa.timestamp("ns", "UTC"),
}
LOGS_ARROW: pa.Schema = pa.schema([pa.field(name, ARROW_TYPES[dtype]) for name, dtype in LOGS.items()])

Quarantined = tuple[str, int, str, bytes]  # (source file, line number, reason, raw bytes)

# The column holding each record's raw line: rules read it (Sigma keyword searches) while the scan
# evaluates a batch; it is never part of the canonical records, so the retained store never sees it.
RAW = "raw"
_KEEP_RAW: contextvars.ContextVar[bool] = contextvars.ContextVar("keeping_raw", default=False)


@contextlib.contextmanager
def keeping_raw(keep: bool = True) -> Iterator[None]:
    """While active, log readers add the ``raw`` column (each record's line) to their frames."""
    token = _KEEP_RAW.set(keep)
    try:
        yield
    finally:
        _KEEP_RAW.reset(token)


@dataclass(frozen=True)
class LogTable:
    """One file read into Arrow columns (``LOGS_ARROW``): what the store ingests without pandas.

    Same accounting as ``ReadResult``: ``rows_read == records.num_rows + len(quarantine)``.
    """

    records: pa.Table
    quarantine: tuple[Quarantined, ...]
    rows_read: int
    raw: pa.Array | None = None    # each record's line as logged, only inside ``keeping_raw()``

    def __post_init__(self) -> None:
        if self.rows_read != self.records.num_rows + len(self.quarantine):
            raise AssertionError(f"row accounting broken: read {self.rows_read}, parsed {self.records.num_rows}, "
                                 f"quarantined {len(self.quarantine)}")

    def to_result(self) -> ReadResult:
        """The same rows as the canonical pandas frame every other caller reads."""
        frame = {name: _pandas(self.records.column(name), dtype) for name, dtype in LOGS.items()}
        records = conform(pd.DataFrame(frame), LOGS)
        if self.raw is not None:
            records[RAW] = _pandas(self.raw, "string")
        return ReadResult(records=records, quarantine=quarantine_frame(list(self.quarantine)),
                          rows_read=self.rows_read)


TableReader = Callable[..., LogTable]


@dataclass(frozen=True)
class LogFormat:
    """One access-log format: its reader and whether its lines name the site they were served for.

    The reader turns one file into a ``LogTable`` (the canonical Arrow columns, and inside
    ``keeping_raw()`` each record's line): the retained store ingests that table and the scan
    evaluates its rules on a pandas view of the same table, so a line is parsed once per pass.
    ``carries_domain`` False: the domain comes only from the caller (``--domain`` or the entry's
    ``domain:``), or from the rare absolute request target of a proxy; the store refuses such files
    without a domain (rows with a null domain could never be found by a domain query nor joined to
    an account, and a file is ingested once), and the scan refuses such entries.
    """

    name: str
    read: TableReader
    carries_domain: bool

    def __call__(self, path: str, *, data: Stored | None = None, domain: str | None = None,
                 account_id: str | None = None) -> LogTable:
        return self.read(path, data=data, domain=domain, account_id=account_id)

    def read_frame(self, path: str, *, domain: str | None = None, account_id: str | None = None) -> ReadResult:
        """The file as the canonical pandas frame (the view every pandas caller reads)."""
        return self.read(path, domain=domain, account_id=account_id).to_result()


# One entry per format (``log_format`` below); ``LOG_FORMATS`` (pandas) is derived from it.
LOG_READERS: Registry[LogFormat] = Registry("log format")
LOG_TABLES = LOG_READERS   # the name the store's ingest and older callers use

# Formats whose lines carry no host, derived from the registry (kept as a set for its callers).
NO_DOMAIN_FORMATS: set[str] = set()


def log_format(name: str, *, carries_domain: bool) -> Callable[[TableReader], TableReader]:
    """Register a format's table reader: the one declaration a format module makes."""
    def decorate(read: TableReader) -> TableReader:
        fmt = LOG_READERS.register(name)(LogFormat(name, read, carries_domain))
        LOG_FORMATS.register(name)(fmt.read_frame)  # type: ignore[arg-type]
        if not carries_domain:
            NO_DOMAIN_FORMATS.add(name)
        return read

    return decorate


def _arrow(col: pa.Array | pa.ChunkedArray, dtype: str) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    target = ARROW_TYPES[dtype]
    if col.type == target:
        return col
    if dtype == TS and pa.types.is_timestamp(col.type) and col.type.tz is None:
        col = pc.assume_timezone(col, "UTC")
    return col.cast(target)


def assemble_table(lines: Lines, columns: Mapping[str, pa.Array], failures: Mapping[int, str], *,
                   rows_read: int | None = None, present: np.ndarray | None = None) -> LogTable:
    """Build the LogTable from canonical columns aligned with ``lines.text``.

    ``failures`` maps an index into ``lines.text`` to its quarantine reason; those rows are
    dropped from the records. Provenance columns are added here. ``present``: the columns hold
    only the rows of these (ascending) indices, and every other line is in ``failures``; a reader
    that never builds the rows of its bad lines saves a copy of every column.
    """
    n = len(lines)
    quarantined = [(lines.path, ln, reason, raw) for ln, reason, raw in lines.rejected]
    for i, reason in failures.items():
        quarantined.append((lines.path, int(lines.line_no[i]), reason, lines.raw(i)))
    rows = np.arange(n) if present is None else present
    if failures:
        keep = np.ones(n, dtype=bool)
        keep[list(failures)] = False
        kept = keep[rows]
        if not kept.all():
            at = np.flatnonzero(kept)
            columns = {k: take_ascending(v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v, at)
                       for k, v in columns.items()}
            rows = rows[kept]
    if present is not None and len(rows) + len(failures) != n:
        raise AssertionError(f"{n - len(rows) - len(failures)} line(s) neither present nor failed")
    line_no = lines.line_no[rows]
    raw = None
    if _KEEP_RAW.get():
        raw = lines.text if len(rows) == n else take_ascending(lines.text, rows)
    m = len(line_no)
    arrays: list[pa.Array] = []
    for name, dtype in LOGS.items():
        if name == "source_file":
            arrays.append(constant(lines.path, m))
        elif name == "source_line":
            arrays.append(pa.array(np.asarray(line_no, dtype=np.int64)))
        elif name in columns:
            arrays.append(_arrow(columns[name], dtype))
        else:
            arrays.append(pa.nulls(m, ARROW_TYPES[dtype]))
    quarantined.sort(key=lambda row: row[1])
    total = rows_read if rows_read is not None else lines.rows_read
    return LogTable(pa.Table.from_arrays(arrays, schema=LOGS_ARROW), tuple(quarantined), total, raw)


def assemble(lines: Lines, columns: Mapping[str, pa.Array], failures: Mapping[int, str], *,
             rows_read: int | None = None) -> ReadResult:
    """``assemble_table`` as the canonical pandas frame."""
    return assemble_table(lines, columns, failures, rows_read=rows_read).to_result()
