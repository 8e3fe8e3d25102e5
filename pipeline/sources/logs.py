"""Access-log readers: importing this module registers every log format in ``LOG_FORMATS``.

Each format is one module ``logs_<name>.py`` whose ``read(path, *, domain=None, account_id=None)``
returns a ``ReadResult`` of canonical ``LOGS`` records; ``logs_common`` holds the line splitting,
UTF-8 checks and conversions they share, and ``logs_layout`` the quoted/space-separated parser.
"""

from __future__ import annotations

from . import logs_combined, logs_common, logs_commonlog, logs_jsonl, logs_qiniu, logs_s3, logs_tencent, logs_w3c
