"""Vectorized conversions of log fields into canonical columns: times, numbers, absent values,
request lines and targets, constants. Each works on a whole Arrow column, never per row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import logs_times
from .logs_lines import indices

def parse_times(col: pa.Array, fmt: str, *, suffix: str = "", fixed: bool = True) -> pa.Array:
    """Strings → timestamp[ns, UTC] (null where unparsable).

    The fixed layouts logs write (``logs_times``) are read off their bytes with numpy; the values
    that does not take, and every value of another ``fmt``, go to ``strptime``, once per distinct
    value. ``suffix`` is appended before parsing (e.g. ``" +0800"`` for formats written in Beijing
    time without an offset). ``fixed`` False: ``strptime`` for all, the reference of the tests.
    """
    ts = pa.timestamp("ns", "UTC")
    if len(col) == 0:
        return pa.array([], ts)
    layout = logs_times.layout_for(fmt, suffix) if fixed else None
    if layout is None:
        return _strptime(col, fmt, suffix)
    col = col if col.type == pa.large_string() else col.cast(pa.large_string())
    ns, taken = logs_times.parse_fixed(col, *layout)
    out = pa.array(ns, pa.int64(), mask=~taken).cast(ts)
    if taken.all():
        return out
    rest = np.flatnonzero(~taken)
    return pc.replace_with_mask(out, pa.array(~taken), _strptime(col.take(pa.array(rest)), fmt, suffix))


def _strptime(col: pa.Array, fmt: str, suffix: str) -> pa.Array:
    """``strptime`` of each distinct value (access logs repeat the same second many times)."""
    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    values = enc.dictionary
    if suffix:
        values = pc.binary_join_element_wise(values, pa.scalar(suffix, values.type), pa.scalar("", values.type))
    parsed = pc.strptime(values, format=fmt, unit="ns", error_is_null=True)
    if parsed.type != pa.timestamp("ns", "UTC"):
        parsed = pc.assume_timezone(parsed, "UTC") if parsed.type.tz is None else parsed.cast(pa.timestamp("ns", "UTC"))
    return pc.take(parsed, enc.indices)


def dash_to_null(col: pa.Array) -> pa.Array:
    """``-`` and empty strings → null (the logs' way of saying "absent")."""
    absent = pc.or_(pc.equal(col, "-"), pc.equal(col, ""))
    if not pc.any(absent).as_py():
        return col
    if isinstance(col, pa.Array) and col.offset == 0 and len(col.buffers()) == 3:
        # Only the validity changes: a new bitmap over the same offsets and bytes, instead of a
        # copy of the column (user agents and referers are the bulk of a log's bytes).
        keep = pc.and_(pc.is_valid(col), pc.invert(pc.fill_null(absent, False)))
        return pa.Array.from_buffers(col.type, len(col), [keep.buffers()[1], *col.buffers()[1:]])
    return pc.if_else(absent, pa.scalar(None, col.type), col)


def to_int(col: pa.Array, *, dash_is_zero: bool = False) -> pa.Array:
    """Digit strings → int64; ``-`` → 0 or null. Non-numbers become null (the caller reports them)."""
    if dash_is_zero:
        col = pc.if_else(pc.equal(col, "-"), pa.scalar("0", col.type), col)
    # the layouts' patterns already admit digits only: one checked cast is the usual case
    return _cast_numbers(col, pa.int64(), r"^[0-9]{1,18}$")


def to_float(col: pa.Array) -> pa.Array:
    """Decimal strings → float64; ``-`` and non-numbers → null."""
    return _cast_numbers(dash_to_null(col), pa.float64(), r"^[0-9]{1,15}(\.[0-9]{1,9})?$")


def _cast_numbers(col: pa.Array, type_: pa.DataType, pattern: str) -> pa.Array:
    """``col`` cast to ``type_`` in one checked cast; if some value does not cast, the values
    matching ``pattern`` are cast and the others become null."""
    try:
        return pc.cast(col, type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = pc.match_substring_regex(col, pattern)
    return pc.if_else(ok, pc.cast(pc.if_else(ok, col, pa.scalar("0", col.type)), type_), pa.scalar(None, type_))


_METHOD = r"^[A-Za-z]{1,20}$"
_SPACED = r"^(?P<method>[A-Za-z]{1,20}) (?P<uri>.+) [A-Za-z]+/[0-9.]+$"
_ABSOLUTE = r"^[A-Za-z][A-Za-z0-9+.-]*://"
_HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<host>[^/?#]*)(?P<rest>.*)$"


def nth(lists: pa.Array, k: int) -> pa.Array:
    """Element ``k`` of each list (null where the list is shorter or null).

    ``pc.list_element`` costs several times more than one ``take`` on the flattened values.
    """
    offsets = lists.offsets.to_numpy()
    idx = offsets[:-1] + k
    ok = (offsets[1:] - offsets[:-1]) > k
    if lists.null_count:
        ok &= np.asarray(lists.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if ok.all():
        return lists.values.take(pa.array(idx))
    return lists.values.take(pa.array(np.where(ok, idx, 0), mask=~ok))


def spans(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.LargeStringArray:
    """The byte ranges ``[starts[i], ends[i])`` of ``data`` (cut at ASCII bytes) as strings, in one copy."""
    from .logs_tokens import gather   # compiled kernels: imported when a log is parsed

    return gather(np.frombuffer(data, dtype=np.uint8), np.asarray(starts, dtype=np.int64),
                  np.asarray(ends, dtype=np.int64))


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, pa.Buffer]:
    """The offsets (one per element and one past the last) and the data buffer of a large string array."""
    _validity, offset_buf, data = arr.buffers()
    return np.frombuffer(offset_buf, dtype=np.int64)[arr.offset:arr.offset + len(arr) + 1], data


def split_request(request: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A request line (``GET /a?b HTTP/1.1``) → (method, uri).

    Cut by the positions of its spaces, found with numpy over the column's bytes: one pass and
    one copy per output column, no per-row lists. The rare request not of that shape goes through
    ``_split_request_slow``.
    """
    request = request if request.type == pa.large_string() else request.cast(pa.large_string())
    n = len(request)
    if n == 0:
        return _split_request_slow(request)
    offsets, data = _string_buffers(request)
    starts, ends = offsets[:-1], offsets[1:]
    buf = np.frombuffer(data, dtype=np.uint8)
    lo = int(offsets[0])
    space = np.flatnonzero(buf[lo:int(offsets[-1])] == 32) + lo
    space = np.append(space, len(buf))   # a sentinel: every index below stays valid
    first = np.searchsorted(space, starts)
    count = np.searchsorted(space, ends) - first
    shaped = (count == 1) | (count == 2)
    if request.null_count:
        shaped &= np.asarray(request.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    sp1 = np.where(shaped, space[first], starts)
    sp2 = np.where(count == 2, space[np.minimum(first + 1, len(space) - 1)], ends)
    method = spans(data, starts, np.where(shaped, sp1, starts))
    uri = spans(data, np.where(shaped, sp1 + 1, starts), np.where(shaped, sp2, starts))
    shaped &= np.asarray(pc.fill_null(pc.match_substring_regex(method, _METHOD), False)
                         .to_numpy(zero_copy_only=False), dtype=bool)
    if shaped.all():
        return method, uri
    rest = np.flatnonzero(~shaped)
    slow_method, slow_uri = _split_request_slow(request.take(pa.array(rest)))
    mask = pa.array(~shaped)
    return (pc.replace_with_mask(method, mask, slow_method.cast(pa.large_string())),
            pc.replace_with_mask(uri, mask, slow_uri.cast(pa.large_string())))


def _split_request_slow(request: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A request line (``GET /a?b HTTP/1.1``) → (method, uri), by splitting it into a list.

    A request that is not of that shape (``-``, a TLS handshake logged as ``\\x16\\x03...``) is
    still a request someone made: method is null and uri keeps the whole text, so that rules see it.
    """
    parts = pc.split_pattern(request, " ")
    lengths = pc.list_value_length(parts)
    method = nth(parts, 0)
    shaped = pc.and_(pc.is_in(lengths, pa.array([2, 3], lengths.type)), pc.match_substring_regex(method, _METHOD))
    shaped = pc.fill_null(shaped, False)
    if pc.all(shaped).as_py():  # the usual file: no row to blank out, so no copies to make
        return method, nth(parts, 1)
    method = pc.if_else(shaped, method, pa.scalar(None, method.type))
    uri = pc.if_else(shaped, nth(parts, 1), pa.scalar(None, method.type))
    # A target with raw spaces ("GET /a?id=1' OR 1=1-- HTTP/1.1") still has method and protocol.
    st = pc.extract_regex(request, _SPACED)
    method = pc.coalesce(method, pc.struct_field(st, "method"))
    uri = pc.coalesce(uri, pc.struct_field(st, "uri"), dash_to_null(request.cast(method.type)))
    return method, uri


def split_uri(uri: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """uri → (path, query without '?' or null when there is no '?', host of an absolute-form target)."""
    host = pa.nulls(len(uri), uri.type)
    target = uri
    absolute = pc.fill_null(pc.match_substring_regex(uri, _ABSOLUTE), False)
    if pc.any(absolute).as_py():  # proxies and CDNs log "GET http://host/path HTTP/1.1"
        st = pc.extract_regex(uri, _HOST)
        host = pc.if_else(absolute, dash_to_null(pc.struct_field(st, "host")), host)
        target = pc.if_else(absolute, pc.struct_field(st, "rest"), uri)
    path, query = _split_at_question_mark(target.cast(pa.large_string()))
    return path, query, host


def _split_at_question_mark(target: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(the text before the first ``?``, the text after it or null when there is none)."""
    from .logs_tokens import first_byte, gather

    if len(target) == 0:
        return target, target
    offsets, data = _string_buffers(target)
    buf = np.frombuffer(data, dtype=np.uint8)
    lo, hi = offsets[:-1], offsets[1:]
    at = np.empty(len(lo), dtype=np.int64)
    first_byte(buf, lo, hi, ord("?"), at)
    valid = np.ones(len(lo), dtype=bool) if target.null_count == 0 else \
        np.asarray(target.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return gather(buf, lo, at, valid), gather(buf, np.minimum(at + 1, hi), hi, valid & (at < hi))


def constant(value: str | None, n: int) -> pa.Array:
    """A string column of ``n`` copies of ``value`` (null when None), built without a Python loop."""
    if value is None:
        return pa.nulls(n, pa.large_string())
    codes = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array([value], pa.large_string())).cast(pa.large_string())


def bad_values(raw: pa.Array, converted: pa.Array, what: str,
               already: Mapping[int, str]) -> dict[int, str]:
    """Rows where a field was present but did not convert: ``{index: "bad <what> '<value>'"}``."""
    lost = pc.and_(pc.is_valid(raw), pc.is_null(converted))
    out: dict[int, str] = {}
    for i in indices(lost):
        if int(i) not in already:
            value = str(raw[int(i)].as_py())
            shown = value if len(value) <= 60 else value[:60] + ".."
            out[int(i)] = f"bad {what} {shown!r}"
    return out


def fill(col: pa.Array | None, value: str | None, n: int) -> pa.Array:
    """The file's own values where present, else the configured one (domain, account)."""
    if col is None:
        return constant(value, n)
    col = dash_to_null(col.cast(pa.large_string()))
    return col if value is None else pc.coalesce(col, pa.scalar(value, pa.large_string()))


def request_columns(request: pa.Array) -> dict[str, pa.Array]:
    """A request line → method, uri, path, query and (absolute-form targets only) host."""
    method, uri = split_request(request)
    path, query, host = split_uri(uri)
    return {"method": method, "uri": uri, "path": path, "query": query, "host": host}
