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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import FrameType
from typing import Any

TERMINATING = (signal.SIGINT, signal.SIGTERM)

received: int | None = None   # the first termination signal this process took, if any


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGINT, SIGTERM) turned into an exception, so that work under way
    unwinds as it does on Ctrl-C (the scan marks its run interrupted)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def note(signum: int) -> None:
    """Record a signal before its exception is raised: Python drops an exception raised while the
    main thread runs a callback (a garbage-collector hook, a finalizer), so the record is what
    tells that the process was asked to stop (``raise_if_received``), and that what failed next
    (a starting worker the signal killed) failed because of it."""
    global received
    if received is None:
        received = signum


def quiet_lost_interrupts() -> None:
    """An interrupt Python could not raise (it landed in a callback) prints no traceback: it is
    recorded by ``note`` and acted on there; any other unraisable error is printed as before."""
    default = sys.__unraisablehook__

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)

    sys.unraisablehook = hook


def raise_if_received() -> None:
    """Stop here if a termination signal came whose exception was lost."""
    if received is not None:
        raise Interrupted(received)


@contextmanager
def held(stderr_to: Path | None = None) -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver the first that came.
    With ``stderr_to``, processes started in the block inherit that file as their stderr."""
    redirect = children_stderr(stderr_to) if stderr_to is not None else nullcontext()
    if threading.current_thread() is not threading.main_thread():
        # signals are only ever handled in the main thread: here only the workers' stderr is moved
        with redirect:
            yield
        return
    caught: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {s: signal.getsignal(s) for s in TERMINATING}
    for s in TERMINATING:
        signal.signal(s, record)
    try:
        with redirect:
            yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])


@contextmanager
def children_stderr(path: Path) -> Iterator[None]:
    """Processes started in the block write their stderr to ``path``; this process keeps writing
    to the terminal through a ``sys.stderr`` of its own (any thread may go on logging meanwhile)."""
    saved = _redirect_stderr(path)
    own = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(own, "encoding", None) or "utf-8",
                           errors=getattr(own, "errors", None) or "backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        # the copy is left open: another thread may hold it for a write under way
        sys.stderr = own


def _redirect_stderr(path: Path) -> int:
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

    if getattr(resource_tracker._resource_tracker, "_pid", 0) is None:
        return   # none was started (a cluster of one thread worker starts no process)
    gc.collect()   # the closed cluster's semaphores unregister as they are collected
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)
    if stop is not None:
        stop()
