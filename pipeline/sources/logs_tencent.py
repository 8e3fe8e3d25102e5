"""Tencent Cloud CDN offline logs (space separated, Beijing time without an offset):
time ``20260101120000``, client IP, domain, path, bytes, province, ISP, status, referer, response
time (ms), ``"UA"``, ``"range"``; newer files append method, protocol and HIT/MISS."""

from __future__ import annotations

import pyarrow as pa

from .base import Stored
from .logs_common import LogTable, log_format
from .logs_layout import Field, Layout, canonical, read_layout_table

_BASE = (
    Field("time", "stamp14", "timestamp"), Field("client_ip"), Field("domain"), Field("uri", label="path"),
    Field("bytes_sent", "int", "byte count"), Field(None, label="province"), Field(None, label="ISP"),
    Field("status", "status", "status"), Field("referer", label="referer"),
    Field("request_time", "num", "response time"), Field("user_agent", "quoted", "user agent"),
    Field(None, "quoted", "range"),
)
NEW = Layout("tencent-cdn", _BASE + (Field("method", label="method"), Field(None, label="protocol"),
                                     Field("cache_status", label="cache status")))
OLD = Layout("tencent-cdn (12 fields)", _BASE)
BEIJING = " +0800"  # the files carry no offset; Tencent writes them in China Standard Time


@log_format("tencent-cdn", carries_domain=True)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one CDN offline log, old (12 fields) or new (15 fields) layout, line by line."""
    def build(cols: dict[str, pa.Array], failures: dict[int, str]):  # type: ignore[no-untyped-def]
        return canonical(cols, failures, domain=domain, account_id=account_id,
                         time_format="%Y%m%d%H%M%S %z", time_suffix=BEIJING)

    return read_layout_table(path, (NEW, OLD), build, data=data)
