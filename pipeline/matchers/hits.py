"""Turn rule matches on a partition into hit rows: one per (rule, record), with subject and evidence.

A hit row is what the case store aggregates; its ``hit_key`` identifies the underlying event so that
scanning the same data again adds no hit (objects: the object version; logs: file and line).
"""

from __future__ import annotations


import orjson

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..normalize import normalize_many
from ..rules import model as m
from .evaluate import CompiledRules

# The dtype a list of str becomes in a DataFrame: the JSON columns are built in Arrow and
# handed over as that dtype, as if they had been lists.
_TEXT = pd.Series([""]).dtype

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
    matched = [(rule, rows, evidence) for rule, mask, evidence in
               (compiled.evaluate(df) if results is None else results) if len(rows := np.flatnonzero(mask))]
    if not matched:
        return empty_hits()
    # subjects, keys and times only of the records some rule matched: usually a small share
    union = matched[0][1] if len(matched) == 1 else np.unique(np.concatenate([rows for _, rows, _ in matched]))
    sub = df[_needed(df, compiled.source, [rule for rule, _, _ in matched])].iloc[union].reset_index(drop=True)
    times, keys = event_times(sub, compiled.source), hit_keys(sub, compiled.source)
    accounts, files = _col(sub, "account_id"), _col(sub, "source_file")
    lines = pd.to_numeric(sub["source_line"], errors="coerce") if "source_line" in sub.columns else None
    frames = []
    for rule, rows, evidence in matched:
        at = np.searchsorted(union, rows)
        stype, sid = subjects(sub, compiled.source, rule)
        frames.append(pd.DataFrame({
            "rule_id": rule.id,
            "subject_type": stype,
            "subject_id": _as_text(sid, at),
            "account_id": _as_text(accounts, at),
            "event_time": _as_times(times, at),
            "source_file": _as_text(files, at),
            "source_line": lines.iloc[at].to_numpy() if lines is not None else None,
            "hit_key": _as_text(keys, at),
            "evidence": pd.array(_evidence_for(evidence, rows), dtype=_TEXT),
            "context": pd.array(_context(sub, compiled.source, at), dtype=_TEXT),
        }))
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True) if frames else empty_hits()


# What a hit row reads of its record besides the context fields, per source (logs add the rules' subjects).
_HIT_FIELDS = {"objects": ("bucket", "key", "etag", "put_time"), "logs": ("ts", "client_ip"),
               "streams": ("hub", "stream_key", "started_at")}


def _needed(df: pd.DataFrame, source: str, rules: list[m.Rule]) -> list[str]:
    """The columns of ``df`` the hit rows read: only those are taken for the matched records."""
    names = {"account_id", "source_file", "source_line", *_HIT_FIELDS.get(source, ()),
             *CONTEXT_FIELDS.get(source, ()), *(rule.subject for rule in rules if rule.subject)}
    return [c for c in df.columns if c in names]


def _as_text(col: pd.Series, at: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``col``'s values at ``at`` (never missing: see ``_col``) as the dtype a list of str becomes,
    taken in Arrow rather than through a Python string per hit."""
    return col.iloc[at].astype(_TEXT).array


def _as_times(col: pd.Series, at: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """``col``'s times at ``at``, typed as pandas infers them from Timestamp objects: the column's
    own dtype, except when every one is NaT (then naive, in seconds)."""
    taken = col.iloc[at]
    if isinstance(taken.dtype, pd.DatetimeTZDtype):
        if taken.notna().any():
            return taken.array
        return np.full(len(taken), np.datetime64("NaT", "s"))
    return taken.to_numpy()


def _context(df: pd.DataFrame, source: str, rows: np.ndarray) -> pa.Array:
    """The context JSON object of each of ``rows``, byte for byte what ``orjson.dumps`` gives for
    the dict of its non-missing context fields, written column-wise: each distinct value is
    dumped once and Arrow joins the pieces (a dict per row cost more than the scan did)."""
    taken = [(c, df[c].iloc[rows]) for c in CONTEXT_FIELDS.get(source, ()) if c in df.columns]
    # a field missing from every one of the rows adds nothing to any object
    taken = [(c, col) for c, col in taken if col.notna().any()]
    if not taken or not len(rows):
        return pa.array(["{}"] * len(rows), pa.large_string())
    pieces = [_json_pieces(col, f"{_json(c)}:") for c, col in taken]
    # a missing value is a null piece, which the join skips: the key is left out, as orjson would
    body = pc.binary_join_element_wise(*pieces, _s(","), null_handling="skip")
    return _concat("{", body, "}")


# What orjson escapes in a string: the quote, the backslash and the C0 controls; nothing else.
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'


def _json_pieces(col: pd.Series, prefix: str) -> pa.Array:
    """``prefix`` + the JSON of each value, null where the value is missing (NA, NaN, NaT)."""
    if isinstance(col.dtype, pd.StringDtype):
        # text needing no escapes (nearly all of it) is quoted by Arrow; orjson writes the rest
        arr = pa.array(col.array, type=pa.large_string())
        quoted = _concat(prefix + '"', arr, '"')
        needs = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_ESCAPE), False)
        if not pc.any(needs).as_py():
            return quoted
        escaped = [prefix + _json(v) for v in arr.filter(needs).to_pylist()]
        return pc.replace_with_mask(quoted, needs, pa.array(escaped, pa.large_string()))
    codes, uniques = pd.factorize(col)
    values = _py_values(pd.Series(uniques))
    dumped = pa.array([prefix + _json(v) for v in values], type=pa.large_string())
    return dumped.take(pa.array(codes, mask=codes < 0))


def _py_values(col: pd.Series) -> list[object]:
    """A column as Python scalars, None where missing (NA, NaN, NaT)."""
    values = col.tolist()
    missing = col.isna().to_numpy(dtype=bool)
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            values[i] = None
    return values


def _evidence_for(ev: pd.DataFrame, rows: np.ndarray) -> pa.Array:
    """Each of ``rows``' leaf evidence as a JSON list of matches ("[]" for a row without any).

    Written as JSON text piece by piece, byte for byte what ``orjson.dumps`` gives for the list
    of dicts: a partition can hold 100k hits, and a dict per hit cost more than the scan did.
    Each distinct head (field, kind, pattern) and text is dumped once; Arrow joins the pieces.
    """
    if ev.empty or not len(rows):
        return pa.array(["[]"] * len(rows), pa.large_string())
    ev_row = ev["row"].to_numpy(dtype=np.int64)
    if (np.diff(ev_row) < 0).any():  # keyword evidence of one field comes sorted already
        order = np.argsort(ev_row, kind="stable")   # a row's matches keep their order
        ev_row = ev_row[order]
        ev = ev.iloc[order]

    # one code per distinct (field, kind, pattern)
    parts = [(codes, uniques.tolist()) for codes, uniques in
             (pd.factorize(ev[c], use_na_sentinel=False) for c in ("field", "kind", "pattern"))]
    sizes = [len(uniques) for _, uniques in parts]
    head_ids, head_of = np.unique(np.ravel_multi_index([codes for codes, _ in parts], sizes), return_inverse=True)
    (fields, kinds, patterns), dumped = np.unravel_index(head_ids, sizes), [[_json(v) for v in u] for _, u in parts]
    heads, tails = [], []
    # the normalized form of each keyword pattern, normalized in one batch the first time it is seen
    keyword = {k for k, kind in enumerate(parts[1][1]) if kind == "keywords"}
    _normalize_new([parts[2][1][p] for k, p in zip(kinds.tolist(), patterns.tolist()) if k in keyword])
    for f, k, p in zip(fields.tolist(), kinds.tolist(), patterns.tolist()):
        heads.append(f'{{"field":{dumped[0][f]},"kind":{dumped[1][k]},"pattern":{dumped[2][p]},"text":')
        # the automaton matched the normalized pattern, so that is the normalized form of the span
        tails.append(f',"normalized":{_json(_normalized(parts[2][1][p]))}}}' if parts[1][1][k] == "keywords" else "}")
    index = pa.array(head_of.astype(np.int64))
    text_col = ev["text"]
    if isinstance(text_col.dtype, pd.StringDtype) and not text_col.isna().any():
        texts = _json_pieces(text_col, "")  # quoted in Arrow, one piece per match
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
    else:
        text_codes, text_uniques = pd.factorize(text_col, use_na_sentinel=False)
        texts = pa.array([_json(t) for t in text_uniques.tolist()],
                         type=pa.large_string()).take(pa.array(text_codes.astype(np.int64)))

    spans = ev["start"].notna().to_numpy(dtype=bool) & ev["end"].notna().to_numpy(dtype=bool)
    if not spans.any():
        span = pa.nulls(len(ev), pa.large_string()).fill_null(_s(""))
    else:
        every = spans.all()
        start = pd.to_numeric(ev["start"] if every else ev["start"][spans]).to_numpy().astype(np.int64)
        end = pd.to_numeric(ev["end"] if every else ev["end"][spans]).to_numpy().astype(np.int64)
        with_span = _concat(',"span":[', pa.array(start).cast(pa.large_string()), ",",
                            pa.array(end).cast(pa.large_string()), "]")
        span = with_span
        if not every:
            where = np.full(len(ev), -1, dtype=np.int64)
            where[spans] = np.arange(int(spans.sum()))
            span = with_span.take(pa.array(where, mask=where < 0)).fill_null(_s(""))
    items = _concat(pa.array(heads, pa.large_string()).take(index),
                    texts,
                    span, pa.array(tails, pa.large_string()).take(index))

    firsts = np.flatnonzero(np.concatenate(([True], ev_row[1:] != ev_row[:-1])))
    offsets = np.append(firsts, len(ev_row)).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), items), _s(","))
    lists = _concat("[", joined, "]")
    have = ev_row[firsts]
    if len(have) == len(rows) and (have == rows).all():  # every row has evidence, in this order
        return lists
    at = np.minimum(np.searchsorted(have, rows), len(have) - 1)
    found = have[at] == rows
    return lists.take(pa.array(at, mask=~found)).fill_null(_s("[]"))


def _s(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _concat(*parts: str | pa.Array) -> pa.Array:
    """Element-wise concatenation of large-string arrays and constant strings."""
    return pc.binary_join_element_wise(*(_s(p) if isinstance(p, str) else p for p in parts), _s(""))


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


# pattern → its normalized form (patterns are the rules' own: a bounded set per process)
_NORMALIZED: dict[str, str] = {}


def _normalize_new(patterns: list[str]) -> None:
    fresh = list({p for p in patterns if p not in _NORMALIZED})
    if len(_NORMALIZED) + len(fresh) > 1 << 18:  # a process seeing many rule sets: start again
        _NORMALIZED.clear()
    _NORMALIZED.update(zip(fresh, normalize_many(fresh)))


def _normalized(pattern: str) -> str:
    if pattern not in _NORMALIZED:
        _normalize_new([pattern])
    return _NORMALIZED[pattern]
