"""Folding a run's hits into cases, set-based: a constant number of SQL statements per run, not per case.

The hits are prepared column-wise (case ids, first and last event, the account, the evidence JSON of
each case), staged into temporary tables (``COPY`` on PostgreSQL), and SQL decides which cases are
new, updated, reopened or unchanged, then writes cases, hit keys, runs and history in bulk. Only the
evidence of known cases that gained hits is merged in Python (it is JSON, bounded to ``max_evidence``).

What holds, as when cases were folded one at a time:
- a case id is a digest of rule, subject type and subject (``ids.case_id``);
- ``case_hits`` is keyed by the event, so the same hits folded again add nothing and the hit count
  is the number of distinct events;
- a resolved case opens again on a new event; one the scan itself resolved (``auto_resolved``) also
  opens again when its known events come back, one a reviewer resolved does not; a dismissed case
  only records new hits;
- everything is written inside the caller's transaction: a process killed at any point leaves the
  store as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..faults import checkpoint
from ..rules.model import RuleSet
from .db import Database

# Staged columns of a case (fold_cases); cases takes them as they are.
CASE_COLUMNS = ("case_id", "rule_id", "rule_hash", "rule_title", "clause", "law", "category", "severity", "source",
                "subject_type", "subject_id", "account_id", "first_event", "last_event", "evidence")


@dataclass(frozen=True)
class ApplyResult:
    new: int
    updated: int      # known cases that gained hits in this run, or were reopened by it
    unchanged: int    # known cases seen again with no new hit
    reopened: int = 0


@dataclass
class Prepared:
    """A run's hits, one row per case, and the evidence items each case would get."""

    cases: pd.DataFrame           # CASE_COLUMNS
    hit_case: list[str]           # the distinct (case, hit key) pairs
    hit_key: list[str]
    item_case: np.ndarray         # case position of each evidence item, in case order
    item_key: list[str]
    items: list[str]              # each item's JSON object


def case_ids(hits: pd.DataFrame) -> pd.Series:
    """``ids.case_id`` of each hit row, one digest per distinct (rule, subject type, subject)."""
    from .ids import case_id

    if hits.empty:
        return pd.Series([], dtype=object)
    keys = pd.MultiIndex.from_arrays([hits["rule_id"].astype(str), hits["subject_type"].astype(str),
                                      hits["subject_id"].astype(str)])
    codes, uniques = pd.factorize(keys)
    digests = np.array([case_id(r, t, s) for r, t, s in uniques], dtype=object)
    return pd.Series(digests[codes], index=hits.index)


def prepare(hits: pd.DataFrame, rules: RuleSet, max_evidence: int) -> Prepared:
    """The staged rows of a run's hits (pipeline.matchers.hits.HIT_COLUMNS), computed by column."""
    times = pd.to_datetime(hits["event_time"].reset_index(drop=True), utc=True, errors="coerce")
    df = pd.DataFrame({
        "case_id": case_ids(hits).to_numpy(),
        "rule_id": hits["rule_id"].astype(str).to_numpy(),
        "subject_type": hits["subject_type"].astype(str).to_numpy(),
        "subject_id": hits["subject_id"].astype(str).to_numpy(),
        "event_time": times,
        "hit_key": hits["hit_key"].astype(str).to_numpy(),
        "pos": np.arange(len(hits)),
    })
    # a case's hits in event order, each event once (the first row of it)
    df = df.sort_values(["case_id", "event_time", "hit_key"], kind="stable", na_position="last")
    df = df.drop_duplicates(["case_id", "hit_key"]).reset_index(drop=True)
    cid = df["case_id"].to_numpy()
    is_first = np.r_[True, cid[1:] != cid[:-1]]
    first = np.flatnonzero(is_first)
    case_of = np.cumsum(is_first) - 1
    rank = np.arange(len(df)) - first[case_of]

    heads = df.iloc[first].reset_index(drop=True)
    times = df.groupby(case_of)["event_time"].agg(["min", "max"])
    cases = pd.DataFrame({"case_id": heads["case_id"], "rule_id": heads["rule_id"]})
    by_rule = {rid: rules.by_id(rid) for rid in cases["rule_id"].unique()}
    for col, attr in (("rule_hash", "content_hash"), ("rule_title", "title"), ("clause", "clause"), ("law", "law"),
                      ("category", "category"), ("severity", "severity")):
        cases[col] = cases["rule_id"].map({rid: getattr(r, attr) for rid, r in by_rule.items()})
    cases["source"] = cases["rule_id"].map({rid: ",".join(r.sources) for rid, r in by_rule.items()})
    cases["subject_type"], cases["subject_id"] = heads["subject_type"], heads["subject_id"]
    cases["account_id"] = _accounts(hits, df, case_of, len(first))
    cases["first_event"] = iso_times(times["min"]).to_numpy(zero_copy_only=False)
    cases["last_event"] = iso_times(times["max"]).to_numpy(zero_copy_only=False)

    kept = np.flatnonzero(rank < max_evidence)
    items = _items(hits, df.iloc[kept])
    item_case = case_of[kept]
    offsets = np.searchsorted(item_case, np.arange(len(first) + 1)).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), items), _s(","))
    cases["evidence"] = _concat("[", joined, "]").to_numpy(zero_copy_only=False)
    cases = cases.astype(object).where(cases.notna(), None)
    return Prepared(cases, df["case_id"].tolist(), df["hit_key"].tolist(), item_case,
                    df["hit_key"].iloc[kept].tolist(), items.to_pylist())


def _accounts(hits: pd.DataFrame, df: pd.DataFrame, case_of: np.ndarray, n: int) -> np.ndarray:
    """Each case's most frequent non-empty account among its events (ties: the first in sorted order)."""
    out = np.full(n, None, dtype=object)
    acc = hits["account_id"].to_numpy(dtype=object)[df["pos"].to_numpy()]
    ok = np.array([isinstance(a, str) and a != "" for a in acc], dtype=bool)
    if not ok.any():
        return out
    counts = (pd.DataFrame({"case": case_of[ok], "account": acc[ok]})
              .groupby(["case", "account"]).size().rename("n").reset_index()
              .sort_values(["case", "n", "account"], ascending=[True, False, True], kind="stable")
              .drop_duplicates("case"))
    out[counts["case"].to_numpy()] = counts["account"].to_numpy()
    return out


def iso_times(times: pd.Series) -> pa.Array:
    """Each UTC time as ``pd.Timestamp.isoformat`` writes it (null where missing), built by column."""
    times = pd.Series(pd.to_datetime(times, utc=True)).reset_index(drop=True)
    if not len(times):
        return pa.array([], pa.large_string())
    missing = times.isna().to_numpy()
    ns = times.dt.tz_convert(None).to_numpy().astype("datetime64[ns]").view(np.int64)
    base = pa.array(times.dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("").to_numpy(dtype=object), pa.large_string())
    frac = np.where(missing, 0, ns % 1_000_000_000)
    text = np.full(len(times), "", dtype=object)
    micro, nano = (frac != 0) & (frac % 1000 == 0), frac % 1000 != 0
    if micro.any():
        text[micro] = [f".{f // 1000:06d}" for f in frac[micro].tolist()]
    if nano.any():
        text[nano] = [f".{f:09d}" for f in frac[nano].tolist()]
    out = _concat(base, pa.array(text, pa.large_string()), "+00:00")
    return pc.if_else(pa.array(missing), pa.nulls(len(times), pa.large_string()), out)


def _items(hits: pd.DataFrame, rows: pd.DataFrame) -> pa.Array:
    """The evidence item JSON of each of ``rows``: hit key, file, line, event time, the record's context
    fields and its matches, in that order (what a reviewer and the enforcement plan read)."""
    pos = rows["pos"].to_numpy()
    n = len(pos)
    if not n:
        return pa.array([], pa.large_string())

    def take(name: str) -> np.ndarray:
        return hits[name].to_numpy(dtype=object)[pos] if name in hits.columns else np.full(n, None, dtype=object)

    files = [None if _missing(f) else str(f) for f in take("source_file")]
    lines = [None if _missing(x) else int(x) for x in take("source_line")]
    times = iso_times(rows["event_time"])
    contexts = [c[1:-1] if isinstance(c, str) and len(c) > 2 else None for c in take("context")]
    matches = [m if isinstance(m, str) else _json(None if _missing(m) else m) for m in take("evidence")]
    key = _quoted(rows["hit_key"].tolist())
    file = _quoted(files)
    line = pc.fill_null(pa.array(lines, pa.int64()).cast(pa.large_string()), _s("null"))
    when = pc.fill_null(_concat('"', times, '"'), _s("null"))
    ctx = pc.fill_null(_concat(",", pa.array(contexts, pa.large_string())), _s(""))
    return _concat('{"hit_key":', key, ',"source_file":', file, ',"source_line":', line, ',"event_time":', when, ctx,
                   ',"matches":', pa.array(matches, pa.large_string()), "}")


def _quoted(values: list[str | None]) -> pa.Array:
    """Each value as a JSON string (null where missing); orjson only for the few that need escapes."""
    arr = pa.array(values, pa.large_string())
    quoted = _concat('"', arr, '"')
    needs = pc.fill_null(pc.match_substring_regex(arr, r'["\\\x00-\x1f]'), False)
    if pc.any(needs).as_py():
        escaped = [_json(v) for v in arr.filter(needs).to_pylist()]
        quoted = pc.replace_with_mask(quoted, needs, pa.array(escaped, pa.large_string()))
    return pc.fill_null(quoted, _s("null"))


def _missing(v: Any) -> bool:
    return v is None or (not isinstance(v, (str, bytes, list, dict)) and bool(pd.isna(v)))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _s(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _concat(*parts: str | pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*(_s(p) if isinstance(p, str) else p for p in parts), _s(""))


# -- the statements --------------------------------------------------------------------------

STAGE_DDL = (
    "CREATE TEMP TABLE fold_hits (case_id TEXT NOT NULL, hit_key TEXT NOT NULL)",
    "CREATE TEMP TABLE fold_cases (case_id TEXT PRIMARY KEY, rule_id TEXT, rule_hash TEXT, rule_title TEXT,"
    " clause TEXT, law TEXT, category TEXT, severity TEXT, source TEXT, subject_type TEXT, subject_id TEXT,"
    " account_id TEXT, first_event TEXT, last_event TEXT, evidence TEXT)",
)
# Each staged case with what the store knew of it and what this run does to it (outcome).
CLASSIFY = """
CREATE TEMP TABLE fold_state AS
SELECT x.*, CASE WHEN x.status_before IS NULL THEN 'new'
                 WHEN x.status_before = 'resolved' AND (x.added > 0 OR x.last_resolve = 'auto_resolved') THEN 'reopened'
                 WHEN x.added > 0 THEN 'updated' ELSE 'unchanged' END AS outcome
FROM (SELECT s.*, c.status AS status_before, c.rule_hash AS hash_before, COALESCE(a.added, 0) AS added,
             CASE WHEN c.status = 'resolved' THEN
                  (SELECT h.action FROM case_history h WHERE h.case_id = s.case_id AND h.to_status = 'resolved'
                   ORDER BY h.id DESC LIMIT 1) END AS last_resolve
      FROM fold_cases s
      LEFT JOIN cases c ON c.case_id = s.case_id
      LEFT JOIN (SELECT f.case_id, COUNT(*) AS added FROM fold_hits f
                 WHERE NOT EXISTS (SELECT 1 FROM case_hits k WHERE k.case_id = f.case_id AND k.hit_key = f.hit_key)
                 GROUP BY f.case_id) a ON a.case_id = s.case_id) x
"""
_EARLIER = "CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} <= {b} THEN {a} ELSE {b} END"
_LATER = "CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END"
WRITE = (
    # `WHERE true` before ON CONFLICT: SQLite reads `SELECT ... ON` as a join otherwise
    "INSERT INTO case_hits (case_id, hit_key, run_id) SELECT case_id, hit_key, ? FROM fold_hits WHERE true"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO case_runs (case_id, run_id) SELECT case_id, ? FROM fold_state WHERE true ON CONFLICT DO NOTHING",
    "INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category, severity, source,"
    " subject_type, subject_id, account_id, status, first_seen, last_seen, first_event, last_event, hit_count,"
    " evidence, updated_at) SELECT case_id, rule_id, rule_hash, rule_title, clause, law, category, severity, source,"
    " subject_type, subject_id, account_id, 'open', ?, ?, first_event, last_event, added, evidence, ?"
    " FROM fold_state WHERE outcome = 'new'",
    # the hit count stays the number of distinct events: cases.hit_count is always COUNT(case_hits)
    "UPDATE cases SET last_seen = ?, updated_at = ?, hit_count = cases.hit_count + st.added,"
    " rule_hash = st.rule_hash, account_id = COALESCE(cases.account_id, st.account_id),"
    f" first_event = {_EARLIER.format(a='cases.first_event', b='st.first_event')},"
    f" last_event = {_LATER.format(a='cases.last_event', b='st.last_event')},"
    " status = CASE WHEN st.outcome = 'reopened' THEN 'open' ELSE cases.status END"
    " FROM fold_state st WHERE st.case_id = cases.case_id AND st.outcome <> 'new'",
)
# One statement per kind of history row, in the order a case's rows were always written.
HISTORY = (
    "SELECT case_id, ?, 'scan', 'opened', NULL, 'open', CAST(added AS TEXT) || ' hit(s) of rule ' || rule_id, ?"
    " FROM fold_state WHERE outcome = 'new'",
    "SELECT case_id, ?, 'scan', 'rule_changed', NULL, NULL, 'rule ' || rule_id || ' now ' || SUBSTR(rule_hash, 1, 12),"
    " ? FROM fold_state WHERE outcome <> 'new' AND hash_before <> rule_hash",
    "SELECT case_id, ?, 'scan', 'hits_added', NULL, NULL, CAST(added AS TEXT) || ' new hit(s)', ?"
    " FROM fold_state WHERE outcome <> 'new' AND added > 0",
    "SELECT case_id, ?, 'scan', 'reopened', 'resolved', 'open', 'violation found again'"
    " || CASE WHEN added > 0 THEN '' ELSE ' (hits already recorded before it was resolved)' END, ?"
    " FROM fold_state WHERE outcome = 'reopened'",
)
TEMP_TABLES = ("fold_hits", "fold_cases", "fold_state", "fold_evidence")


def fold(db: Database, run_id: str, hits: pd.DataFrame, rules: RuleSet, max_evidence: int, now: str) -> ApplyResult:
    """Fold ``hits`` into cases inside the caller's transaction on ``db``."""
    if hits.empty:
        return ApplyResult(0, 0, 0, 0)
    prep = prepare(hits, rules, max_evidence)
    for ddl in STAGE_DDL:
        db.execute(ddl)
    db.bulk_insert("fold_hits", ("case_id", "hit_key"), list(zip(prep.hit_case, prep.hit_key)))
    db.bulk_insert("fold_cases", CASE_COLUMNS, list(prep.cases.itertuples(index=False, name=None)))
    checkpoint("store.fold")
    if db.dialect == "postgresql":
        db.execute("ANALYZE fold_hits")
        db.execute("ANALYZE fold_cases")
    db.execute(CLASSIFY)
    checkpoint("store.fold")
    merged = _merged_evidence(db, prep, max_evidence)  # read before the cases are updated
    hits_sql, runs_sql, new_sql, update_sql = WRITE
    db.execute(hits_sql, (run_id,))
    db.execute(runs_sql, (run_id,))
    checkpoint("store.fold")
    db.execute(new_sql, (now, now, now))
    db.execute(update_sql, (now, now))
    checkpoint("store.fold")
    for select in HISTORY:
        db.execute("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id) "
                   + select, (now, run_id))
    if merged:
        db.execute("CREATE TEMP TABLE fold_evidence (case_id TEXT PRIMARY KEY, evidence TEXT NOT NULL)")
        db.bulk_insert("fold_evidence", ("case_id", "evidence"), merged)
        db.execute("UPDATE cases SET evidence = e.evidence FROM fold_evidence e WHERE e.case_id = cases.case_id")
    checkpoint("store.fold")
    counts = {r["outcome"]: int(r["n"]) for r in
              db.all("SELECT outcome, COUNT(*) AS n FROM fold_state GROUP BY outcome")}
    for table in TEMP_TABLES[:3] + (TEMP_TABLES[3:] if merged else ()):
        db.execute(f"DROP TABLE {table}")
    return ApplyResult(counts.get("new", 0), counts.get("updated", 0) + counts.get("reopened", 0),
                       counts.get("unchanged", 0), counts.get("reopened", 0))


def _merged_evidence(db: Database, prep: Prepared, max_evidence: int) -> list[tuple[str, str]]:
    """(case id, evidence) of the known cases that gained hits: their evidence, then this run's first
    items they did not have, up to ``max_evidence``. Cases already holding that many keep theirs."""
    rows = db.all("SELECT st.case_id, c.evidence FROM fold_state st JOIN cases c ON c.case_id = st.case_id"
                  " WHERE st.outcome <> 'new' AND st.added > 0")
    if not rows:
        return []
    position = {cid: i for i, cid in enumerate(prep.cases["case_id"])}
    starts = np.searchsorted(prep.item_case, np.arange(len(position) + 1))
    out = []
    for r in rows:
        old = orjson.loads(r["evidence"])
        if len(old) >= max_evidence:
            continue
        at = position[r["case_id"]]
        known = {i.get("hit_key") for i in old}
        fresh = [prep.items[j] for j in range(starts[at], starts[at + 1]) if prep.item_key[j] not in known]
        if not fresh:
            continue
        texts = [_json(i) for i in old] + fresh
        out.append((r["case_id"], "[" + ",".join(texts[:max_evidence]) + "]"))
    return out
