"""Bindings: which account owns which bucket, CDN domain and live-stream hub (CSV or JSONL).

Columns: account_id, resource_type (bucket | domain | hub), resource, and optionally
verified_entity (the account's verified legal name), declared_filing (the ICP number the
customer declared) and origin_bucket (for a domain: the bucket it serves, so that objects can be
attributed to a site). Used to attribute log lines and streams to accounts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from ..errors import Location, SourceError
from .base import expand, open_bytes, reading_encoding

COLUMNS = ["account_id", "resource_type", "resource", "verified_entity", "declared_filing", "origin_bucket"]
RESOURCE_TYPES = ("bucket", "domain", "hub")


def read_bindings(path: str, fmt: str) -> pd.DataFrame:
    """All bindings of one file; a row that names no account or resource is an error with its line."""
    data = open_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"bindings file is not UTF-8 (byte {exc.start})", location=Location(path)) from None
    if fmt == "csv":
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        first_line = 2
    elif fmt == "jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise SourceError(f"not JSON: {exc}", location=Location(path, n)) from None
        df = pd.DataFrame(rows, dtype=str)
        first_line = 1
    else:
        raise SourceError(f"unknown bindings format {fmt!r}", hint="valid formats: csv, jsonl")
    missing = [c for c in COLUMNS[:3] if c not in df.columns]
    if missing:
        raise SourceError(f"bindings file lacks column(s) {', '.join(missing)}", location=Location(path, 1),
                          hint=f"columns: {', '.join(COLUMNS)}")
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df[COLUMNS].fillna("").astype(str)
    bad = df[(df["account_id"] == "") | (df["resource"] == "") | ~df["resource_type"].isin(RESOURCE_TYPES)]
    if len(bad):
        n = int(bad.index[0]) + first_line
        raise SourceError("binding without account, resource or a valid resource_type",
                          location=Location(path, n), hint=f"resource_type is one of {', '.join(RESOURCE_TYPES)}")
    df["resource"] = df["resource"].str.strip().str.lower().where(df["resource_type"] == "domain", df["resource"])
    return df.reset_index(drop=True)


def owners(bindings: pd.DataFrame, resource_type: str) -> dict[str, str]:
    """resource → account_id for one resource type (a resource bound twice keeps its first owner)."""
    sel = bindings[bindings["resource_type"] == resource_type].drop_duplicates("resource")
    return dict(zip(sel["resource"], sel["account_id"]))


def load_bindings(entries: Iterable[Any], resolve: Callable[[str], str]) -> pd.DataFrame:
    """Every binding of the config's ``sources.bindings`` entries, in one frame."""
    frames = []
    for e in entries:
        with reading_encoding(getattr(e, "encoding", None)):
            frames += [read_bindings(f, e.format) for f in expand(resolve(e.path))]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)
