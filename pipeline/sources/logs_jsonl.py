"""JSON lines whose keys are the canonical log columns (``pipeline.records.LOGS``).

``ts`` is an ISO 8601 string; one without an offset is taken as UTC. Unknown keys are ignored
(exporters add their own); a key of the wrong type quarantines the line with that key named.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .base import Stored
from .logs_common import LogTable, assemble_table, log_format
from .logs_fields import constant, fill, split_uri
from .logs_lines import Lines, indices, read_lines

SCHEMA = pa.schema([
    ("ts", pa.large_string()), ("client_ip", pa.large_string()), ("domain", pa.large_string()), ("method", pa.large_string()),
    ("uri", pa.large_string()), ("path", pa.large_string()), ("query", pa.large_string()), ("status", pa.int64()),
    ("bytes_sent", pa.int64()), ("referer", pa.large_string()), ("user_agent", pa.large_string()),
    ("request_time_ms", pa.float64()), ("cache_status", pa.large_string()), ("account_id", pa.large_string()),
    ("username", pa.large_string()), ("host", pa.large_string()),
])
_OPTIONS = pajson.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")


# The compiled scanner reads the plain lines and leaves the others to Arrow's reader, which alone
# reads every line the same way. False sends every line to the reader: the reference the scanner
# is checked against, never a production setting.
FAST_PATH = True
_ROW = re.compile(r"in row (\d+)")
_WINDOW = 1 << 16   # lines handed to the reader at a time
_JUMPS = 8          # bad lines skipped by the reader's row number per window before bisecting the rest
# an object, leading JSON white space (a line never starts with its own "\n"), or a UTF-8 BOM
_OBJECT_START = (ord("{"), ord(" "), ord("\t"), ord("\r"), 0xEF)


def _body(view: pa.Array, lo: int, hi: int) -> pa.Buffer:
    """Lines ``lo:hi`` of ``view`` (each with its terminator) as one buffer, without a copy."""
    _validity, offset_buf, data = view.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[view.offset:view.offset + len(view) + 1]
    return data.slice(int(offsets[lo]), int(offsets[hi] - offsets[lo]))


def _read(body: pa.Buffer) -> pa.Table:
    # One block for the whole body, so that the row an error names counts from its first line.
    block = min(max(body.size + 1, 1 << 20), (1 << 31) - 1)
    return pajson.read_json(pa.BufferReader(body), parse_options=_OPTIONS,
                            read_options=pajson.ReadOptions(use_threads=False, block_size=block))


def _parse_block(view: pa.Array, lo: int, hi: int) -> pa.Table | None:
    """Parse lines ``lo:hi`` with Arrow's JSON reader; None when any is bad or is not one object."""
    if hi <= lo:
        return pa.Table.from_pylist([], schema=SCHEMA)
    try:
        table = _read(_body(view, lo, hi))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == hi - lo else None


def _bisect(view: pa.Array, lo: int, hi: int, good: list[tuple[int, pa.Table]], bad: list[int]) -> None:
    table = _parse_block(view, lo, hi)
    if table is not None:
        good.append((lo, table))
    elif hi - lo == 1:
        bad.append(lo)
    else:
        mid = (lo + hi) // 2
        _bisect(view, lo, mid, good, bad)
        _bisect(view, mid, hi, good, bad)


def _window(view: pa.Array, lo: int, hi: int, good: list[tuple[int, pa.Table]], bad: list[int]) -> None:
    """Parse lines ``lo:hi``: the reader names the row of the first bad line, so the lines before it
    are kept, that line is checked alone and reading resumes after it. A window with many bad lines
    (or an error without a row) is bisected instead, which costs a few reads per bad line."""
    start = lo
    for _ in range(_JUMPS):
        if start >= hi:
            return
        try:
            table = _read(_body(view, start, hi))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            found = _ROW.search(str(exc))
            row = start + int(found.group(1)) if found else -1
            if not start <= row < hi or _parse_block(view, row, row + 1) is not None:
                break
            before = _parse_block(view, start, row)
            if before is None:
                break
            good.append((start, before))
            bad.append(row)
            start = row + 1
            continue
        if table.num_rows != hi - start:
            break
        good.append((start, table))
        return
    if start < hi:
        _bisect(view, start, hi, good, bad)


def _parse(lines: Lines) -> tuple[pa.Table, np.ndarray, list[int]]:
    """Every line parsed: a table of the good lines, their positions in ``lines``, and the bad lines.

    The compiled scanner reads the plain lines; Arrow's reader the others (and says which are bad).
    """
    n = len(lines)
    if not FAST_PATH or n == 0:
        return _read_lines(lines, np.arange(n))
    from . import logs_jsonscan   # compiled kernels: imported when a log is parsed

    taken, fast = logs_jsonscan.scan(lines.data, lines.starts, lines.ends, SCHEMA)
    table, rows, bad = _read_lines(lines, np.flatnonzero(~taken))
    fast_rows = np.flatnonzero(taken)
    if table.num_rows == 0:
        return fast, fast_rows, bad
    both = np.concatenate([fast_rows, rows])
    order = np.argsort(both, kind="stable")
    merged = pa.concat_tables([fast, table.select(SCHEMA.names).cast(SCHEMA)]).take(pa.array(order))
    return merged, both[order], bad


def _read_lines(lines: Lines, subset: np.ndarray) -> tuple[pa.Table, np.ndarray, list[int]]:
    """Lines ``subset`` (ascending) parsed by Arrow's reader: the table of the good ones, their
    positions in ``lines``, and the bad ones."""
    view = lines.view if len(subset) == len(lines) else lines.view.take(pa.array(subset))
    # A line whose first byte cannot begin an object is bad without asking the reader (a file of
    # another format is then quarantined at the cost of one pass, not a bisection of every line).
    starts = lines.starts[subset]
    first = np.frombuffer(lines.data, dtype=np.uint8)[starts] if len(starts) else np.zeros(0, dtype=np.uint8)
    candidate = np.isin(first, _OBJECT_START)
    keep = subset
    bad: list[int] = []
    if not candidate.all():
        bad = [int(i) for i in subset[~candidate]]
        keep = subset[candidate]
        view = view.filter(pa.array(candidate))
    good: list[tuple[int, pa.Table]] = []
    found: list[int] = []
    for lo in range(0, len(view), _WINDOW):
        _window(view, lo, min(lo + _WINDOW, len(view)), good, found)
    good.sort(key=lambda g: g[0])
    rows = np.concatenate([keep[lo:lo + t.num_rows] for lo, t in good]) if good else np.zeros(0, dtype=np.int64)
    table = pa.concat_tables([t for _, t in good]) if good else SCHEMA.empty_table()
    return table, rows, sorted(bad + [int(keep[i]) for i in found])


def diagnose(line: str) -> str:
    """Why one JSON line is not a log record."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(obj, dict):
        return f"not a JSON object but {type(obj).__name__}"
    for name in SCHEMA.names:
        value = obj.get(name)
        if value is None:
            continue
        want = SCHEMA.field(name).type
        if pa.types.is_integer(want) and (not isinstance(value, int) or isinstance(value, bool)):
            return f"field {name!r} must be an integer, got {value!r}"
        if pa.types.is_floating(want) and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return f"field {name!r} must be a number, got {value!r}"
        if pa.types.is_large_string(want) and not isinstance(value, str):
            return f"field {name!r} must be a string, got {value!r}"
    return "not one JSON object per line"


_TS = pa.timestamp("ns", "UTC")


_OFFSET = re.compile(r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)$")


def _cast_times(col: pa.Array, via: pa.DataType) -> list[pa.Array]:
    """Arrow's ISO 8601 cast to ``via``, block by block: only the blocks holding a value it refuses
    are split, and a refused value is parsed by Python (``_python_times``), so a few odd values
    cost a few small casts, not a Python parse of every value."""
    try:
        return [pc.cast(col, via).cast(_TS)]
    except pa.ArrowInvalid:
        if len(col) <= 64:
            return [_python_times(col)]
    half = len(col) // 2
    return _cast_times(col.slice(0, half), via) + _cast_times(col.slice(half), via)


def _times(col: pa.Array) -> tuple[pa.Array, list[int]]:
    """ISO 8601 strings → timestamp[ns, UTC]; returns also the positions that do not parse.

    Values with an offset, or without one (UTC): the file's first value says which to expect (a
    failed cast costs a whole pass, so the other is not tried first).
    """
    valid = col.drop_null()
    first = str(valid[0].as_py()) if len(valid) else ""
    chunks = _cast_times(col, _TS if _OFFSET.search(first) else pa.timestamp("ns"))
    out = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    lost = pc.and_(pc.is_valid(col), pc.is_null(out))
    return out, [int(i) for i in indices(lost)]


def _python_times(col: pa.Array) -> pa.Array:
    """Values Arrow's cast refuses, by ``datetime.fromisoformat`` (naive ones are UTC); null if neither parses."""
    enc = pc.dictionary_encode(col)
    parsed: list[datetime | None] = []
    for value in enc.dictionary.to_pylist():
        try:
            when = datetime.fromisoformat(value)
            parsed.append(when if when.tzinfo else when.replace(tzinfo=timezone.utc))
        except ValueError:
            parsed.append(None)
    return pc.take(pa.array(parsed, _TS), enc.indices)


@log_format("jsonl", carries_domain=True)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one JSON-lines log; ``domain`` / ``account_id`` fill records that lack them."""
    lines, _ = read_lines(path, data=data)
    table, rows, bad = _parse(lines)
    failures = {i: diagnose(str(lines.text[i].as_py())) for i in bad}
    cols = {name: table[name].combine_chunks() for name in SCHEMA.names}   # the good lines' rows only
    ts, bad_ts = _times(cols["ts"])
    for i in bad_ts:
        failures.setdefault(int(rows[i]), f"bad timestamp {cols['ts'][i].as_py()!r}")
    for i in indices(pc.is_null(cols["ts"])):
        failures.setdefault(int(rows[i]), "missing timestamp 'ts'")
    path_, query, _host = split_uri(cols["uri"].cast(pa.large_string()))
    out = dict(cols)
    out["ts"] = ts
    out["path"] = pc.coalesce(cols["path"].cast(pa.large_string()), path_)
    out["query"] = pc.coalesce(cols["query"].cast(pa.large_string()), query)
    n = len(rows)
    out["domain"] = fill(cols["domain"], domain, n)
    out["account_id"] = fill(cols["account_id"], account_id, n) if account_id else cols["account_id"]
    if n == 0:
        out = {k: constant(None, 0) if v.type == pa.large_string() else v for k, v in out.items()}
    return assemble_table(lines, out, failures, present=rows)
