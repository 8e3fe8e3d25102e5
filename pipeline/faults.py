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


FAIL_ENV = "PIPELINE_FAIL_AT"


def fail_point(step: str) -> None:
    """``PIPELINE_FAIL_AT=step[:errno-name]`` makes the write at ``step`` fail as the disk would
    (default ENOSPC), for machines where tests cannot mount a small file system to fill up."""
    wanted = os.environ.get(FAIL_ENV)
    if not wanted:
        return
    name, _, code = wanted.partition(":")
    if name != step:
        return
    import errno

    number = getattr(errno, code or "ENOSPC")
    raise OSError(number, os.strerror(number))


PAUSE_ENV = "PIPELINE_PAUSE_AT"


def pause_point(step: str) -> None:
    """``PIPELINE_PAUSE_AT=step:seconds`` sleeps there, so a test can act (kill workers, send a
    signal) while that step is under way."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    name, _, seconds = wanted.partition(":")
    if name == step:
        import time

        time.sleep(float(seconds or 1))
