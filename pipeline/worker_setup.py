"""Preloaded into each LocalCluster worker process (``preload=["pipeline.worker_setup"]``).

Ctrl-C in a terminal reaches every process of the group; the scanning process stops the workers
itself, so they ignore SIGINT instead of each printing a traceback.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
