"""CloudFront / W3C extended logs: tab separated, columns named by a ``#Fields:`` directive.

``#`` lines are directives, neither records nor quarantine; a later ``#Fields:`` applies to the
lines after it. Times are UTC. CloudFront URL-encodes the user agent and referer (decoded here)
and the query string (kept as logged: ``uri`` is the target as requested).
"""

from __future__ import annotations

from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import Stored
from .logs_common import LogTable, assemble_table, log_format
from .logs_fields import bad_values, constant, dash_to_null, fill, nth, parse_times, to_float, to_int
from .logs_lines import read_lines

# canonical field → the W3C names that carry it, first present wins
SOURCES: dict[str, tuple[str, ...]] = {
    "date": ("date",), "time": ("time",), "client_ip": ("c-ip",), "method": ("cs-method",),
    "stem": ("cs-uri-stem",), "query": ("cs-uri-query",), "status": ("sc-status",),
    "bytes_sent": ("sc-bytes",), "referer": ("cs(Referer)", "cs-referer"),
    "user_agent": ("cs(User-Agent)", "cs-user-agent"), "time_taken": ("time-taken",),
    "cache_status": ("x-edge-result-type",), "domain": ("x-host-header", "cs(Host)", "cs-host"),
    "host": ("cs(Host)", "cs-host", "x-host-header"), "username": ("cs-username",),
}


def _decode(col: pa.Array) -> pa.Array:
    """%-decode each distinct value once (user agents repeat endlessly)."""
    enc = pc.dictionary_encode(col)
    values = pa.array([None if v is None else unquote(v) for v in enc.dictionary.to_pylist()], pa.large_string())
    return pc.take(values, enc.indices)


def _segment(text: pa.Array, names: list[str], header_line: int) -> tuple[dict[str, pa.Array], dict[int, str]]:
    parts = pc.split_pattern(text, "\t")
    lengths = np.asarray(pc.list_value_length(parts).to_numpy(zero_copy_only=False))
    failures = {int(i): f"wrong field count: {int(lengths[i])} fields, expected {len(names)} "
                        f"(#Fields at line {header_line})" for i in np.flatnonzero(lengths != len(names))}
    cols: dict[str, pa.Array] = {}
    for canon, candidates in SOURCES.items():
        for name in candidates:
            if name in names:
                cols[canon] = nth(parts, names.index(name))
                break
        else:
            cols[canon] = pa.nulls(len(text), pa.large_string())
    return cols, failures


@log_format("w3c", carries_domain=True)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one W3C / CloudFront log; ``rows_read`` counts data lines only (no ``#`` lines)."""
    lines, directives = read_lines(path, data=data, directive_prefix=b"#")
    headers = [(ln, text.split(":", 1)[1].split()) for ln, text in directives if text.startswith("#Fields:")]
    n = len(lines.text)
    segment = np.searchsorted(np.array([ln for ln, _ in headers], dtype=np.int64), lines.line_no, side="right") - 1
    failures: dict[int, str] = {}
    pieces: list[tuple[np.ndarray, dict[str, pa.Array]]] = []
    for s in np.unique(segment):
        idx = np.flatnonzero(segment == s)
        if s < 0:
            failures.update({int(i): "data line before any #Fields directive" for i in idx})
            continue
        text = lines.text if len(idx) == n else lines.text.take(pa.array(idx))
        cols, bad = _segment(text, headers[s][1], headers[s][0])
        failures.update({int(idx[i]): reason for i, reason in bad.items()})
        pieces.append((idx, cols))
    if len(pieces) == 1 and len(pieces[0][0]) == n:
        cols = pieces[0][1]
    else:  # several headers: stitch the segments back into file order
        order = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, dtype=np.int64)
        full = np.zeros(n, dtype=np.int64)
        full[order] = np.arange(len(order))
        pad = pa.nulls(1, pa.large_string())
        take = pa.array(np.where(np.isin(np.arange(n), order), full, len(order)))
        cols = {k: pa.concat_arrays([p[1][k].cast(pa.large_string()) for p in pieces] + [pad]).take(take)
                for k in SOURCES}
    return assemble_table(lines, _canonical(cols, failures, domain, account_id), failures)



def _canonical(cols: dict[str, pa.Array], failures: dict[int, str], domain: str | None,
               account_id: str | None) -> dict[str, pa.Array]:
    n = len(cols["date"])
    space = pa.scalar(" ", pa.large_string())
    stamp = pc.binary_join_element_wise(cols["date"].cast(pa.large_string()), cols["time"].cast(pa.large_string()), space)
    ts = parse_times(stamp, "%Y-%m-%d %H:%M:%S")
    failures.update(bad_values(stamp, ts, "timestamp", failures))
    status = to_int(cols["status"])
    failures.update(bad_values(cols["status"], status, "status", failures))
    sent = to_int(cols["bytes_sent"], dash_is_zero=True)
    failures.update(bad_values(cols["bytes_sent"], sent, "byte count", failures))
    taken = to_float(cols["time_taken"])
    failures.update(bad_values(dash_to_null(cols["time_taken"]), taken, "time-taken", failures))
    query = dash_to_null(cols["query"])
    stem = cols["stem"].cast(pa.large_string())
    query = query.cast(pa.large_string())
    joined = pc.binary_join_element_wise(stem, query, pa.scalar("?", pa.large_string()))
    uri = pc.if_else(pc.is_null(query), stem, joined)
    return {
        "ts": ts, "client_ip": cols["client_ip"], "domain": fill(cols["domain"], domain, n),
        "method": dash_to_null(cols["method"]), "uri": uri, "path": stem, "query": query,
        "status": status, "bytes_sent": sent,
        "referer": _decode(dash_to_null(cols["referer"])), "user_agent": _decode(dash_to_null(cols["user_agent"])),
        "request_time_ms": pc.multiply(taken, 1000.0), "cache_status": dash_to_null(cols["cache_status"]),
        "account_id": constant(account_id, n),
        "host": dash_to_null(cols["host"]), "username": dash_to_null(cols["username"]),
    }
