"""Failures of what the pipeline runs on, named as what they are, with sysexits-style exit codes.

A bug is the only thing reported as "internal error, please report it". A lost scheduler, an
unreachable database, a full disk or a state folder this user may not write is the machine's
state, not a bug: one line naming it and what to do, and the code a scheduler (cron, systemd)
can act on. The traceback goes to the log file (or a named fallback), never to stderr.
"""

from __future__ import annotations

import errno
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from .. import signals
from ..signals import Interrupted

EXIT_INTERNAL = 1
EXIT_REFUSED = 2
EXIT_UNAVAILABLE = 69   # EX_UNAVAILABLE: a service (scheduler, PostgreSQL) is unreachable or was lost
EXIT_IOERR = 74         # EX_IOERR: disk full, an I/O error
EXIT_TEMPFAIL = 75      # EX_TEMPFAIL: locked by another run; try later
EXIT_NOPERM = 77        # EX_NOPERM: permission denied
EXIT_SIGINT = 128 + signal.SIGINT     # 130
EXIT_SIGTERM = 128 + signal.SIGTERM   # 143


def raise_interrupted(signum: int, _frame: object) -> None:
    signals.note(signum)
    raise Interrupted(signum)


@dataclass(frozen=True)
class Failure:
    code: int
    message: str


_DISK = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it, innermost last (a ROLLBACK failure can hide the real one)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _path(exc: OSError) -> str:
    return f" {exc.filename}" if exc.filename else ""


def _one(exc: BaseException) -> Failure | None:
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if isinstance(exc, PermissionError):
        return Failure(EXIT_NOPERM, f"permission denied:{_path(exc)} ({exc.strerror}); the state folder and "
                                    "its files must be writable by the user running compliance (check their owner "
                                    "and mode, or set state_dir to a folder this user owns)")
    if isinstance(exc, OSError) and exc.errno in _DISK:
        what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "I/O error"
        return Failure(EXIT_IOERR, f"{what}: {exc.strerror}{' writing' + _path(exc) if exc.filename else ''}; "
                                   "free space (or fix the file system) and run the command again")
    if isinstance(exc, sqlite3.Error):
        text = str(exc)
        if "full" in text or "disk I/O" in text:
            what = "disk full" if "full" in text else "I/O error (is the disk full?)"
            return Failure(EXIT_IOERR, f"{what}: the case store (SQLite) says \"{text}\"; free space on its "
                                       "file system and run the command again (its last transaction was rolled back)")
        if "readonly" in text or "unable to open" in text:
            return Failure(EXIT_NOPERM, f"the case store (SQLite) cannot be written: \"{text}\"; check the owner "
                                        "and mode of the state folder and cases.db")
        if "locked" in text:
            return Failure(EXIT_TEMPFAIL, f"the case store is locked by another process (\"{text}\"); try again later")
    if module.startswith("psycopg"):
        if name in ("OperationalError", "InterfaceError") or "connection" in str(exc).lower():
            first = (str(exc).strip().splitlines() or [name])[0]
            return Failure(EXIT_UNAVAILABLE, f"the case store's PostgreSQL server is unreachable or the connection "
                                             f"was lost ({first}); nothing of the interrupted transaction was "
                                             "committed: check the server and run the command again")
    if module.startswith("distributed") or name in ("CancelledError", "FutureCancelledError"):
        if name == "KilledWorker":
            return Failure(EXIT_UNAVAILABLE, f"Dask workers kept dying while running a task ({exc}); check the "
                                             "workers' memory and logs, then run the scan again (nothing was committed)")
        if name in ("CommClosedError", "FutureCancelledError", "CancelledError", "TimeoutError") \
                or "scheduler" in str(exc).lower():
            return Failure(EXIT_UNAVAILABLE, f"lost the connection to the Dask scheduler ({name}: {exc}); nothing "
                                             "was committed: check the scheduler (dask.scheduler in the config) "
                                             "and run the command again")
    if isinstance(exc, (ConnectionError, TimeoutError)) and "scheduler" in str(exc).lower():
        return Failure(EXIT_UNAVAILABLE, f"lost the connection to the Dask scheduler ({exc}); nothing was "
                                         "committed: check the scheduler and run the command again")
    return None


def classify(exc: BaseException) -> Failure | None:
    """What infrastructure failure ``exc`` is, if any (None: a bug)."""
    for link in _chain(exc):
        found = _one(link)
        if found is not None:
            return Failure(found.code, " ".join(found.message.split()))  # one line on stderr
    return None
