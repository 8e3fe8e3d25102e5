"""Turn rule matches on a partition into hit rows: one per (rule, record), with subject and evidence.

A hit row is what the case store aggregates; its ``hit_key`` identifies the underlying event so that
scanning the same data again adds no hit (objects: the object version; logs: file and line).
"""

from __future__ import annotations

import functools

import orjson

import numpy as np
import pandas as pd

from ..normalize import normalize
from ..rules import model as m
from .evaluate import CompiledRules

HIT_COLUMNS = ["rule_id", "subject_type", "subject_id", "account_id", "event_time",
               "source_file", "source_line", "hit_key", "evidence", "context"]

# Fields of the matched record kept beside the evidence, so a reviewer (and the enforcement plan)
# sees what was requested or stored, not only the matched span.
CONTEXT_FIELDS = {"objects": ("bucket", "key", "etag", "size", "mime_type"),
                  "logs": ("domain", "uri", "client_ip", "method", "status"),
                  "streams": ("hub", "stream_key", "title")}

# Which field of a log record a case is about, by the rule's `subject:` (default client_ip).
LOG_SUBJECT_TYPES = {"client_ip": "client_ip", "domain": "domain", "account_id": "account"}


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="object") for c in HIT_COLUMNS})


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name].astype("string").fillna("").reset_index(drop=True)
    return pd.Series([""] * len(df), dtype="string")


def subjects(df: pd.DataFrame, source: str, rule: m.Rule) -> tuple[str, pd.Series]:
    """(subject type, subject id per row) for a rule's hits on this source."""
    if source == "objects":
        return "object", _col(df, "bucket") + "/" + _col(df, "key")
    if source == "streams":
        return "stream", _col(df, "hub") + "/" + _col(df, "stream_key")
    field = rule.subject or "client_ip"
    return LOG_SUBJECT_TYPES.get(field, field), _col(df, field)


def event_times(df: pd.DataFrame, source: str) -> pd.Series:
    name = {"objects": "put_time", "logs": "ts", "streams": "started_at"}[source]
    col = df[name] if name in df.columns else pd.Series([pd.NaT] * len(df))
    return pd.to_datetime(col, utc=True).reset_index(drop=True)


def hit_keys(df: pd.DataFrame, source: str) -> pd.Series:
    if source == "objects":
        # the object version: re-listing the same object in another inventory is the same event
        return _col(df, "bucket") + "/" + _col(df, "key") + "@" + _col(df, "etag")
    if source == "streams":
        return _col(df, "hub") + "/" + _col(df, "stream_key") + "@" + event_times(df, source).astype("string").fillna("")
    return _col(df, "source_file") + ":" + _col(df, "source_line")


def record_hits(compiled: CompiledRules, df: pd.DataFrame) -> pd.DataFrame:
    """Evaluate every record rule of ``compiled`` on ``df``; one row per (rule, matching record)."""
    if df.empty:
        return empty_hits()
    df = df.reset_index(drop=True)
    frames = []
    times = keys = None
    for rule, mask, evidence in compiled.evaluate(df):
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        if times is None:
            times, keys = event_times(df, compiled.source), hit_keys(df, compiled.source)
        assert keys is not None
        stype, sid = subjects(df, compiled.source, rule)
        by_row = _evidence_by_row(evidence)
        frames.append(pd.DataFrame({
            "rule_id": rule.id,
            "subject_type": stype,
            "subject_id": sid.iloc[rows].to_numpy(),
            "account_id": _col(df, "account_id").iloc[rows].to_numpy(),
            "event_time": times.iloc[rows].to_numpy(),
            "source_file": _col(df, "source_file").iloc[rows].to_numpy(),
            "source_line": pd.to_numeric(df["source_line"], errors="coerce").iloc[rows].to_numpy()
            if "source_line" in df.columns else None,
            "hit_key": keys.iloc[rows].to_numpy(),
            "evidence": [by_row.get(int(r), "[]") for r in rows],
            "context": _context(df, compiled.source, rows),
        }))
    return pd.concat(frames, ignore_index=True) if frames else empty_hits()


def _context(df: pd.DataFrame, source: str, rows: np.ndarray) -> list[str]:
    cols = [c for c in CONTEXT_FIELDS.get(source, ()) if c in df.columns]
    sub = df.iloc[rows][cols]
    out = []
    for rec in sub.to_dict("records"):
        out.append(orjson.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()
                                 if v is not None and not pd.isna(v)}).decode())
    return out


def _evidence_by_row(ev: pd.DataFrame) -> dict[int, str]:
    """Leaf evidence grouped per row, as a JSON list of matches."""
    out: dict[int, list[dict[str, object]]] = {}
    if ev.empty:
        return {}
    starts, ends = ev["start"].tolist(), ev["end"].tolist()
    for i, (row, fld, kind, pattern, text) in enumerate(zip(ev["row"].tolist(), ev["field"].tolist(),
                                                            ev["kind"].tolist(), ev["pattern"].tolist(),
                                                            ev["text"].tolist())):
        item: dict[str, object] = {"field": fld, "kind": kind, "pattern": pattern, "text": text}
        if starts[i] is not None and not pd.isna(starts[i]):
            item["span"] = [int(starts[i]), int(ends[i])]
        if kind == "keywords":
            # the automaton matched the normalized pattern, so that is the normalized form of the span
            item["normalized"] = _normalized(pattern)
        out.setdefault(int(row), []).append(item)
    return {r: orjson.dumps(items).decode() for r, items in out.items()}


@functools.lru_cache(maxsize=65536)
def _normalized(pattern: str) -> str:
    return normalize(pattern)
