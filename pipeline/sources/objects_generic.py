"""Generic object listings whose fields carry the canonical names of records.OBJECTS: csv, jsonl, parquet.

Extra columns are ignored and missing optional ones are null; ``key`` is required. ``put_time`` is
ISO 8601 (a time without an offset is UTC). ``tags`` is comma-separated text (a list in JSONL or
Parquet is joined with ","); ``labels`` is a JSON object (a JSON string in CSV, an object in JSONL,
a struct or map in Parquet).
"""

from __future__ import annotations

import csv
import json

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import Location, SourceError
from ..records import OBJECTS, PROVENANCE
from .base import OBJECT_FORMATS, ReadResult, open_bytes, utf16_advice
from .objects import (
    LABELS_CHECKED,
    LINE,
    BadRow,
    RowReasons,
    csv_record,
    check_key,
    check_labels,
    ensure_columns,
    finish,
    fill_given,
    first_nonblank,
    flag_positions,
    json_frame,
    parse_int,
    parse_iso_time,
    read_delimited,
    read_json_lines,
    split_lines,
    text_raw,
)

CANONICAL: list[str] = [name for name in OBJECTS if name not in PROVENANCE]
_HINT = "generic object files use the canonical column names: " + ", ".join(CANONICAL)


def _type(frame: pd.DataFrame, reasons: RowReasons, *, bucket: str | None, account_id: str | None) -> pd.DataFrame:
    """Check and type the canonical string columns; bad rows are flagged in ``reasons``."""
    frame = ensure_columns(frame, CANONICAL)
    check_key(frame, reasons)
    size = parse_int(frame["size"], reasons, "size")
    put_time = (frame["put_time"] if str(frame["put_time"].dtype).startswith("datetime64")
                else parse_iso_time(frame["put_time"], reasons, "put_time"))
    return frame.assign(
        size=size,
        put_time=put_time,
        labels=check_labels(frame["labels"], reasons,
                            checked=frame[LABELS_CHECKED].to_numpy(dtype=bool) if LABELS_CHECKED in frame else None),
        bucket=fill_given(frame["bucket"], len(frame), bucket),
        account_id=fill_given(frame["account_id"], len(frame), account_id),
    )


@OBJECT_FORMATS.register("csv")
def read_csv(path: str, *, bucket: str | None = None, account_id: str | None = None) -> ReadResult:
    """A CSV file whose header row names canonical columns (RFC 4180 quoting, UTF-8, optional BOM)."""
    lines = split_lines(open_bytes(path))
    head = first_nonblank(lines)
    if head is None:
        return finish(_type(pd.DataFrame({LINE: pd.Series([], dtype="int64")}), RowReasons(0),
                            bucket=bucket, account_id=account_id),
                      RowReasons(0), path=path, raw_of=lambda _pos: b"", bad=[])
    where = Location(path, head + 1, 1)
    try:
        names = [name.strip() for name in csv_record(lines.raw(head).decode("utf-8-sig"), ",")]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"unreadable CSV header: {exc}", location=where,
                          hint=utf16_advice(lines.raw(head)) or _HINT) from None
    if "key" not in names:
        raise SourceError(f"CSV header has no 'key' column (got {', '.join(names)})", location=where, hint=_HINT)
    dupes = sorted({name for name in names if names.count(name) > 1})
    if dupes:
        raise SourceError(f"CSV header repeats column(s) {', '.join(dupes)}", location=where,
                          hint="give each column once")
    rows = read_delimited(lines, path, names=names, first=head + 1)
    frame = rows.frame[[c for c in names if c in CANONICAL] + [LINE, "_first", "_last"]]
    reasons = RowReasons(len(frame))
    typed = _type(frame, reasons, bucket=bucket, account_id=account_id)
    return finish(typed, reasons, path=path, raw_of=text_raw(lines, frame), bad=rows.bad)


@OBJECT_FORMATS.register("jsonl")
def read_jsonl(path: str, *, bucket: str | None = None, account_id: str | None = None) -> ReadResult:
    """JSON lines, one object per line, keyed by canonical names."""
    lines = split_lines(open_bytes(path))
    where, objs, bad = read_json_lines(lines, path)
    found: dict[int, str] = {}
    frame = json_frame(objs, where, {name: name for name in CANONICAL}, found)
    reasons = RowReasons(len(frame))
    flag_positions(reasons, found)
    typed = _type(frame, reasons, bucket=bucket, account_id=account_id)
    return finish(typed, reasons, path=path, raw_of=text_raw(lines, frame), bad=bad)


def _parquet_column(col: pa.ChunkedArray, name: str) -> pd.Series:
    """One Parquet column as the pandas column ``_type`` expects (typed where Parquet already is)."""
    kind = col.type
    if name == "size" and pa.types.is_integer(kind):
        return col.to_pandas(types_mapper={kind: pd.Int64Dtype()}.get).astype("Int64")
    if name == "put_time" and pa.types.is_timestamp(kind):
        if kind.tz is None:  # a naive timestamp is UTC, as for text inputs
            col = pc.assume_timezone(col, "UTC")
        return pd.Series(col.to_pandas()).dt.tz_convert("UTC")
    if name == "tags" and (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        values = [None if v is None else ",".join(str(x) for x in v) for v in col.to_pylist()]
        return pd.Series(values, dtype="string")
    if name == "labels" and (pa.types.is_struct(kind) or pa.types.is_map(kind)):
        values = []
        for v in col.to_pylist():
            if v is None:
                values.append(None)
                continue
            # Struct fields absent from a row come back as None: they were never scores of that row.
            items = dict(v) if pa.types.is_map(kind) else {k: x for k, x in v.items() if x is not None}
            values.append(json.dumps(items, ensure_ascii=False, separators=(",", ":")))
        return pd.Series(values, dtype="string")
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        try:
            col = pc.cast(col, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pd.Series([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                             dtype="string")
    series = col.to_pandas(types_mapper={pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get)
    series = series.astype("string")
    return series.mask(series == "", pd.NA)


@OBJECT_FORMATS.register("parquet")
def read_parquet(path: str, *, bucket: str | None = None, account_id: str | None = None) -> ReadResult:
    """A Parquet file with canonical column names; ``source_line`` is the 1-based row number."""
    try:
        with fsspec.open(path, "rb") as fh:
            table = pq.read_table(fh)
    except FileNotFoundError:
        raise SourceError(f"no such file: {path}", hint="check the path in the config or on the command line") from None
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})",
                          hint="re-fetch the file; nothing from it was used") from None
    if "key" not in table.column_names:
        raise SourceError(f"{path}: Parquet file has no 'key' column", hint=_HINT)
    names = [c for c in CANONICAL if c in table.column_names]
    frame = pd.DataFrame({name: _parquet_column(table.column(name), name) for name in names})
    frame[LINE] = np.arange(1, table.num_rows + 1)
    reasons = RowReasons(len(frame))
    typed = _type(frame, reasons, bucket=bucket, account_id=account_id)

    def raw_of(pos: int) -> bytes:
        row = table.slice(pos, 1).to_pylist()[0]
        return json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")

    bad: list[BadRow] = []
    return finish(typed, reasons, path=path, raw_of=raw_of, bad=bad)
