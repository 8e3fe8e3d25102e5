"""Where the retained log store keeps things, and how a partition version is named, read and published.

Layout under ``<state_dir>/logs``::

    days/<YYYY-MM-DD>/CURRENT              name of the published version (the pointer)
    days/<YYYY-MM-DD>/v-<id>/part-*.parquet data files, sorted by ip_key (client IP) then ts
    days/<YYYY-MM-DD>/v-<id>/manifest.json  rows, sources, SHA-256 and rows of each data file
    days/<YYYY-MM-DD>/.tmp-v-<id>/          a version being written (never read)
    sources/<sha256>.json                   ledger: one per fully ingested source file
    quarantine/<sha256>.jsonl               lines of that source file that could not be parsed
    purged.jsonl                            days deleted by purge (so verify can tell purged from lost)
    holds.json                              legal holds
    .lock                                   held (fcntl) by ingest and purge

A version folder is complete before the pointer names it, and the pointer is replaced with
``os.replace``: a reader, or a process killed at any instant, sees the old version or the new one.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..config import Settings
from ..files import TMP_PREFIX, file_lock, fsync_dir, write_atomic
from ..errors import Location, StoreError
from ..records import LOGS

SCHEMA_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
VERSION_RE = re.compile(r"^v-[0-9A-Za-z_-]+$")
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Sortable form of the client IP (32 hex digits of the 128-bit address, IPv4 mapped into
# ::ffff:0:0/96): equality and CIDR ranges on it prune row groups by their min/max statistics.
IP_KEY = "ip_key"

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "datetime64[ns, UTC]": pa.timestamp("us", tz="UTC"),
}

STORE_SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, _ARROW_TYPES[dtype]) for name, dtype in LOGS.items()] + [pa.field(IP_KEY, pa.string())]
)


def store_root(settings: Settings) -> Path:
    return settings.state_path / "logs"


def days_dir(settings: Settings) -> Path:
    return store_root(settings) / "days"


def ledger_dir(settings: Settings) -> Path:
    return store_root(settings) / "sources"


def quarantine_dir(settings: Settings) -> Path:
    return store_root(settings) / "quarantine"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary sibling, fsynced and renamed over ``path`` (``files.write_atomic``)."""
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8"))


@contextlib.contextmanager
def store_lock(settings: Settings) -> Iterator[None]:
    """Exclusive lock for writers of the store; the kernel drops it if the holder is killed."""
    with file_lock(store_root(settings) / ".lock"):
        yield


@dataclass(frozen=True)
class Partition:
    """One published day: its version folder and its manifest."""

    day: date
    folder: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[Path]:
        return [self.folder / f["name"] for f in self.manifest["files"]]

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"])

    def source_rows(self) -> dict[str, int]:
        """SHA-256 of each source file → rows it contributed to this day."""
        return {s["sha256"]: int(s["rows"]) for s in self.manifest["sources"]}


def read_pointer(day_folder: Path) -> str | None:
    try:
        name = (day_folder / POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def load_partition(settings: Settings, day: date) -> Partition | None:
    """The published version of ``day``, or None when the day has none."""
    folder = days_dir(settings) / day.isoformat()
    version = read_pointer(folder)
    if version is None:
        return None
    manifest_path = folder / version / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"partition {day} names version {version} but its manifest is missing",
                         location=Location(str(manifest_path)),
                         hint="run `compliance logs verify`; restore the state folder from backup") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"manifest is not valid JSON: {exc.msg}",
                         location=Location(str(manifest_path), exc.lineno, exc.colno),
                         hint="run `compliance logs verify`; restore the state folder from backup") from None
    return Partition(day, folder / version, manifest)


def published_days(settings: Settings) -> list[date]:
    """Days with a published version, sorted (read from pointers, never by globbing data files)."""
    root = days_dir(settings)
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        if DAY_RE.match(entry.name) and (entry / POINTER).is_file():
            out.append(date.fromisoformat(entry.name))
    return sorted(out)


def partitions_between(settings: Settings, first: date | None, last: date | None) -> list[Partition]:
    """Published partitions whose day lies in [first, last] (either bound may be open)."""
    out = []
    for day in published_days(settings):
        if (first is None or day >= first) and (last is None or day <= last):
            part = load_partition(settings, day)
            if part is not None:
                out.append(part)
    return out


def leftovers(day_folder: Path) -> list[Path]:
    """Folders and files in a day folder that no reader will ever look at (killed writers' remains)."""
    current = read_pointer(day_folder)
    out = []
    for entry in day_folder.iterdir():
        if entry.name.startswith(TMP_PREFIX) or (VERSION_RE.match(entry.name) and entry.name != current):
            out.append(entry)
    return out


def clean_leftovers(settings: Settings) -> int:
    """Remove what killed writers left behind; call only under ``store_lock``. Returns entries removed."""
    removed = 0
    root = days_dir(settings)
    if not root.is_dir():
        return 0
    for day_folder in root.iterdir():
        if day_folder.name.startswith(TMP_PREFIX):
            shutil.rmtree(day_folder, ignore_errors=True)
            removed += 1
            continue
        if not day_folder.is_dir():
            continue
        for entry in leftovers(day_folder):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        if read_pointer(day_folder) is None and not any(day_folder.iterdir()):
            day_folder.rmdir()
    for folder in (ledger_dir(settings), quarantine_dir(settings), store_root(settings)):
        if folder.is_dir():
            for entry in folder.glob(f"{TMP_PREFIX}*"):
                if entry.is_file():
                    entry.unlink(missing_ok=True)
                    removed += 1
    return removed
