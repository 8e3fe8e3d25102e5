"""Named crash points for fault-injection tests of the writers (retained store, scans, enforcement).

``PIPELINE_CRASH_AT=step`` (or ``step:n``, the n-th time the step is reached) makes the process
SIGKILL itself there, so tests can prove a kill at that instant leaves the store consistent.
Unset, a checkpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "PIPELINE_CRASH_AT"
_seen: Counter[str] = Counter()


def checkpoint(step: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != step:
        return
    _seen[step] += 1
    if _seen[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
