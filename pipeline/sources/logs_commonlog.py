"""NCSA / Apache ``common`` access logs: ``$remote_addr - $remote_user [$time_local] "$request" $status $bytes``."""

from __future__ import annotations

import pyarrow as pa

from .base import Stored
from .logs_common import LogTable, log_format
from .logs_layout import Field, Layout, canonical, read_layout_table

LAYOUT = Layout("common", (
    Field("client_ip"), Field(None, label="ident"), Field("username", label="user"),
    Field("time", "clftime"), Field("request", "quoted", "request"), Field("status", "status", "status"),
    Field("bytes_sent", "int", "byte count"),
))


# The request target is a path (a proxy's absolute URL is the rare exception): no host on the line.
@log_format("common", carries_domain=False)
def read_table(path: str, *, data: Stored | None = None, domain: str | None = None,
               account_id: str | None = None) -> LogTable:
    """Parse one common log; referer and user agent are absent from the format (null)."""
    def build(cols: dict[str, pa.Array], failures: dict[int, str]):  # type: ignore[no-untyped-def]
        return canonical(cols, failures, domain=domain, account_id=account_id)

    return read_layout_table(path, (LAYOUT,), build, data=data)
