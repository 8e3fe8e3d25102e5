"""Loguru setup: human-readable lines to the terminal, JSON lines to <state_dir>/pipeline.log.

The log file's sink never raises and never prints: on a full disk or an unwritable folder it
stops writing and says so through ``log_traceback``, which then writes the traceback to a
fallback file the error message names (loguru's own file sink would dump its error on stderr).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

ROTATE_BYTES = 50 << 20


class SafeFile:
    """An append-only log file that keeps one rotated predecessor and fails silently."""

    def __init__(self, path: Path):
        self.path = path
        self.failed: str | None = None
        self._fh: Any = None

    def write(self, message: str) -> None:
        if self.failed:
            return
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8")
            if self._fh.tell() > ROTATE_BYTES:
                self._fh.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(message)
            self._fh.flush()
        except OSError as exc:
            self.failed = f"{exc.strerror or exc}"

    def stop(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None


_file_sink: SafeFile | None = None


def _to_stderr(message: Any) -> None:
    sys.stderr.write(message)


def setup_logging(level: str = "INFO", state_dir: Path | None = None) -> None:
    global _file_sink
    logger.remove()
    # looked up on each message: while a cluster starts, sys.stderr may be this process's own copy
    # of the terminal while fd 2 points at the workers' log (pipeline.signals.children_stderr)
    logger.add(_to_stderr, level=level, catch=True,
               format="<level>{level: <8}</level> {message}", colorize=sys.stderr.isatty())
    _file_sink = None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        _file_sink = SafeFile(state_dir / "pipeline.log")
        logger.add(_file_sink, level="DEBUG", serialize=True)


def log_traceback(exc: BaseException, what: str = "unexpected error") -> str | None:
    """Record ``exc`` with its traceback; returns where it went (None if nowhere could be written)."""
    sink = _file_sink
    if sink is not None and not sink.failed:
        logger.opt(exception=exc).debug(what)
        if not sink.failed:
            return str(sink.path)
    try:
        fd, path = tempfile.mkstemp(prefix="compliance-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(exception=record.exc_info).debug("{}: {}", record.name, record.getMessage())


def quiet_distributed() -> None:
    """Dask's own log lines (reconnect attempts, a worker's death, a nanny restarting it) go to the
    log file only: the user gets one line about what happened, from the command itself."""
    # distributed gives several of its loggers a stderr handler of their own (distributed.client, ...)
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in ("distributed", "tornado", "bokeh")]
    for name in ("distributed", "tornado", "asyncio", *names):
        log = logging.getLogger(name)
        log.handlers[:] = [_ToLoguru()] if "." not in name or name == "asyncio" else []
        log.propagate = "." in name and name != "asyncio"
