"""Qiniu Kodo bucket access logs: remote IP, ``-``, ``-``, ``[time]``, request time (ms),
``"Request-URI"``, status, sent bytes (``-`` for 0), ``"Referer"``, ``"User-Agent"``, more fields
possibly appended (read past)."""

from __future__ import annotations

import pyarrow as pa

from .base import Stored
from .logs_common import LogTable, log_format
from .logs_layout import Field, Layout, canonical, read_layout_table

LAYOUT = Layout("qiniu-kodo", (
    Field("client_ip"), Field(None, label="logname"), Field(None, label="user"),
    Field("time", "clftime"), Field("request_time", "num", "request time"),
    Field("request", "quoted", "request"), Field("status", "status", "status"),
    Field("bytes_sent", "int", "byte count"), Field("referer", "quoted", "referer"),
    Field("user_agent", "quoted", "user agent"),
), tail=True)


# The request target is a path (a proxy's absolute URL is the rare exception): no host on the line.
@log_format("qiniu-kodo", carries_domain=False)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one Kodo bucket log; ``domain`` fills requests whose target is not an absolute URL."""
    def build(cols: dict[str, pa.Array], failures: dict[int, str]):  # type: ignore[no-untyped-def]
        return canonical(cols, failures, domain=domain, account_id=account_id)

    return read_layout_table(path, (LAYOUT,), build, data=data)
