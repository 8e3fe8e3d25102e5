"""Shared machinery of the object-metadata adapters: physical lines, UTF-8 checks, per-row reasons,
and typing string rows into ``records.OBJECTS``. Importing it registers every object format.

Accounting rules common to all object formats (each adapter documents its own additions):
- empty lines (anywhere) are not rows; every other line belongs to exactly one parsed or quarantined row;
- a line holding bytes that are not UTF-8 is quarantined on its own ("invalid UTF-8 at byte N", N being
  the 1-based byte offset within the line), never decoded with replacement characters;
- an object without a key is quarantined: nothing downstream can name it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from itertools import repeat
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..records import OBJECTS, conform
from .base import ENDS_INSIDE_QUOTES, ReadResult, byte_positions, note_blank_lines, quarantine_frame

BadRow = tuple[str, int, str, bytes]
"""A quarantine entry: (source_file, source_line, reason, raw bytes)."""

LINE = "_line"        # 1-based physical line (or Parquet row) where a row starts
FIRST = "_first"      # 0-based index of the row's first physical line (text formats)
LAST = "_last"        # 0-based index of its last physical line (a quoted CSV field may span lines)
LABELS_CHECKED = "_labels_checked"  # labels written by us from a parsed JSON object: known good

# 100-ns timestamps outside this window are almost always seconds or milliseconds written into a
# 100-ns field; reading them literally would date every object to January 1970.
TICKS_MIN = pd.Timestamp("2000-01-01", tz="UTC").value // 100
TICKS_MAX = pd.Timestamp("2100-01-01", tz="UTC").value // 100

_INT = re.compile(r"[+-]?[0-9]+")
CSV_BLOCK = 4 << 20  # bytes per pyarrow CSV block: a few MB stay in the CPU cache
_INT_MAX_DIGITS = 18  # stays inside int64 without a bignum check
_DIGITS = r"^[0-9]{1,%d}$" % _INT_MAX_DIGITS   # a valid integer field, once stripped


@dataclass(frozen=True)
class Lines:
    """A file's bytes cut into physical lines; ``ends`` exclude the newline and a trailing CR."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, first: int, last: int | None = None) -> bytes:
        """The bytes of lines ``first``..``last`` (inclusive), inner newlines kept."""
        return self.data[int(self.starts[first]):int(self.ends[first if last is None else last])]


def split_lines(data: bytes) -> Lines:
    """Cut ``data`` at LF (CRLF tolerated); a final newline does not open an extra line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    nl = byte_positions(arr, 10)
    starts = np.concatenate(([0], nl + 1)).astype(np.int64)
    ends = np.concatenate((nl, [len(data)])).astype(np.int64)
    if len(data) == 0 or starts[-1] == len(data):
        starts, ends = starts[:-1], ends[:-1]
    if len(arr):
        has_cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
        ends = ends - has_cr
    note_blank_lines(int(np.count_nonzero(ends == starts)))   # not rows, but counted (scan summary)
    return Lines(data, starts, ends)


def invalid_utf8(lines: Lines, first: int = 0) -> dict[int, int]:
    """Line index → 1-based byte offset of the first byte that is not UTF-8, for lines from ``first`` on."""
    if not len(lines) or first >= len(lines):
        return {}
    begin = int(lines.starts[first])
    try:
        lines.data[begin:].decode("utf-8")
        return {}
    except UnicodeDecodeError as exc:
        # Lines before the first error decode, so per-line work starts there.
        start_line = int(np.searchsorted(lines.starts, begin + exc.start, side="right")) - 1
    bad: dict[int, int] = {}
    for i in range(max(start_line, first), len(lines)):
        try:
            lines.raw(i).decode("utf-8")
        except UnicodeDecodeError as exc:
            bad[i] = exc.start + 1
    return bad


def utf8_reason(offset: int) -> str:
    return f"invalid UTF-8 at byte {offset}"


class RowReasons:
    """The first reason each row of a frame is bad, if any; checks run in field order."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)
        # kept beside the reasons so that a check costs no pass over 100k+ Python objects
        self._flagged = np.zeros(n, dtype=bool)

    def flag(self, mask: np.ndarray | pd.Series, make: Callable[[int], str]) -> None:
        """Give every row in ``mask`` not already flagged the reason ``make(position)``."""
        m = np.asarray(mask, dtype=bool) & ~self._flagged
        for pos in np.flatnonzero(m):
            self.reason[pos] = make(int(pos))
        self._flagged |= m

    @property
    def bad(self) -> np.ndarray:
        return self._flagged.copy()


def blank_to_na(col: pd.Series) -> pd.Series:
    """String column with empty strings turned into nulls (an empty field means "not given")."""
    col = col.astype("string")
    if not (col == "").any():  # the usual case: no copy
        return col
    return col.mask(col == "", pd.NA)


def check_key(frame: pd.DataFrame, reasons: RowReasons, name: str = "key") -> None:
    reasons.flag(frame["key"].isna().to_numpy(), lambda _pos: f"{name} is missing")


def parse_int(col: pd.Series, reasons: RowReasons, name: str) -> pd.Series:
    """Non-negative integers written in decimal; anything else flags the row with the offending value."""
    if not col.notna().any():  # an absent optional column: nothing to check
        return pd.Series(pd.NA, index=col.index, dtype="Int64")
    if pd.api.types.is_integer_dtype(col.dtype):  # already numbers (JSON, Parquet): only the sign to check
        col = col.astype("Int64")
        negative = (col < 0).fillna(False).to_numpy(dtype=bool)
        numbers = col.to_numpy(dtype=object)
        reasons.flag(negative, lambda pos: f"{name} is negative: {numbers[pos]}")
        return col.mask(negative, pd.NA)
    col = col.astype("string").str.strip()
    digits = pa.chunked_array(pa.array(col.array))
    if pc.all(pc.match_substring_regex(digits, _DIGITS)).as_py() is not False:   # the usual case: one pass
        return pc.cast(digits, pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).set_axis(col.index)
    present = col.notna().to_numpy()
    ok = col.str.fullmatch(_DIGITS).fillna(False).to_numpy(dtype=bool)
    values = col.to_numpy(dtype=object)

    def reason(pos: int) -> str:
        text = str(values[pos])
        if _INT.fullmatch(text):
            return f"{name} is negative: {text}" if text.startswith("-") else f"{name} out of range: {text}"
        return f"{name} is not an integer: {text!r}"

    reasons.flag(present & ~ok, reason)
    out = pd.Series(pd.NA, index=col.index, dtype="Int64")
    good = present & ok
    out[good] = col[good].astype("int64")
    return out


def parse_iso_time(col: pd.Series, reasons: RowReasons, name: str) -> pd.Series:
    """ISO 8601 timestamps; a time without an offset is taken as UTC."""
    if not col.notna().any():  # an absent optional column: pandas' parser is slow even on nulls
        return pd.Series(np.full(len(col), np.datetime64("NaT", "ns")), index=col.index).dt.tz_localize("UTC")
    col = col.astype("string").str.strip()
    try:   # the usual case: every value in the forms pyarrow parses (date T time, Z or an offset), in one pass
        arrow = pc.cast(pa.chunked_array(pa.array(col.array)), pa.timestamp("ns", tz="UTC"))
        return arrow.to_pandas().set_axis(col.index)
    except pa.ArrowInvalid:
        pass
    parsed = pd.to_datetime(col, format="ISO8601", utc=True, errors="coerce")
    values = col.to_numpy(dtype=object)
    reasons.flag(col.notna().to_numpy() & parsed.isna().to_numpy(),
                 lambda pos: f"{name} is not an ISO 8601 timestamp: {values[pos]!r}")
    return parsed


def parse_ticks(col: pd.Series, reasons: RowReasons, name: str) -> pd.Series:
    """Qiniu times: integer count of 100-ns units since 1970-01-01 UTC."""
    ticks = parse_int(col, reasons, name)
    present = ticks.notna().to_numpy()
    raw = ticks.fillna(0).to_numpy(dtype=np.int64)
    in_range = (raw >= TICKS_MIN) & (raw < TICKS_MAX)
    reasons.flag(present & ~in_range,
                 lambda pos: f"{name} out of range: {raw[pos]} (expected 100-ns units since 1970, years 2000-2099)")
    ns = np.where(present & in_range, raw * 100, 0)
    out = pd.Series(pd.to_datetime(ns, unit="ns", utc=True), index=col.index)
    return out.mask(~(present & in_range), pd.NaT)


def check_labels(col: pd.Series, reasons: RowReasons, name: str = "labels",
                 checked: np.ndarray | None = None) -> pd.Series:
    """Labels must be a JSON object (moderation scores); anything else flags the row.

    ``checked`` marks rows whose labels are already known to be a JSON object (written from one).
    """
    col = col.astype("string")
    values = col.to_numpy(dtype=object)
    problems: dict[int, str] = {}
    todo = col.notna().to_numpy()
    if checked is not None:
        todo = todo & ~checked
    for pos in np.flatnonzero(todo):
        try:
            parsed = _loads(values[pos])
        except ValueError:
            problems[int(pos)] = f"{name} is not valid JSON: {_json_error(values[pos])}"
            continue
        if not isinstance(parsed, dict):
            problems[int(pos)] = f"{name} is not a JSON object: got {type(parsed).__name__}"
    mask = np.zeros(len(col), dtype=bool)
    mask[list(problems)] = True
    reasons.flag(mask, problems.__getitem__)
    return col


def flag_positions(reasons: RowReasons, found: Mapping[int, str]) -> None:
    """Flag rows by position with reasons gathered while building the frame."""
    if found:
        mask = np.zeros(len(reasons.reason), dtype=bool)
        mask[list(found)] = True
        reasons.flag(mask, lambda pos: found[pos])


def null_strings(n: int, index: pd.Index | None = None) -> pd.Series:
    """An all-null column of the canonical string dtype, made in Arrow (pandas fills 200k NAs one by one)."""
    return pd.Series(pd.arrays.ArrowStringArray(pa.nulls(n, pa.string())), index=index)


def ensure_columns(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Add the missing ``names`` as all-null string columns (optional fields the input lacks)."""
    absent = [name for name in names if name not in frame]
    if not absent:
        return frame
    nulls = null_strings(len(frame), frame.index)  # one immutable Arrow array serves every absent column
    return frame.assign(**{name: nulls for name in absent})


def first_nonblank(lines: Lines) -> int | None:
    nonblank = np.flatnonzero(lines.ends > lines.starts)
    return int(nonblank[0]) if len(nonblank) else None


def fill_given(col: pd.Series | None, n: int, value: str | None) -> pd.Series:
    """A bucket/account column: the data's own value where present, else the one from the config."""
    base = null_strings(n) if col is None else blank_to_na(col)
    return base if value is None else base.fillna(value)


def finish(frame: pd.DataFrame, reasons: RowReasons, *, path: str, raw_of: Callable[[int], bytes],
           bad: list[BadRow], rows_read: int | None = None) -> ReadResult:
    """Split typed rows into records and quarantine; ``frame`` holds canonical columns plus ``LINE``.

    ``raw_of(position)`` returns the raw bytes of the frame's row at that position; ``bad`` holds rows
    quarantined before typing. Quarantine is returned in line order.
    """
    flagged = reasons.bad
    lines = frame[LINE].to_numpy(dtype=np.int64)
    rows = list(bad) + [(path, int(lines[p]), str(reasons.reason[p]), raw_of(int(p))) for p in np.flatnonzero(flagged)]
    rows.sort(key=lambda r: r[1])
    keep = frame.loc[~flagged].reset_index(drop=True) if flagged.any() else frame.reset_index(drop=True)
    source_file = pa.repeat(pa.scalar(path, pa.string()), len(keep))
    keep = keep.assign(source_file=pd.Series(pd.arrays.ArrowStringArray(source_file), index=keep.index),
                       source_line=keep[LINE])
    records = conform(keep, OBJECTS)
    total = len(records) + len(rows) if rows_read is None else rows_read
    return ReadResult(records=records, quarantine=quarantine_frame(rows), rows_read=total)


def text_raw(lines: Lines, frame: pd.DataFrame) -> Callable[[int], bytes]:
    """``raw_of`` for text formats: the physical lines a row came from."""
    first = frame[FIRST].to_numpy(dtype=np.int64)
    last = frame[LAST].to_numpy(dtype=np.int64)
    return lambda pos: lines.raw(int(first[pos]), int(last[pos]))


@dataclass(frozen=True)
class TextRows:
    """Rows cut from a text file as strings, before typing; every data line is in ``frame`` or ``bad``."""

    frame: pd.DataFrame   # one string column per field name (empty → null), plus LINE, FIRST, LAST
    bad: list[BadRow]
    rows_read: int


def _strings(values: list[str | None]) -> pd.Series:
    """A string column from Python strings, empty ones null; built through Arrow, ~6x faster than pandas."""
    arr = pa.array(values, pa.string())
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    return pd.Series(pd.arrays.ArrowStringArray(arr))


def _string_frame(columns: Mapping[str, list[str | None] | pd.Series], first: np.ndarray, last: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({name: col if isinstance(col, pd.Series) else _strings(col)
                          for name, col in columns.items()})
    frame[LINE] = first + 1
    frame[FIRST] = first
    frame[LAST] = last
    return frame


def csv_record(text: str, delimiter: str) -> list[str]:
    """Parse one record with the csv module in strict mode; raises csv.Error on bad quoting."""
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    if len(rows) != 1:
        raise csv.Error(f"expected one record, got {len(rows)}")
    return rows[0]


def read_delimited(lines: Lines, path: str, *, names: list[str], first: int, delimiter: str = ",",
                   quoting: bool = True, what: str = "fields") -> TextRows:
    """Cut lines ``first``.. into rows of ``len(names)`` fields.

    Most lines go through pyarrow's CSV reader in one pass over a buffer of clean lines (valid
    UTF-8, balanced quotes, no stray CR), so its row numbers map back to physical lines. The rest are
    handled one by one: a line with an odd number of quotes opens a quoted field that may span lines
    only up to the next line that closes it, and only if that yields one well-formed row; otherwise
    the opening line alone is quarantined ("unterminated quoted field") and reading resumes at the
    very next line, so a stray quote never swallows the rows after it.
    """
    try:
        # First as if every line were UTF-8: pyarrow validates what it converts, so a clean file is
        # checked once. Only a file holding invalid bytes is read again, every line checked first.
        return _cut(lines, path, names, first, delimiter, quoting, what, None)
    except _NotUtf8:
        return _cut(lines, path, names, first, delimiter, quoting, what, invalid_utf8(lines, first))


class _NotUtf8(Exception):
    """A line read on the assumption that the file is UTF-8 is not."""


def _cut(lines: Lines, path: str, names: list[str], first: int, delimiter: str, quoting: bool, what: str,
         utf8: dict[int, int] | None) -> TextRows:
    """``read_delimited`` given the lines that are not UTF-8 (line → byte offset), or None to assume
    there are none and raise ``_NotUtf8`` on finding one."""
    n = len(lines)
    arr = np.frombuffer(lines.data, dtype=np.uint8)
    index = np.arange(n)
    todo = (index >= first) & (lines.ends > lines.starts)
    bad: list[BadRow] = []
    broken = np.zeros(n, dtype=bool)  # lines no quoted field may span: they are not text
    for i, offset in (utf8 or {}).items():
        bad.append((path, i + 1, utf8_reason(offset), lines.raw(i)))
        todo[i] = False
        broken[i] = True

    def decode(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if utf8 is None:
                raise _NotUtf8 from None
            raise

    def count(byte: int) -> np.ndarray:
        if bytes((byte,)) not in lines.data:  # memchr: most files hold no CR, many no quote
            return np.zeros(n, dtype=np.int64)
        pos = byte_positions(arr, byte)
        return np.searchsorted(pos, lines.ends) - np.searchsorted(pos, lines.starts)

    # A CR inside a line would be a row break to pyarrow but not to us: such lines go the slow way.
    slow = todo & (count(13) > 0)
    opening = np.zeros(n, dtype=bool)
    if quoting:
        opening = todo & (count(ord('"')) % 2 == 1)
    slow_rows: list[tuple[int, int, list[str]]] = []
    odd = [int(i) for i in np.flatnonzero(opening)]
    k = 0
    while k < len(odd):
        a = odd[k]
        k += 1
        try:
            slow_rows.append((a, a, csv_record(decode(lines.raw(a)), delimiter)))
            todo[a] = False
            continue
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                bad.append((path, a + 1, f"malformed quoting: {exc}", lines.raw(a)))
                todo[a] = False
                continue
        reason = ENDS_INSIDE_QUOTES
        if k < len(odd) and not broken[a:odd[k] + 1].any():
            b = odd[k]
            try:
                fields = csv_record(decode(lines.raw(a, b)), delimiter)
                if len(fields) == len(names):
                    slow_rows.append((a, b, fields))
                    todo[a:b + 1] = False
                    k += 1
                    continue
                reason = (f"unterminated quoted field (closing it at line {b + 1} gives {len(fields)} "
                          f"{what}, expected {len(names)})")
            except csv.Error as exc:
                reason = f"unterminated quoted field (closing it at line {b + 1} fails: {exc})"
        bad.append((path, a + 1, reason, lines.raw(a)))
        todo[a] = False
    for i in np.flatnonzero(slow & todo).tolist():
        try:
            slow_rows.append((i, i, csv_record(decode(lines.raw(i)), delimiter)))
        except csv.Error as exc:
            bad.append((path, i + 1, f"malformed line: {exc}", lines.raw(i)))
        todo[i] = False

    try:
        fast = _arrow_rows(lines, np.flatnonzero(todo), path, names, delimiter, quoting, what, bad)
    except pa.ArrowInvalid as exc:
        if utf8 is None and "UTF8" in str(exc):
            raise _NotUtf8 from None
        raise
    if utf8 is None:
        # pyarrow converts no field of a row it skipped: those lines are checked here
        for _path, line, _reason, raw in bad:
            decode(raw)
    frames = [fast]
    kept = [(a, b, f) for a, b, f in slow_rows if len(f) == len(names)]
    for a, _b, f in slow_rows:
        if len(f) != len(names):
            bad.append((path, a + 1, f"expected {len(names)} {what}, got {len(f)}", lines.raw(a, _b)))
    if kept:
        cols = {name: [f[j] for _a, _b, f in kept] for j, name in enumerate(names)}
        frames.append(_string_frame(cols, np.array([a for a, _b, _f in kept]), np.array([b for _a, b, _f in kept])))
    frame = fast  # already in line order
    if len(frames) > 1:
        frame = pd.concat(frames, ignore_index=True).sort_values(LINE, kind="stable").reset_index(drop=True)
    bad.sort(key=lambda r: r[1])
    return TextRows(frame, bad, len(frame) + len(bad))


def _arrow_rows(lines: Lines, good: np.ndarray, path: str, names: list[str], delimiter: str, quoting: bool,
                what: str, bad: list[BadRow]) -> pd.DataFrame:
    """Parse the clean lines ``good`` in one pyarrow pass; rows with a wrong field count go to ``bad``."""
    if not len(good):
        return _string_frame({name: [] for name in names}, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    # Join runs of consecutive lines as whole slices: few copies when most lines are clean.
    breaks = np.flatnonzero(np.diff(good) != 1)
    run_starts = np.concatenate(([good[0]], good[breaks + 1]))
    run_ends = np.concatenate((good[breaks], [good[-1]]))
    view = memoryview(lines.data)
    runs = [view[int(lines.starts[s]):int(lines.ends[e])] for s, e in zip(run_starts.tolist(), run_ends.tolist())]
    # a single run is read in place: pyarrow needs no newline after the last row
    buf = runs[0] if len(runs) == 1 else b"\n".join(runs)
    invalid: list[int] = []
    unnumbered: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        if row.number is None:  # a threaded read does not know row numbers: read again in one thread
            unnumbered.append(row)
            return "skip"
        line = int(good[row.number - 1])
        invalid.append(line)
        bad.append((path, line + 1, f"expected {row.expected_columns} {what}, got {row.actual_columns}",
                    lines.raw(line)))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(buf),
            # (one block of a whole file reads 2-3x slower); the columns are made single chunks
            # afterwards, which every later step reads directly
            read_options=pacsv.ReadOptions(column_names=names, use_threads=threads, block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False,
                                             newlines_in_values=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in names},
                                                 strings_can_be_null=True, null_values=[""]),
        )

    # Most files have no row with a wrong field count: they are parsed on every core. A file that
    # has one is parsed again in one thread, where pyarrow numbers the rows it skips.
    counted = len(bad)
    table = read(len(buf) > CSV_BLOCK)
    if unnumbered:
        del bad[counted:]
        invalid.clear()
        table = read(False)
    table = table.combine_chunks()
    rows = np.setdiff1d(good, np.array(invalid, dtype=np.int64), assume_unique=True) if invalid else good
    if table.num_rows != len(rows):
        raise AssertionError(f"{path}: pyarrow returned {table.num_rows} rows for {len(rows)} lines")
    frame = table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    frame[LINE] = rows + 1
    frame[FIRST] = rows
    frame[LAST] = rows
    return frame


def _loads_std(text: bytes | str) -> object:
    return json.loads(text)


def _dumps_std(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


try:  # orjson is ~3x faster than json both ways; both reject the same non-JSON
    import orjson

    _loads: Callable[[bytes | str], object] = orjson.loads

    def _dumps(value: object) -> str:
        try:
            return orjson.dumps(value).decode("utf-8")
        except TypeError:  # integers beyond 64 bits
            return _dumps_std(value)
except ImportError:  # pragma: no cover - depends on the environment
    _loads = _loads_std
    _dumps = _dumps_std


def _json_error(raw: bytes | str) -> str:
    """The standard library's message for text that does not parse, with its column."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at column {exc.colno}"
    except ValueError as exc:
        return str(exc)
    return "not valid JSON"


def read_json_lines(lines: Lines, path: str) -> tuple[np.ndarray, list[dict[str, object]], list[BadRow]]:
    """Parse each non-blank line as one JSON object: (line indexes, objects, quarantined lines)."""
    broken = invalid_utf8(lines)
    data = lines.data
    chunks = data.split(b"\n")
    if chunks and not chunks[-1]:
        chunks.pop()  # a final newline does not open a line
    if not broken:
        # Clean files parse in one C-level pass; any failure falls back to the line-by-line loop.
        where_fast = [i for i, raw in enumerate(chunks) if raw]
        try:
            parsed = list(map(_loads, [chunks[i] for i in where_fast]))
        except ValueError:
            parsed = None
        if parsed is not None and set(map(type, parsed)) <= {dict}:
            return np.array(where_fast, dtype=np.int64), parsed, []  # type: ignore[return-value]
    where: list[int] = []
    objs: list[dict[str, object]] = []
    bad: list[BadRow] = []
    for i, raw in enumerate(chunks):
        if not raw:
            continue
        try:
            obj = _loads(raw)
        except ValueError:
            raw = raw.rstrip(b"\r")
            if raw.isspace() or not raw:
                continue
            if i in broken:
                bad.append((path, i + 1, utf8_reason(broken[i]), raw))
                continue
            try:  # the standard library also takes what orjson refuses (integers beyond 64 bits, NaN)
                obj = json.loads(raw)
            except ValueError:
                bad.append((path, i + 1, f"line is not a JSON object: {_json_error(raw)}", raw))
                continue
        if not isinstance(obj, dict):
            kind = "array" if isinstance(obj, list) else type(obj).__name__
            bad.append((path, i + 1, f"line is not a JSON object: got {kind}", raw.rstrip(b"\r")))
            continue
        where.append(i)
        objs.append(obj)
    return np.array(where, dtype=np.int64), objs, bad


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # the same text JSON would give a finite number
    return _dumps(value)


def json_frame(objs: list[dict[str, object]], where: np.ndarray, fields: Mapping[str, str],
               reasons_out: dict[int, str]) -> pd.DataFrame:
    """Columns (canonical names) from JSON objects; ``fields`` maps input name → canonical.

    Columns are text, except that a column holding only integers stays integer. Lists become
    comma-joined text for ``tags``; JSON objects stay JSON text for ``labels`` (``LABELS_CHECKED``
    marks them); a list or object anywhere else is recorded in ``reasons_out`` (position → reason).
    """
    cols: dict[str, list[str | None] | pd.Series] = {}
    checked: np.ndarray | None = None
    for src, dst in fields.items():
        col = list(map(dict.get, objs, repeat(src)))
        kinds = set(map(type, col))
        if kinds <= {str, type(None)}:
            cols[dst] = col
            continue
        if kinds <= {int, type(None)}:
            cols[dst] = pd.Series(pd.array(col, dtype="Int64"))
            continue
        if dst == "labels":
            checked = np.fromiter((isinstance(v, dict) for v in col), dtype=bool, count=len(col))
            if kinds <= {dict, type(None)}:  # the usual case, without the per-value dispatch below
                cols[dst] = [None if v is None else _dumps(v) for v in col]
                continue
        for pos, value in enumerate(col):
            if isinstance(value, list) and dst == "tags":
                col[pos] = ",".join(v if isinstance(v, str) else _dumps(v) for v in value)
            elif isinstance(value, (list, dict)) and dst != "labels":
                kind = "array" if isinstance(value, list) else "object"
                reasons_out.setdefault(pos, f"{src} is not a scalar: got {kind}")
                col[pos] = None
            else:
                col[pos] = _text(value)
        cols[dst] = col
    frame = _string_frame(cols, where, where)
    if checked is not None:
        frame[LABELS_CHECKED] = checked
    return frame


# Registration: the adapters import the helpers above, so they are imported last.
from . import objects_generic, objects_qiniu, objects_s3  # noqa: E402,F401
