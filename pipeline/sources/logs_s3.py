"""AWS S3 server access logs (space separated, ``-`` is empty, new fields may be appended):
bucket owner, bucket, ``[time]``, remote IP, requester, request ID, operation, key,
``"Request-URI"``, status, error code, bytes sent, object size, total time, turn-around time,
``"Referer"``, ``"User-Agent"``, version ID, host ID, signature version, cipher suite,
authentication type, host header, ..."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .base import Stored
from .logs_common import LogTable, log_format
from .logs_layout import Field, Layout, canonical, read_layout_table

_BASE = (
    Field(None, label="bucket owner"), Field("bucket", label="bucket"), Field("time", "clftime"),
    Field("client_ip"), Field(None, label="requester"), Field(None, label="request ID"),
    Field(None, label="operation"), Field(None, label="key"), Field("request", "quoted", "request"),
    Field("status", "tok", "status"), Field(None, label="error code"),
    Field("bytes_sent", "int", "byte count"), Field(None, "int", "object size"),
    Field("request_time", "int", "total time"), Field(None, "int", "turn-around time"),
    Field("referer", "quoted", "referer"), Field("user_agent", "quoted", "user agent"),
)
# Files since 2019 carry the Host header as the 22nd field; older ones stop earlier.
WITH_HOST = Layout("s3-access", _BASE + (Field(None, label="version ID"), Field(None, label="host ID"),
                                         Field(None, label="signature version"), Field(None, label="cipher suite"),
                                         Field(None, label="authentication type"), Field("domain", label="host header")),
                   tail=True)
SHORT = Layout("s3-access (without host header)", _BASE, tail=True)


@log_format("s3-access", carries_domain=True)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one S3 server access log; domain is the Host header, else ``domain``, else the bucket."""
    def build(cols: dict[str, pa.Array], failures: dict[int, str]):  # type: ignore[no-untyped-def]
        # S3 writes "-" where no status was sent (a dropped connection): a record without status.
        cols = dict(cols)
        cols["status"] = pc.if_else(pc.equal(cols["status"], "-"), pa.scalar(None, cols["status"].type),
                                    cols["status"])
        out, more = canonical(cols, failures, domain=domain, account_id=account_id)
        out["domain"] = pc.coalesce(out["domain"], cols["bucket"])
        return out, more

    return read_layout_table(path, (WITH_HOST, SHORT), build, data=data)
