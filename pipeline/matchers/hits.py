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


def record_hits(compiled: CompiledRules, df: pd.DataFrame,
                results: list[tuple[m.Rule, np.ndarray, pd.DataFrame]] | None = None) -> pd.DataFrame:
    """One row per (record rule, matching record) of ``df``; ``results`` reuses an evaluation already made."""
    if df.empty:
        return empty_hits()
    df = df.reset_index(drop=True)
    frames = []
    times = keys = None
    for rule, mask, evidence in (compiled.evaluate(df) if results is None else results):
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
    # column-wise to Python values: a per-row pandas record costs ~5 µs per field
    values = [_py_values(df[c].iloc[rows]) for c in cols]
    return [orjson.dumps({k: v for k, v in zip(cols, rec) if v is not None}).decode()
            for rec in zip(*values)] if cols else ["{}"] * len(rows)


def _py_values(col: pd.Series) -> list[object]:
    """A column as Python scalars, None where missing (NA, NaN, NaT)."""
    values = col.tolist()
    missing = col.isna().to_numpy(dtype=bool)
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            values[i] = None
    return values


def _evidence_by_row(ev: pd.DataFrame) -> dict[int, str]:
    """Leaf evidence grouped per row, as a JSON list of matches.

    Written as JSON text piece by piece, byte for byte what ``orjson.dumps`` gives for the list
    of dicts: a partition can hold 100k hits, and a dict per hit cost more than the scan did.
    """
    if ev.empty:
        return {}
    heads: dict[tuple[str, str, str], tuple[str, str]] = {}
    spans = ev["start"].notna().to_numpy(dtype=bool) & ev["end"].notna().to_numpy(dtype=bool)
    out: dict[int, list[str]] = {}
    for row, fld, kind, pattern, text, has_span, start, end in zip(
            ev["row"].tolist(), ev["field"].tolist(), ev["kind"].tolist(), ev["pattern"].tolist(),
            ev["text"].tolist(), spans.tolist(), ev["start"].tolist(), ev["end"].tolist()):
        parts = heads.get((fld, kind, pattern))
        if parts is None:
            head = (f'{{"field":{_json(fld)},"kind":{_json(kind)},"pattern":{_json(pattern)},"text":')
            # the automaton matched the normalized pattern, so that is the normalized form of the span
            tail = f',"normalized":{_json(_normalized(pattern))}}}' if kind == "keywords" else "}"
            parts = heads[(fld, kind, pattern)] = (head, tail)
        span = f',"span":[{int(start)},{int(end)}]' if has_span else ""
        out.setdefault(int(row), []).append(parts[0] + _json(text) + span + parts[1])
    return {r: "[" + ",".join(items) + "]" for r, items in out.items()}


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=65536)
def _normalized(pattern: str) -> str:
    return normalize(pattern)
