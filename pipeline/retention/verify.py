"""Verify the retained store against its manifests: every data file's SHA-256 and row count,
files missing or unexpected, and every ingested source's rows still present in its days.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from ..config import Settings
from .ingest import ingested
from ..files import sha256_file
from .layout import DAY_RE, MANIFEST, POINTER, TMP_PREFIX, days_dir, leftovers, read_pointer
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
