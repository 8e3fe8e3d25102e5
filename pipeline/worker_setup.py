"""Preloaded into each LocalCluster worker process (``preload=["pipeline.worker_setup"]``).

Ctrl-C in a terminal reaches every process of the group; the scanning process stops the workers
itself, so they ignore SIGINT instead of each printing a traceback. A worker spawned while the
cluster started has SIGINT and SIGTERM blocked (``pipeline.signals.held``) and takes them here.
"""

from __future__ import annotations

import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        from .signals import unblock_in_worker

        unblock_in_worker()
