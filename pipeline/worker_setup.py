"""How scan workers are set up: the module preloaded into each LocalCluster worker process
(``preload=["pipeline.worker_setup"]``), and the worker class of a cluster of one worker thread.

Ctrl-C in a terminal reaches every process of the group; the scanning process stops the workers
itself, so they ignore SIGINT instead of each printing a traceback.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from distributed import Worker


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class ThreadWorker(Worker):
    """A worker in the scanning process itself. Closing it does not wait for a task under way:
    one only is when the scan was interrupted or failed, and this process is then about to exit
    (the task's thread is a daemon), having committed nothing."""

    async def close(self, timeout: float = 30, executor_wait: bool = False, **kwargs: Any) -> str | None:  # type: ignore[override]
        return await super().close(timeout=timeout, executor_wait=executor_wait, **kwargs)
