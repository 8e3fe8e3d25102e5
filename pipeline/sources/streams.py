"""Live-stream metadata (直播云): csv and jsonl files with the canonical names of ``records.STREAMS``.

Every row is parsed or quarantined with its file, line and reason. A stream needs a hub and a
stream key (together they name the case subject); ``started_at`` is ISO 8601 or epoch seconds,
a time without an offset being UTC. ``account_id`` may come from the config entry or, later,
from the bindings by hub.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..records import STREAMS, conform, empty
from .base import STREAM_FORMATS, ReadResult, quarantine_frame
from .icp import BadRow, read_rows

FIELDS = {name: name for name in STREAMS if name not in ("source_file", "source_line")}
STATUSES = ("live", "ended", "banned", "scheduled")


def _started(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        ts = pd.Timestamp(int(text), unit="s") if text.isdigit() else pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        raise BadRow(f"started_at is not an ISO 8601 time or epoch seconds: {text!r}") from None
    if pd.isna(ts):
        raise BadRow(f"started_at is not an ISO 8601 time or epoch seconds: {text!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def stream_record(v: dict[str, str | None], account_id: str | None) -> dict[str, Any]:
    """One stream's canonical fields; raises BadRow with the reason."""
    for name in ("hub", "stream_key"):
        if not v.get(name):
            raise BadRow(f"{name} is missing")
        if "/" in str(v[name]):
            raise BadRow(f"{name} must not contain '/': {v[name]!r}")
    status = (v.get("status") or "").lower() or None
    if status is not None and status not in STATUSES:
        raise BadRow(f"status must be one of {', '.join(STATUSES)}, not {v.get('status')!r}")
    return {**v, "account_id": v.get("account_id") or account_id, "status": status,
            "started_at": _started(v.get("started_at"))}


def _read(path: str, fmt: str, account_id: str | None) -> ReadResult:
    rows, bad = read_rows(path, fmt, FIELDS, "stream_key")
    good: list[dict[str, Any]] = []
    for row in rows:
        try:
            good.append({**stream_record(row.values, account_id), "source_file": path, "source_line": row.line})
        except BadRow as exc:
            bad.append((path, row.line, str(exc), row.raw))
    bad.sort(key=lambda b: b[1])
    records = conform(pd.DataFrame(good), STREAMS) if good else empty(STREAMS)
    return ReadResult(records, quarantine_frame(bad), len(good) + len(bad))


@STREAM_FORMATS.register("csv")
def read_csv(path: str, *, account_id: str | None = None) -> ReadResult:
    """Streams as CSV whose header names canonical columns (hub and stream_key required)."""
    return _read(path, "csv", account_id)


@STREAM_FORMATS.register("jsonl")
def read_jsonl(path: str, *, account_id: str | None = None) -> ReadResult:
    """Streams as JSON lines keyed by canonical names."""
    return _read(path, "jsonl", account_id)
