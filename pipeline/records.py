"""The canonical record types every source adapter produces and every rule sees.

Records travel as pandas DataFrames (one per partition) whose columns are exactly the
ones listed here, in this order, with these dtypes. ``source_file`` / ``source_line``
(1-based) are the provenance every case's evidence points back to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # pandas only where frames are made: rule files import the schemas without it
    import pandas as pd

STR = "string"          # pandas' nullable string dtype
INT = "Int64"           # nullable integer
FLOAT = "Float64"
TS = "datetime64[ns, UTC]"

PROVENANCE: dict[str, str] = {"source_file": STR, "source_line": INT}

OBJECTS: dict[str, str] = {
    "account_id": STR,
    "bucket": STR,
    "key": STR,
    "size": INT,
    "mime_type": STR,
    "etag": STR,
    "md5": STR,
    "put_time": TS,
    "uploader": STR,
    "storage_class": STR,
    "status": STR,
    "title": STR,
    "description": STR,
    "tags": STR,      # comma-separated; list inputs are joined with ","
    "labels": STR,    # JSON object of moderation scores, e.g. {"pulp": 0.97}; rules read labels.<name>
    **PROVENANCE,
}

LOGS: dict[str, str] = {
    "ts": TS,
    "client_ip": STR,
    "domain": STR,
    "method": STR,
    "uri": STR,        # path + query, as requested (not decoded)
    "path": STR,
    "query": STR,
    "status": INT,
    "bytes_sent": INT,
    "referer": STR,
    "user_agent": STR,
    "request_time_ms": FLOAT,
    "cache_status": STR,
    "username": STR,    # the authenticated user (%u of combined / common, cs-username of W3C)
    "host": STR,        # the Host header, where the format logs one (W3C, JSON lines)
    "account_id": STR,  # joined through bindings; empty where no binding is known
    **PROVENANCE,
}

STREAMS: dict[str, str] = {
    "account_id": STR,
    "hub": STR,
    "stream_key": STR,
    "title": STR,
    "description": STR,
    "started_at": TS,
    "status": STR,
    **PROVENANCE,
}

QUARANTINE: dict[str, str] = {
    "source_file": STR,
    "source_line": INT,
    "reason": STR,
    "raw": "object",   # the raw bytes of the line (bytes), so nothing is lost
}

SCHEMAS: dict[str, dict[str, str]] = {"objects": OBJECTS, "logs": LOGS, "streams": STREAMS}


def empty(schema: Mapping[str, str]) -> pd.DataFrame:
    """An empty frame with the schema's columns and dtypes."""
    import pandas as pd

    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in schema.items()})


def conform(df: pd.DataFrame, schema: Mapping[str, str]) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns (missing ones null) in order, cast to its dtypes."""
    import pandas as pd

    out = {}
    n = len(df)
    for name, dtype in schema.items():
        if name in df.columns:
            col = df[name]
            if dtype == TS:
                textual = col.dtype == object or pd.api.types.is_string_dtype(col.dtype)
                col = pd.to_datetime(col, utc=True, format="ISO8601" if textual else None)
                if str(col.dtype) != TS:
                    col = col.astype(TS)
            elif str(col.dtype) != dtype:
                col = col.astype(dtype)
            out[name] = col.reset_index(drop=True)
        else:
            out[name] = pd.Series([pd.NA] * n if dtype != TS else [pd.NaT] * n, dtype=dtype)
    return pd.DataFrame(out)
