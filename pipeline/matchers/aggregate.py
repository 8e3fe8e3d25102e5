"""Aggregate rules: count, distinct count or sum per group within a time window.

Work splits in two so that files can be scanned in parallel: each task reduces its matching rows
to *partials* per (group, sub-bucket) — a bucket is a quarter of the window, to the millisecond (a
whole UTC day for windows of a whole number of days) — and the client combines the partials of all
files exactly, then evaluates every window of four consecutive sub-buckets. A burst anywhere inside
one window's length, less a quarter, is therefore always caught, whatever the file boundaries (for
windows of whole days: a burst inside one UTC day); tests/test_aggregate.py holds the property. Consecutive
windows over the threshold form one episode, which is one hit of the case.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..rules import model as m

SAMPLE_LINES = 5       # evidence lines kept per (group, bucket)
DAY = 86400
MS = 1000


def sub_buckets(agg: m.Aggregate) -> tuple[int, int]:
    """(bucket length in milliseconds, buckets per window)."""
    if agg.window_seconds >= DAY and agg.window_seconds % DAY == 0:
        return agg.window_seconds * MS, 1
    # milliseconds, so that a quarter is exact for any window a rule can name (1s, 61s, ...)
    return agg.window_seconds * MS // 4, 4


def partials(rule: m.Rule, df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """Reduce one partition's rows selected by ``mask`` to per-(group, bucket) partials.

    Columns: the group fields, bucket, value and samples — for counts and sums one row per (group,
    bucket) whose samples is a JSON list of its first ``SAMPLE_LINES`` ``file:line``; for distinct
    counts one row per (group, bucket, value) whose samples is the ``file:line`` of its first row.
    Built with grouped built-in aggregations only: a scan calls it per batch and rule."""
    agg = rule.aggregate
    assert agg is not None
    groups = list(agg.group_by)
    field = agg.distinct_field or agg.sum_field
    # only the columns used, and only the selected rows: a batch carries every column and the raw line
    cols = list(dict.fromkeys(["ts", *groups, *([field] if field else []), "source_file", "source_line"]))
    keep = np.asarray(mask, dtype=bool)
    keep = keep & df["ts"].notna().to_numpy(dtype=bool)
    for g in groups if agg.distinct_field is None else [*groups, agg.distinct_field]:
        keep &= df[g].notna().to_numpy(dtype=bool)
    if not keep.any():
        return pd.DataFrame(columns=[*groups, "bucket", "value", "samples"])
    sel = df[cols].take(np.flatnonzero(keep)).reset_index(drop=True)
    size, _ = sub_buckets(agg)
    millis = pd.to_datetime(sel["ts"], utc=True).dt.as_unit("ms").astype("int64")
    sel["bucket"] = (millis // size).astype("int64")
    keys = [*groups, "bucket"]
    if agg.distinct_field is not None:
        first = _first_rows([sel[c] for c in [*groups, agg.distinct_field]], sel["bucket"].to_numpy(dtype=np.int64))
        out = sel[first] if first is not None else sel.drop_duplicates([*keys, agg.distinct_field])
        out = out.rename(columns={agg.distinct_field: "value"})
        out = out.assign(value=out["value"].astype("string"), samples=_sample_text(out))
        return out[[*keys, "value", "samples"]].reset_index(drop=True)
    if agg.sum_field is not None:
        sel["value"] = pd.to_numeric(sel[agg.sum_field], errors="coerce").fillna(0).astype("float64")
    else:
        sel["value"] = 1.0
    g = sel.groupby(keys, sort=False)
    out = g["value"].sum().reset_index()
    # each group's first SAMPLE_LINES rows in row order, joined into one JSON list per group
    first = (g.cumcount() < SAMPLE_LINES).to_numpy()
    ids = g.ngroup().to_numpy()[first]          # 0.. in order of first appearance, as ``out``'s rows
    order = np.argsort(ids, kind="stable")
    encoded = pa.array(_sample_json(sel[first]).to_numpy(dtype=object)[order], type=pa.string())
    offsets = np.r_[0, np.cumsum(np.bincount(ids, minlength=len(out)))].astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), encoded), ", ")
    out["samples"] = ("[" + pd.Series(joined.to_numpy(zero_copy_only=False), dtype=object) + "]").to_numpy(dtype=object)
    return out


def _first_rows(columns: list[pd.Series], bucket: np.ndarray) -> np.ndarray | None:
    """Mask of the first row of each distinct (columns..., bucket), as ``drop_duplicates`` keeps
    them, over one integer per row (each column's codes and the bucket packed) rather than over the
    rows' values; None when the codes do not fit in one integer. The columns hold no missing value."""
    key = bucket - bucket.min()
    width = int(key.max()) + 1
    for col in columns:
        codes = pd.factorize(col)[0].astype(np.int64)
        distinct = int(codes.max()) + 1
        if width * distinct >= 2**62:
            return None
        key, width = key * distinct + codes, width * distinct
    return ~pd.Series(key).duplicated().to_numpy()


def _sample_text(sel: pd.DataFrame) -> pd.Series:
    """``file:line`` of each row, as text ("" for a missing part)."""
    return sel["source_file"].astype("string").fillna("") + ":" + sel["source_line"].astype("string").fillna("")


def _sample_json(sel: pd.DataFrame) -> pd.Series:
    """Each row's ``file:line`` as ``json.dumps`` writes it: the (few) distinct file names are
    encoded once; a line number needs no escaping, and JSON escapes character by character."""
    codes, names = pd.factorize(sel["source_file"].astype("string").fillna(""))
    quoted = np.array([json.dumps(str(n))[:-1] for n in names], dtype=object)  # '"name' without its closing quote
    line = sel["source_line"].astype("string").fillna("").to_numpy(dtype=object)
    return pd.Series(quoted[codes] + ":" + line + '"', index=sel.index, dtype=object)


def evaluate(rule: m.Rule, parts: pd.DataFrame) -> pd.DataFrame:
    """Combine every file's partials and return one row per episode over the threshold.

    Columns: the group fields, window_start, window_end (UTC timestamps), value, threshold, samples.
    """
    agg = rule.aggregate
    assert agg is not None
    groups = list(agg.group_by)
    cols = [*groups, "window_start", "window_end", "value", "threshold", "samples"]
    if parts.empty:
        return pd.DataFrame(columns=cols)
    size, k = sub_buckets(agg)
    parts = parts.reset_index(drop=True)
    # every group as an integer code and every value as one, so that the windows are reduced over
    # integer columns: partials of distinct counts hold about a row per input line
    gid = parts.groupby(groups, sort=False).ngroup().to_numpy(dtype=np.int64)
    bucket = np.asarray(parts["bucket"], dtype=np.int64)
    if agg.distinct_field is not None:
        threshold = float(agg.distinct_gte or 0)
        # windows under the threshold matter only to a baseline (the median of every aligned window)
        at_least = 1 if agg.baseline_factor is not None else max(1, int(np.ceil(threshold)))
        windows = _distinct_per_window(gid, bucket, pd.factorize(parts["value"])[0], k, at_least)
    else:
        # the rows of one window in the order of the offsets, then of the partials: sums add up alike
        every = pd.concat([pd.DataFrame({"g": gid, "wstart": bucket - offset, "value": parts["value"]})
                           for offset in range(k)], ignore_index=True)
        windows = every.groupby(["g", "wstart"], sort=False)["value"].sum().reset_index()
        threshold = float(agg.count_gte if agg.count_gte is not None else agg.sum_gte or 0)
    keep = (windows["value"] >= threshold).to_numpy(dtype=bool)
    if agg.baseline_factor is not None:
        # the group's usual level: median over its aligned (non-overlapping) windows with traffic
        aligned = windows[windows["wstart"] % k == 0]
        baseline = windows["g"].map(aligned.groupby("g")["value"].median())
        keep = keep & (windows["value"] >= agg.baseline_factor * baseline).to_numpy(dtype=bool)
    over = windows[keep]
    if over.empty:
        return pd.DataFrame(columns=cols)
    # the first row of each group code, to read its values (codes number groups in order of first row)
    first_row = np.flatnonzero(np.r_[True, gid[1:] > np.maximum.accumulate(gid)[:-1]])
    named = parts[groups].iloc[first_row[over["g"].to_numpy()]].reset_index(drop=True)
    over = pd.concat([named, over.reset_index(drop=True)], axis=1)
    over = over.sort_values([*groups, "wstart"]).reset_index(drop=True)
    # episodes: runs of consecutive window starts within one group
    codes = over["g"].to_numpy(dtype=np.int64)
    new_group = np.r_[True, codes[1:] != codes[:-1]]
    starts = over["wstart"].to_numpy(dtype=np.int64)
    gap = np.r_[True, np.diff(starts) > 1]
    over["episode"] = np.cumsum(new_group | gap)
    ep = over.groupby("episode").agg(**{g: (g, "first") for g in groups}, g=("g", "first"),
                                     first=("wstart", "min"), last=("wstart", "max"), value=("value", "max"))
    # samples are read only from the partials of the episodes' groups and buckets
    inside = _inside_spans(gid, bucket, ep["g"].to_numpy(dtype=np.int64), ep["first"].to_numpy(dtype=np.int64),
                           ep["last"].to_numpy(dtype=np.int64) + k)
    # a (group, bucket) keeps SAMPLE_LINES samples, and each partial row holds at least one
    few = pd.DataFrame({"g": gid[inside], "b": bucket[inside]}).groupby(["g", "b"]).cumcount() < SAMPLE_LINES
    sample_map = _samples(parts.iloc[inside[few.to_numpy()]], groups, k)
    rows = []
    for r in ep.itertuples(index=False):
        key = tuple(getattr(r, g) for g in groups)
        samples: list[str] = []
        for b in range(int(r.first), int(r.last) + k):
            samples.extend(sample_map.get((*key, b), []))
        rows.append({**{g: getattr(r, g) for g in groups},
                     "window_start": pd.Timestamp(int(r.first) * size, unit="ms", tz="UTC"),
                     "window_end": pd.Timestamp((int(r.last) + k) * size, unit="ms", tz="UTC"),
                     "value": float(r.value), "threshold": threshold,
                     "samples": json.dumps(samples[:SAMPLE_LINES * 2])})
    return pd.DataFrame(rows, columns=cols)


def _distinct_per_window(gid: np.ndarray, bucket: np.ndarray, value: np.ndarray, k: int,
                         at_least: int = 1) -> pd.DataFrame:
    """Distinct values per group and window start (columns g, wstart, value) of the windows holding
    at least ``at_least`` distinct values: a bucket b belongs to the windows starting at b - offset,
    offset < k.

    Group, value and bucket codes are packed into one integer when they fit and sorted: a value's
    buckets in a group are then consecutive, each covers the windows [b - k + 1, b] not covered by
    the value's previous bucket, and the count of every window follows from one running sum over
    where those ranges start and end (no row per window and value, no hash of rows)."""
    value = value.astype(np.int64) + 1                       # a missing value's code -1 is a value too
    lo = int(bucket.min()) - (k - 1)                         # every window start is >= lo
    span, groups, values = int(bucket.max()) - lo + 2, int(gid.max()) + 1, int(value.max()) + 1
    if groups * span * values >= 2**62:
        base = pd.DataFrame({"g": gid, "b": bucket, "v": value}).drop_duplicates()
        every = pd.concat([pd.DataFrame({"g": base["g"], "wstart": base["b"] - offset, "v": base["v"]})
                           for offset in range(k)], ignore_index=True)
        out = every.drop_duplicates().groupby(["g", "wstart"], sort=False).size().rename("value").reset_index()
        return out[out["value"] >= at_least].reset_index(drop=True)
    key = np.sort((gid * values + value) * span + (bucket - lo))     # by group, value, bucket
    key = key[np.r_[True, key[1:] != key[:-1]]]   # a sort, not np.unique's hash (slow on spread-out codes)
    of_value, b = key // span, key % span
    first = np.r_[True, of_value[1:] != of_value[:-1]]
    start = b - (k - 1)
    start[~first] = np.maximum(start[~first], b[:-1][~first[1:]] + 1)
    g = of_value // values
    # +1 where a value's range of windows starts, -1 after it ends; a group's ranges all end
    # inside its own stretch of positions (span leaves room for b + 1)
    where = np.concatenate([g * span + start, g * span + b + 1])
    step = np.concatenate([np.ones(len(b), np.int64), -np.ones(len(b), np.int64)])
    order = np.argsort(where, kind="stable")
    where, running = where[order], np.cumsum(step[order])
    last = np.r_[where[1:] != where[:-1], True]           # the count from each position on
    at, count = where[last], running[last]
    length = np.diff(at, append=at[-1])                     # positions until the next change
    keep = (count >= at_least) & (count > 0)
    at, count, length = at[keep], count[keep], length[keep]
    window = np.repeat(at - np.cumsum(np.r_[0, length[:-1]]), length) + np.arange(int(length.sum()))
    return pd.DataFrame({"g": window // span, "wstart": window % span + lo,
                         "value": np.repeat(count, length).astype(np.int64)})


def _inside_spans(gid: np.ndarray, bucket: np.ndarray, span_g: np.ndarray, begin: np.ndarray,
                  end: np.ndarray) -> np.ndarray:
    """Positions, in order, of the rows whose bucket lies in [begin, end) of a span of their group.

    (group, bucket) is packed into one integer over the spans sorted by start: a row is inside a
    span when the latest span starting at or before it ends after it (the running maximum of the
    ends, as spans of one group may overlap)."""
    lo = min(int(bucket.min()), int(begin.min()))
    width = max(int(bucket.max()), int(end.max())) - lo + 1
    if (int(max(gid.max(), span_g.max())) + 1) * width >= 2**62:
        rows = pd.DataFrame({"g": gid, "b": bucket, "pos": np.arange(len(gid))}).merge(
            pd.DataFrame({"g": span_g, "first": begin, "end": end}), on="g")
        return np.unique(rows["pos"][(rows["b"] >= rows["first"]) & (rows["b"] < rows["end"])].to_numpy())
    starts = span_g * width + (begin - lo)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate((span_g * width + (end - lo))[order])
    at = gid * width + (bucket - lo)
    latest = np.searchsorted(starts, at, side="right") - 1
    hit = latest >= 0
    hit[hit] = at[hit] < ends[latest[hit]]
    return np.flatnonzero(hit)


def _samples(parts: pd.DataFrame, groups: list[str], k: int) -> dict[tuple[object, ...], list[str]]:
    out: dict[tuple[object, ...], list[str]] = {}
    for rec in parts[[*groups, "bucket", "samples"]].itertuples(index=False):
        vals = json.loads(rec[-1]) if isinstance(rec[-1], str) and rec[-1].startswith("[") else [rec[-1]]
        lst = out.setdefault(tuple(rec[:-1]), [])
        if len(lst) < SAMPLE_LINES:
            lst.extend(vals[: SAMPLE_LINES - len(lst)])
    return out


def aggregate_groups(rule: m.Rule, df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """Both steps over one frame (inline rule tests, small inputs)."""
    return evaluate(rule, partials(rule, df, mask))
