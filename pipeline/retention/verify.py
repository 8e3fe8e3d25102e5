"""Verify the retained store against its manifests: every data file's SHA-256 and row count,
files missing or unexpected, and every ingested source's rows still present in its days.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ..config import Settings
from ..errors import Location, StoreError
from .ingest import ingested
from ..files import sha256_file
from .layout import DAY_RE, MANIFEST, POINTER, TMP_PREFIX, days_dir, leftovers, read_pointer, write_json_atomic
from .purge import purged_days


@dataclass(frozen=True)
class Problem:
    kind: str      # altered | missing | unexpected | rows | manifest
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    partitions: int
    files: int
    rows: int
    problems: tuple[Problem, ...]
    leftovers: tuple[str, ...]     # remains of interrupted writes, never read; the next ingest removes them

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_partition(folder: Path, problems: list[Problem]) -> tuple[int, int, dict[str, int]]:
    """Check one day folder; returns (files, rows, source sha256 → rows)."""
    version = read_pointer(folder)
    assert version is not None
    vdir = folder / version
    try:
        manifest = json.loads((vdir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(Problem("missing", str(vdir / MANIFEST), f"manifest of the published version {version}"))
        return 0, 0, {}
    except ValueError as exc:
        problems.append(Problem("altered", str(vdir / MANIFEST), f"manifest is not valid JSON ({exc})"))
        return 0, 0, {}
    listed = {f["name"] for f in manifest["files"]}
    rows = 0
    for entry in manifest["files"]:
        path = vdir / entry["name"]
        if not path.exists():
            problems.append(Problem("missing", str(path), f"listed in the manifest with {entry['rows']} rows"))
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(Problem("altered", str(path), "SHA-256 differs from the manifest"))
        try:
            actual = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # an altered file may not even parse
            problems.append(Problem("altered", str(path), f"not readable as Parquet ({exc})"))
            continue
        if actual != entry["rows"]:
            problems.append(Problem("rows", str(path), f"{actual} rows, manifest says {entry['rows']}"))
        rows += actual
    if sum(f["rows"] for f in manifest["files"]) != manifest["rows"] or \
            sum(s["rows"] for s in manifest["sources"]) != manifest["rows"]:
        problems.append(Problem("manifest", str(vdir / MANIFEST),
                                "rows of files, rows of sources and total rows disagree"))
    for entry in vdir.iterdir():
        if entry.name != MANIFEST and entry.name not in listed:
            problems.append(Problem("unexpected", str(entry), "not listed in the manifest"))
    return len(listed), rows, {s["sha256"]: int(s["rows"]) for s in manifest["sources"]}


def verify(settings: Settings) -> VerifyReport:
    """Check everything; name every problem (one per file), never stop at the first."""
    problems: list[Problem] = []
    stale: list[str] = []
    present: dict[date, dict[str, int]] = {}
    files = rows = 0
    root = days_dir(settings)
    entries = sorted(root.iterdir()) if root.is_dir() else []
    for folder in entries:
        if folder.name.startswith(TMP_PREFIX):
            stale.append(str(folder))
            continue
        if not folder.is_dir() or not DAY_RE.match(folder.name):
            problems.append(Problem("unexpected", str(folder), "not a day partition"))
            continue
        stale.extend(str(p) for p in leftovers(folder))
        version = read_pointer(folder)
        known = {POINTER, version}
        for entry in folder.iterdir():
            if entry.name not in known and str(entry) not in stale:
                problems.append(Problem("unexpected", str(entry), "not part of the published version"))
        if version is None:
            continue
        if not (folder / version).is_dir():
            problems.append(Problem("missing", str(folder / version), "the version the pointer names"))
            continue
        n_files, n_rows, sources = _check_partition(folder, problems)
        files += n_files
        rows += n_rows
        present[date.fromisoformat(folder.name)] = sources

    purged = purged_days(settings)
    for sha, ledger_entry in sorted(ingested(settings).items()):
        for day_text, expected in ledger_entry.get("days", {}).items():
            day = date.fromisoformat(day_text)
            if day in purged:
                continue
            if day not in present:
                problems.append(Problem("missing", str(root / day_text),
                                        f"partition holding {expected} rows of {ledger_entry['file']} (not purged)"))
            elif present[day].get(sha) != expected:
                problems.append(Problem("rows", str(root / day_text),
                                        f"manifest lists {present[day].get(sha, 0)} rows of {ledger_entry['file']}, "
                                        f"{expected} were ingested"))
    return VerifyReport(len(present), files, rows, tuple(problems), tuple(stale))


# -- what a query reads: each file proven against its partition's manifest ---------------------------

VERIFIED_CACHE = ".verified.json"
_memo: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class FileCheck:
    """One data file checked against its manifest entry before a query reads it."""

    day: str
    version: str
    path: str
    sha256: str
    rows: int
    cached: bool            # the file's identity and times match a verification already done
    identity: tuple[int, ...]

    def record(self) -> dict[str, Any]:
        return {"day": self.day, "version": self.version, "file": Path(self.path).name, "sha256": self.sha256,
                "rows": self.rows, "checked": "cached" if self.cached else "hashed"}


class UnverifiedData(StoreError):
    """A file a query would read does not match its partition's manifest: the query is refused."""


def _identity(path: Path) -> tuple[int, ...]:
    # ctime changes on any write and on any change of mtime, so a file edited and its mtime put
    # back is still seen as changed; the inode catches a file replaced by another.
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _cache_path(settings: Settings) -> Path:
    return days_dir(settings).parent / VERIFIED_CACHE


def _load_cache(settings: Settings) -> dict[str, Any]:
    key = str(_cache_path(settings))
    if key not in _memo:
        try:
            _memo[key] = json.loads(_cache_path(settings).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            _memo[key] = {}
    return _memo[key]


def _save_cache(settings: Settings, cache: dict[str, Any]) -> None:
    try:
        write_json_atomic(_cache_path(settings), cache)
    except OSError:  # only a cache: the next query hashes again
        pass


_HINT = ("run `compliance logs verify` to list every damaged file, then restore the state folder (or that "
         "partition) from backup; nothing was exported, and the refusal is recorded in the audit log as query.failed")


def check_files(settings: Settings, parts: Sequence[Any]) -> list[FileCheck]:
    """Prove every data file of ``parts`` (Partition objects) against its manifest: SHA-256 and row
    count, a file unchanged since a verification (same inode, size, mtime and ctime) taken from the
    cache. Raises UnverifiedData naming the partition and file for the first that fails."""
    cache = _load_cache(settings)
    checks: list[FileCheck] = []
    changed = False
    for part in parts:
        day, version = part.day.isoformat(), part.folder.name
        for entry in part.manifest.get("files", []):
            path = part.folder / entry["name"]
            where = f"partition {day} (version {version})"
            try:
                ident = _identity(path)
            except FileNotFoundError:
                raise UnverifiedData(f"{where} is damaged: its data file {path.name}, listed in its manifest, "
                                     "is missing", location=Location(str(path)), hint=_HINT) from None
            known = cache.get(str(path))
            if known and tuple(known["identity"]) == ident and known["sha256"] == entry["sha256"] \
                    and known["rows"] == entry["rows"]:
                checks.append(FileCheck(day, version, str(path), entry["sha256"], int(entry["rows"]), True, ident))
                continue
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise UnverifiedData(f"{where} is damaged: its data file {path.name} was altered (its SHA-256 "
                                     "differs from the manifest's); the query was refused",
                                     location=Location(str(path)), hint=_HINT)
            try:
                rows = pq.ParquetFile(path).metadata.num_rows
            except Exception as exc:  # the manifest's hash matched but the file does not parse: the manifest lies
                raise UnverifiedData(f"{where} is damaged: its data file {path.name} is not readable as Parquet "
                                     f"({exc})", location=Location(str(path)), hint=_HINT) from None
            if rows != entry["rows"]:
                raise UnverifiedData(f"{where} is damaged: its data file {path.name} holds {rows} rows, its "
                                     f"manifest says {entry['rows']}; the query was refused",
                                     location=Location(str(path)), hint=_HINT)
            cache[str(path)] = {"identity": list(ident), "sha256": digest, "rows": rows}
            changed = True
            checks.append(FileCheck(day, version, str(path), digest, rows, False, ident))
    if changed:
        _save_cache(settings, cache)
    return checks


def still_unchanged(checks: Sequence[FileCheck]) -> None:
    """After reading: refuse if a verified file changed while the query read it."""
    for c in checks:
        try:
            same = _identity(Path(c.path)) == c.identity
        except FileNotFoundError:
            same = False
        if not same:
            raise UnverifiedData(f"partition {c.day} (version {c.version}): its data file {Path(c.path).name} "
                                 "changed while the query read it; the query was refused",
                                 location=Location(c.path), hint="run the query again; " + _HINT)
