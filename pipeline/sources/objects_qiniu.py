"""Qiniu Kodo object listings: the list API's JSON lines (``qiniu-json``) and qshell ``listbucket2``
output (``qshell``). Neither carries the bucket or the account: they come from the source's config.

Times are integer counts of 100 ns since 1970 (UTC). Storage classes are numbers
(0 STANDARD, 1 IA, 2 ARCHIVE, 3 DEEP_ARCHIVE, 4 ARCHIVE_IR, 5 INTELLIGENT_TIERING) and the status is
0 enabled / 1 disabled; the API leaves out zero-valued fields, so a missing one means 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import OBJECT_FORMATS, ReadResult, open_bytes
from .objects import (
    FIRST,
    LAST,
    LINE,
    RowReasons,
    check_key,
    ensure_columns,
    fill_given,
    finish,
    flag_positions,
    json_frame,
    parse_int,
    parse_ticks,
    read_delimited,
    read_json_lines,
    split_lines,
    text_raw,
)

STORAGE_CLASSES: dict[str, str] = {
    "0": "STANDARD", "1": "IA", "2": "ARCHIVE", "3": "DEEP_ARCHIVE", "4": "ARCHIVE_IR", "5": "INTELLIGENT_TIERING",
}
STATUSES: dict[str, str] = {"0": "enabled", "1": "disabled"}

# Input field → canonical field, for the list API's JSON.
API_FIELDS: dict[str, str] = {
    "key": "key", "hash": "etag", "fsize": "size", "mimeType": "mime_type", "putTime": "put_time",
    "endUser": "uploader", "type": "storage_class", "status": "status", "md5": "md5",
}
QSHELL_FIELDS: list[str] = ["Key", "FileSize", "Hash", "PutTime", "MimeType", "StorageType", "EndUser"]
QSHELL_MAP: dict[str, str] = {
    "Key": "key", "FileSize": "size", "Hash": "etag", "PutTime": "put_time", "MimeType": "mime_type",
    "StorageType": "storage_class", "EndUser": "uploader",
}


def _code(col: pd.Series, table: dict[str, str], reasons: RowReasons, name: str, what: str) -> pd.Series:
    """Map a numeric code column through ``table``; missing means code 0, unknown codes flag the row."""
    codes = col.astype("string").str.strip().fillna("0")
    mapped = codes.map(table).astype("string")
    values = codes.to_numpy(dtype=object)
    reasons.flag(mapped.isna().to_numpy(),
                 lambda pos: f"{name} is not a known {what}: {values[pos]!r} (expected {', '.join(table)})")
    return mapped


def _type(frame: pd.DataFrame, reasons: RowReasons, names: dict[str, str], *, bucket: str | None,
          account_id: str | None) -> pd.DataFrame:
    """Type canonical string columns; ``names`` gives each canonical field's input name for reasons."""
    frame = ensure_columns(frame, list(names))
    check_key(frame, reasons, names["key"])
    return frame.assign(
        size=parse_int(frame["size"], reasons, names["size"]),
        put_time=parse_ticks(frame["put_time"], reasons, names["put_time"]),
        storage_class=_code(frame["storage_class"], STORAGE_CLASSES, reasons, names["storage_class"],
                            "storage class"),
        # qshell does not report the status: it stays unknown (null) rather than assumed.
        status=(_code(frame["status"], STATUSES, reasons, names["status"], "status")
                if "status" in names else pd.Series(pd.NA, index=frame.index, dtype="string")),
        bucket=fill_given(None, len(frame), bucket),
        account_id=fill_given(None, len(frame), account_id),
    )


@OBJECT_FORMATS.register("qiniu-json")
def read_qiniu_json(path: str, *, bucket: str | None = None, account_id: str | None = None) -> ReadResult:
    """List API JSON lines: bare items, or v2 lines ``{"item": {...}, "marker": ...}``.

    A v2 line whose ``item`` is null only carries a paging marker: it is not an object row.
    """
    lines = split_lines(open_bytes(path))
    where, objs, bad = read_json_lines(lines, path)
    keep = [pos for pos, obj in enumerate(objs) if not ("item" in obj and obj["item"] is None and "key" not in obj)]
    items = [objs[p]["item"] if isinstance(objs[p].get("item"), dict) else objs[p] for p in keep]
    found: dict[int, str] = {}
    frame = json_frame(items, where[np.array(keep, dtype=np.int64)], API_FIELDS, found)  # type: ignore[arg-type]
    reasons = RowReasons(len(frame))
    flag_positions(reasons, found)
    names = {dst: src for src, dst in API_FIELDS.items()}
    typed = _type(frame, reasons, names, bucket=bucket, account_id=account_id)
    return finish(typed, reasons, path=path, raw_of=text_raw(lines, frame), bad=bad)


@OBJECT_FORMATS.register("qshell")
def read_qshell(path: str, *, bucket: str | None = None, account_id: str | None = None) -> ReadResult:
    """qshell ``listbucket2`` output: tab-separated ``Key FileSize Hash PutTime MimeType StorageType EndUser``.

    Fields are not quoted (a key may contain quotes); every line must have exactly 7 fields.
    """
    lines = split_lines(open_bytes(path))
    rows = read_delimited(lines, path, names=QSHELL_FIELDS, first=0, delimiter="\t", quoting=False,
                          what="tab-separated fields")
    frame = rows.frame.rename(columns=QSHELL_MAP)[[*QSHELL_MAP.values(), LINE, FIRST, LAST]]
    reasons = RowReasons(len(frame))
    names = {dst: src for src, dst in QSHELL_MAP.items()}
    typed = _type(frame, reasons, names, bucket=bucket, account_id=account_id)
    return finish(typed, reasons, path=path, raw_of=text_raw(lines, frame), bad=rows.bad)
