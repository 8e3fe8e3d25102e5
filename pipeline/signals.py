"""SIGINT and SIGTERM while a LocalCluster starts: held until the cluster can be stopped cleanly.

A signal that lands inside ``LocalCluster(...)`` unwinds out of a half-built cluster: its
context manager never ran, so its worker processes outlive the command and Dask's own exit hook
prints a traceback trying to close them. Inside ``held()`` the signals are blocked in the main
thread (the threads the cluster starts inherit the mask, and so do the worker processes they
spawn: a Ctrl-C to the whole process group cannot reach a worker before it has set itself to
ignore it, see ``pipeline.worker_setup``) and any that arrives anyway is recorded. When the block
ends the handlers are put back and the signal is raised there, where the caller can close what
it started.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

TERMINATING = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver the first that came."""
    if threading.current_thread() is not threading.main_thread():
        yield    # signals are only ever handled in the main thread
        return
    caught: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {s: signal.getsignal(s) for s in TERMINATING}
    for s in TERMINATING:
        signal.signal(s, record)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, TERMINATING)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a blocked one is delivered now, to its own handler
        if caught:
            signal.raise_signal(caught[0])


def unblock_in_worker() -> None:
    """In a worker process spawned inside ``held()``: ignore Ctrl-C (the scanning process stops
    its workers itself), then take the signals the spawning thread had blocked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # first, so a pending SIGINT is discarded
    signal.pthread_sigmask(signal.SIG_UNBLOCK, TERMINATING)


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
