"""JSON lines whose keys are the canonical log columns (``pipeline.records.LOGS``).

``ts`` is an ISO 8601 string; one without an offset is taken as UTC. Unknown keys are ignored
(exporters add their own); a key of the wrong type quarantines the line with that key named.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .base import Stored
from .logs_common import LogTable, log_format, assemble_table, constant, fill, indices, read_lines, split_uri

SCHEMA = pa.schema([
    ("ts", pa.string()), ("client_ip", pa.string()), ("domain", pa.string()), ("method", pa.string()),
    ("uri", pa.string()), ("path", pa.string()), ("query", pa.string()), ("status", pa.int64()),
    ("bytes_sent", pa.int64()), ("referer", pa.string()), ("user_agent", pa.string()),
    ("request_time_ms", pa.float64()), ("cache_status", pa.string()), ("account_id", pa.string()),
    ("username", pa.string()), ("host", pa.string()),
])
_OPTIONS = pajson.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")


def _parse_block(text: pa.Array) -> pa.Table | None:
    """Parse lines with Arrow's JSON reader; None when any line is bad or is not one object."""
    if len(text) == 0:
        return pa.Table.from_pylist([], schema=SCHEMA)
    sep = pa.scalar("", pa.large_string())
    joined = pc.binary_join_element_wise(text, sep, pa.scalar("\n", pa.large_string()))
    _validity, offset_buf, data = joined.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[joined.offset:joined.offset + len(joined) + 1]
    body = data[int(offsets[0]):int(offsets[-1])]
    try:
        table = pajson.read_json(io.BytesIO(body.to_pybytes()), parse_options=_OPTIONS,
                                 read_options=pajson.ReadOptions(use_threads=False, block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table if table.num_rows == len(text) else None


def _bisect(text: pa.Array, first: int, good: list[tuple[int, pa.Table]], bad: list[int]) -> None:
    table = _parse_block(text)
    if table is not None:
        good.append((first, table))
    elif len(text) == 1:
        bad.append(first)
    else:
        half = len(text) // 2
        _bisect(text.slice(0, half), first, good, bad)
        _bisect(text.slice(half), first + half, good, bad)


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
        if pa.types.is_string(want) and not isinstance(value, str):
            return f"field {name!r} must be a string, got {value!r}"
    return "not one JSON object per line"


def _times(col: pa.Array) -> tuple[pa.Array, list[int]]:
    """ISO 8601 strings → timestamp[ns, UTC]; returns also the positions that do not parse."""
    try:
        return pc.cast(col, pa.timestamp("ns", "UTC")), []
    except pa.ArrowInvalid:
        pass
    enc = pc.dictionary_encode(col)
    parsed: list[datetime | None] = []
    for value in enc.dictionary.to_pylist():
        try:
            when = datetime.fromisoformat(value)
            parsed.append(when if when.tzinfo else when.replace(tzinfo=timezone.utc))
        except ValueError:
            parsed.append(None)
    values = pa.array(parsed, pa.timestamp("ns", "UTC"))
    out = pc.take(values, enc.indices)
    lost = pc.and_(pc.is_valid(col), pc.is_null(out))
    return out, [int(i) for i in indices(lost)]


@log_format("jsonl", carries_domain=True)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one JSON-lines log; ``domain`` / ``account_id`` fill records that lack them."""
    lines, _ = read_lines(path, data=data)
    good: list[tuple[int, pa.Table]] = []
    bad: list[int] = []
    _bisect(lines.text, 0, good, bad)
    failures = {i: diagnose(str(lines.text[i].as_py())) for i in bad}
    n = len(lines.text)
    # Bad lines become all-null rows so that the columns stay aligned with the lines.
    pieces = [(first, t) for first, t in good]
    pieces += [(i, pa.Table.from_pylist([{}], schema=SCHEMA)) for i in bad]
    pieces.sort(key=lambda p: p[0])
    table = pa.concat_tables([t for _, t in pieces]) if pieces else pa.Table.from_pylist([], schema=SCHEMA)
    cols = {name: table[name].combine_chunks() for name in SCHEMA.names}
    ts, bad_ts = _times(cols["ts"])
    for i in bad_ts:
        failures.setdefault(i, f"bad timestamp {cols['ts'][i].as_py()!r}")
    for i in indices(pc.is_null(cols["ts"])):
        failures.setdefault(int(i), "missing timestamp 'ts'")
    path_, query, _host = split_uri(cols["uri"].cast(pa.large_string()))
    out = dict(cols)
    out["ts"] = ts
    out["path"] = pc.coalesce(cols["path"].cast(pa.large_string()), path_)
    out["query"] = pc.coalesce(cols["query"].cast(pa.large_string()), query)
    out["domain"] = fill(cols["domain"], domain, n)
    out["account_id"] = fill(cols["account_id"], account_id, n) if account_id else cols["account_id"]
    if n == 0:
        out = {k: constant(None, 0) if v.type == pa.string() else v for k, v in out.items()}
    return assemble_table(lines, out, failures)
