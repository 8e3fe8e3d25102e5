"""SIGINT and SIGTERM while a LocalCluster starts: held until the cluster can be stopped cleanly.

A signal that lands inside ``LocalCluster(...)`` unwinds out of a half-built cluster: its
context manager never ran, so its worker processes outlive the command and Dask's own exit hook
prints a traceback trying to close them. Inside ``held()`` a signal is only recorded; when the
block ends the handlers are put back and the signal is raised there, where the caller can close
what it started. A Ctrl-C reaches the whole process group, so a worker still importing its
modules dies of it with a traceback: the workers started inside ``held(stderr_to=...)`` write
their stderr to that file, never to the user's terminal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

TERMINATING = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def held(stderr_to: Path | None = None) -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver the first that came.
    With ``stderr_to``, processes started in the block inherit that file as their stderr."""
    if threading.current_thread() is not threading.main_thread():
        yield    # signals are only ever handled in the main thread
        return
    caught: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {s: signal.getsignal(s) for s in TERMINATING}
    for s in TERMINATING:
        signal.signal(s, record)
    saved = _redirect_stderr(stderr_to) if stderr_to is not None else None
    try:
        yield
    finally:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])


def _redirect_stderr(path: Path) -> int | None:
    """Point fd 2 at ``path`` (appended; the null device if it cannot be opened); the saved fd."""
    try:
        target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        target = os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(target, 2)
    os.close(target)
    return saved


def stop_helpers() -> None:
    """Stop multiprocessing's resource tracker, which the cluster's worker processes started, once
    the cluster is closed: otherwise it outlives the command by the time its orphan takes to be
    reaped (the next cluster starts a new one)."""
    import gc
    from multiprocessing import resource_tracker

    gc.collect()   # the closed cluster's semaphores unregister as they are collected
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()
