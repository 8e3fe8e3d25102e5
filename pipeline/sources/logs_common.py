"""What every access-log parser shares: splitting a file into physical lines, rejecting the lines
that cannot be text, vectorized field conversions, and assembling the canonical frame.

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
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..records import LOGS, TS, conform
from ..registry import Registry
from . import logs_times
from .base import LOG_FORMATS, ReadResult, Stored, gunzip, quarantine_frame, read_stored

MAX_LINE_BYTES = 64 * 1024
_CHUNK = 1 << 20          # bytes per newline scan: keeps the comparison mask in cache
_UTF8_BLOCK = 1 << 16     # lines per block when looking for invalid UTF-8

Reject = tuple[int, str]  # (index into the file's lines, reason)
# First bytes of a line that may hold only white space: ASCII spaces, and the lead bytes of the
# Unicode ones (U+0085, U+00A0: C2; U+1680: E1; U+2000.., U+2028, U+202F, U+205F: E2; U+3000: E3).
_SPACE_LEAD = np.zeros(256, dtype=bool)
_SPACE_LEAD[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0xC2, 0xE1, 0xE2, 0xE3]] = True


@dataclass(frozen=True)
class Lines:
    """The data lines of one file that are valid UTF-8 text, in file order.

    ``view`` holds each line with its terminator, zero-copy over ``data``; ``text`` (the lines
    without it) is a copy, made only for the parsers that ask for it.
    """

    path: str
    view: pa.LargeStringArray
    line_no: np.ndarray                      # 1-based physical line number of each element
    rejected: tuple[tuple[int, str, bytes], ...]  # (line number, reason, raw bytes) found while splitting
    rows_read: int                           # data lines: len(view) + len(rejected)
    data: Stored = b""                       # the file's (decompressed) bytes, or the file mapped
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # byte offset of each line
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))    # newline and one CR excluded

    @cached_property
    def text(self) -> pa.LargeStringArray:
        return pc.utf8_rtrim(self.view, characters="\r\n")

    def __len__(self) -> int:
        return len(self.view)

    def raw(self, i: int) -> bytes:
        return self.data[int(self.starts[i]):int(self.ends[i])].rstrip(b"\r\n")


def _line_bounds(data: Stored) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline and a preceding CR excluded) of every physical line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    found = [np.flatnonzero(buf[i:i + _CHUNK] == 10) + i for i in range(0, len(buf), _CHUNK)]
    newlines = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    newlines = newlines.astype(np.int64)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), newlines + 1])
    ends = np.concatenate([newlines, np.array([len(data)], dtype=np.int64)])
    if starts[-1] == len(data):  # the file ends with a newline: no unterminated last line
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13) if len(buf) else ends > starts
    return starts, ends - has_cr.astype(np.int64)


def _invalid_utf8(arr: pa.Array, first: int) -> list[int]:
    """Indices of the elements of a binary array that are not UTF-8, by bisecting failed casts.

    A cast validates a whole block in C; only blocks that fail are split, so a clean file costs
    one pass and each bad line costs a handful of small casts.
    """
    try:
        arr.cast(pa.large_string())
        return []
    except pa.ArrowInvalid:
        if len(arr) == 1:
            return [first]
    half = len(arr) // 2
    return _invalid_utf8(arr.slice(0, half), first) + _invalid_utf8(arr.slice(half), first + half)


def read_lines(path: str, *, data: Stored | None = None, directive_prefix: bytes | None = None
               ) -> tuple[Lines, list[tuple[int, str]]]:
    """Split a file into data lines; reject over-long, blank and non-UTF-8 lines.

    ``data``, when given, is the file's bytes as stored (gzip or not), already read by the caller
    (ingest hashes them): the file is then not read again. Lines starting with
    ``directive_prefix`` are directives, not data lines; they are returned as
    ``(line number, text)`` pairs for the formats whose header they carry.
    """
    data = gunzip(path, read_stored(path) if data is None else data)
    starts, ends = _line_bounds(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    lengths = ends - starts
    directive = np.zeros(len(starts), dtype=bool)
    if directive_prefix is not None and len(starts):
        nonempty = lengths > 0
        directive[nonempty] = buf[starts[nonempty]] == directive_prefix[0]
    too_long = lengths > MAX_LINE_BYTES
    blank = lengths == 0
    rejected: list[tuple[int, str, bytes]] = []
    for i in np.flatnonzero(too_long):
        rejected.append((int(i) + 1, f"line longer than {MAX_LINE_BYTES} bytes ({int(lengths[i])})",
                         data[starts[i]:ends[i]]))
    for i in np.flatnonzero(blank):
        rejected.append((int(i) + 1, "blank line", b""))
    directives = [(int(i) + 1, data[starts[i]:ends[i]].decode("utf-8", "replace"))
                  for i in np.flatnonzero(directive)]

    # Each line viewed with its terminator: zero-copy over the file's bytes.
    offsets = np.concatenate([starts, np.array([len(data)], dtype=np.int64)])
    binary: pa.Array = pa.Array.from_buffers(pa.large_binary(), len(starts),
                                             [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    keep = np.flatnonzero(~(too_long | blank | directive))
    if len(keep) != len(starts):
        binary = binary.take(pa.array(keep))
    view: pa.Array | None = None
    try:   # the usual file is all UTF-8: one validating cast, whose result is the view
        view = binary.cast(pa.large_string())
        invalid: list[int] = []
    except pa.ArrowInvalid:
        invalid = _invalid_utf8(binary, 0)
    if invalid:
        for j in invalid:
            i = keep[j]
            rejected.append((int(i) + 1, "invalid UTF-8", data[starts[i]:ends[i]]))
        mask = np.ones(len(keep), dtype=bool)
        mask[invalid] = False
        binary = binary.filter(pa.array(mask))
        keep = keep[mask]
    if view is None:
        view = binary.cast(pa.large_string())
    # Whitespace-only lines carry no data either. Such a line starts with a byte that begins a
    # space (ASCII, or the lead byte of a Unicode one): only the few lines that do are tested.
    first = buf[starts[keep]] if len(keep) else np.zeros(0, dtype=np.uint8)
    maybe = np.flatnonzero(_SPACE_LEAD[first])
    spaces = pc.utf8_is_space(view.take(pa.array(maybe))) if len(maybe) else pa.array([], pa.bool_())
    if pc.any(spaces).as_py():
        sp = maybe[indices(spaces)]
        for j in sp:
            rejected.append((int(keep[j]) + 1, "blank line", data[starts[keep[j]]:ends[keep[j]]]))
        mask = np.ones(len(keep), dtype=bool)
        mask[sp] = False
        view = view.filter(pa.array(mask))
        keep = keep[mask]
    rejected.sort()
    lines = Lines(path=path, view=view, line_no=keep + 1, rejected=tuple(rejected),
                  rows_read=len(view) + len(rejected), data=data, starts=starts[keep], ends=ends[keep])
    return lines, directives


# --- vectorized conversions -------------------------------------------------------------------

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
    try:  # the layouts' patterns already admit digits only: one checked cast is the usual case
        return pc.cast(col, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = pc.match_substring_regex(col, r"^[0-9]{1,18}$")
    return pc.if_else(ok, pc.cast(pc.if_else(ok, col, pa.scalar("0", col.type)), pa.int64()),
                      pa.scalar(None, pa.int64()))


def to_float(col: pa.Array) -> pa.Array:
    """Decimal strings → float64; ``-`` and non-numbers → null."""
    col = dash_to_null(col)
    try:
        return pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    ok = pc.match_substring_regex(col, r"^[0-9]{1,15}(\.[0-9]{1,9})?$")
    return pc.if_else(ok, pc.cast(pc.if_else(ok, col, pa.scalar("0", col.type)), pa.float64()),
                      pa.scalar(None, pa.float64()))


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


def _every_other(n: int) -> pa.Array:
    return pa.array(np.arange(0, 2 * n, 2, dtype=np.int64))


def _from_interleaved(data: pa.Buffer, offsets: np.ndarray, take: pa.Array) -> pa.LargeStringArray:
    """Elements ``take`` of the string array whose offsets are ``offsets`` (over ``data``): one copy."""
    both = pa.Array.from_buffers(pa.large_string(), len(offsets) - 1, [None, pa.py_buffer(offsets), data])
    return both.take(take)


def spans(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.LargeStringArray:
    """The byte ranges ``[starts[i], ends[i])`` of ``data`` as strings, in one copy.

    Requires ``starts[i] <= ends[i] <= starts[i + 1]``: the ranges, interleaved with the gaps
    between them, are the elements of one array over the buffer, and every other one is taken.
    """
    n = len(starts)
    offsets = np.empty(2 * n + 1, dtype=np.int64)
    offsets[0:2 * n:2] = starts
    offsets[1:2 * n:2] = ends
    offsets[2 * n] = ends[-1] if n else 0
    return _from_interleaved(data, offsets, _every_other(n))


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
    parts = pc.split_pattern(target, "?", max_splits=1)
    return nth(parts, 0), nth(parts, 1), host


def constant(value: str | None, n: int) -> pa.Array:
    """A string column of ``n`` copies of ``value`` (null when None), built without a Python loop."""
    if value is None:
        return pa.nulls(n, pa.large_string())
    codes = pa.array(np.zeros(n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array([value], pa.large_string())).cast(pa.large_string())


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
    mask = None
    if failures:
        keep = np.ones(n, dtype=bool)
        keep[list(failures)] = False
        kept = keep[rows]
        if not kept.all():
            mask = pa.array(kept)
            columns = {k: v.filter(mask) for k, v in columns.items()}
            rows = rows[kept]
    if present is not None and len(rows) + len(failures) != n:
        raise AssertionError(f"{n - len(rows) - len(failures)} line(s) neither present nor failed")
    line_no = lines.line_no[rows]
    raw = None
    if _KEEP_RAW.get():
        raw = lines.text if len(rows) == n else lines.text.take(pa.array(rows))
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


def indices(mask: pa.Array | np.ndarray) -> np.ndarray:
    """Positions where a boolean array is true (nulls count as false)."""
    if isinstance(mask, np.ndarray):
        return np.flatnonzero(mask)
    return np.flatnonzero(np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool))


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
