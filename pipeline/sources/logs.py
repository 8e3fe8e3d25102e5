"""Access-log readers: importing this module registers every log format in ``LOG_READERS``.

Each format is one module ``logs_<name>.py`` declaring, with ``log_format``, one reader
``read_table(path, *, data=None, domain=None, account_id=None)`` that returns a ``LogTable`` of the
canonical ``LOGS`` columns, and whether its lines carry the domain. The retained store ingests that
table and the scan evaluates rules on its pandas view (``LOG_FORMATS``, derived), so a line is
parsed once. ``logs_common`` holds the line splitting, UTF-8 checks and conversions they share, and
``logs_layout`` the quoted/space-separated parser.
"""

from __future__ import annotations

from . import logs_combined, logs_common, logs_commonlog, logs_jsonl, logs_qiniu, logs_s3, logs_tencent, logs_w3c
