"""Folding a run's hits into cases, set-based: a constant number of SQL statements per run, not per case.

The hits are prepared column-wise (case ids, first and last event, the account), staged into
temporary tables without indexes (``COPY`` on PostgreSQL), and SQL decides which cases are new,
updated, reopened or unchanged, then writes hit keys, runs, updates and history in bulk. Evidence
JSON is built (by Arrow, over columns) only for the cases that gained events, so a rescan that finds
what the store already holds builds none; new cases are then inserted in one batch. Only the
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
from collections.abc import Iterator
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

# Staged columns: what SQL needs to classify a case and update a known one; a case's rule fields
# come from fold_rules, one row per rule. ``pos`` is the case's position in the run's sorted cases.
STAGED_CASE_COLUMNS = ("pos", "case_id", "rule_id", "account_id", "first_event", "last_event")
CASE_COLUMNS = ("case_id", "rule_id", "rule_hash", "rule_title", "clause", "law", "category", "severity", "source",
                "subject_type", "subject_id", "account_id", "status", "first_seen", "last_seen", "first_event",
                "last_event", "hit_count", "evidence", "updated_at")
RULE_COLUMNS = ("rule_id", "rule_hash", "rule_title", "clause", "law", "category", "severity", "source")


@dataclass(frozen=True)
class ApplyResult:
    new: int
    updated: int      # known cases that gained hits in this run, or were reopened by it
    unchanged: int    # known cases seen again with no new hit
    reopened: int = 0
    case_ids: tuple[str, ...] = ()   # every case the hits are of, in id order


@dataclass
class Prepared:
    """A run's hits reduced to what SQL classifies them by: one staged row per case, one per distinct
    (case, hit key), one per rule. Evidence is built later, only for the cases that need it."""

    hits: pd.DataFrame
    cases: list[tuple[Any, ...]]   # STAGED_CASE_COLUMNS, in case id order (pos = index)
    pairs: list[tuple[str, str]]   # (case id, hit key), each event of a case once
    rules: list[tuple[Any, ...]]   # RULE_COLUMNS
    case_list: list[str]
    order: np.ndarray              # hit row of each pair, case by case in event order
    case_of: np.ndarray            # case position of each pair
    rank: np.ndarray               # its rank among its case's events
    ns: np.ndarray                 # its event time (ns since the epoch, NaT as int64 min)
    heads: np.ndarray              # each case's first hit row


NAT = np.iinfo(np.int64).min


def _arrow(col: pd.Series, type_: pa.DataType | None = None) -> pa.Array:
    """A column as one Arrow array (strings stay Arrow's, no Python object per value)."""
    arr = pa.array(col.reset_index(drop=True), type=type_, from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _text(col: pd.Series) -> pa.Array:
    arr = _arrow(col) if col.dtype != object else pa.array([None if _missing(v) else str(v) for v in col],
                                                              pa.large_string())
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def case_ids(hits: pd.DataFrame) -> pa.Array:
    """``ids.case_id`` of each hit row, one digest per distinct (rule, subject type, subject)."""
    if hits.empty:
        return pa.array([], pa.large_string())
    parts = [pc.fill_null(_text(hits[c]), _s("")) for c in ("rule_id", "subject_type", "subject_id")]
    encoded = pc.binary_join_element_wise(*parts, _s("\x1f")).dictionary_encode()
    # the bytes ids.case_id hashes, hashed here without splitting and formatting each key again
    sha = hashlib.sha256
    digests = ["C" + sha(k).hexdigest()[:16] for k in encoded.dictionary.cast(pa.large_binary()).to_pylist()]
    return pa.array(digests, pa.large_string()).take(encoded.indices)


def prepare(hits: pd.DataFrame, rules: RuleSet) -> Prepared:
    """The staged rows of a run's hits (pipeline.matchers.hits.HIT_COLUMNS), computed by column."""
    cids = case_ids(hits)
    keys = _text(hits["hit_key"])
    times = _arrow(pd.to_datetime(hits["event_time"], utc=True, errors="coerce")).cast(pa.timestamp("ns", "UTC"))
    # a case's hits in event order (missing times last), each event once: its first row
    order = pc.sort_indices(pa.table({"c": cids, "t": times, "k": keys}),
                            sort_keys=[("c", "ascending", "at_end"), ("t", "ascending", "at_end"),
                                       ("k", "ascending", "at_end")]).to_numpy()
    pair = pc.binary_join_element_wise(cids, keys, _s("\x1f")).dictionary_encode().indices.to_numpy()[order]
    _, first_of_pair = np.unique(pair, return_index=True)
    order = order[np.sort(first_of_pair)]
    at = pa.array(order)
    cid_sorted = cids.take(at)
    codes = cid_sorted.dictionary_encode().indices.to_numpy()
    is_first = np.r_[True, codes[1:] != codes[:-1]]
    first = np.flatnonzero(is_first)
    case_of = np.cumsum(is_first) - 1
    rank = np.arange(len(order)) - first[case_of]
    n = len(first)

    sorted_times = times.take(at)
    ns = sorted_times.cast(pa.int64()).to_numpy(zero_copy_only=False)
    ns = np.where(pc.is_null(sorted_times).to_numpy(zero_copy_only=False), NAT, ns)
    lo = np.minimum.reduceat(np.where(ns == NAT, np.iinfo(np.int64).max, ns), first)
    hi = np.maximum.reduceat(ns, first)
    heads = order[first]
    rule_ids = _text(hits["rule_id"]).take(pa.array(heads))
    case_list = cid_sorted.take(pa.array(first)).to_pylist()
    rule_rows = []
    for rid in pc.unique(rule_ids).to_pylist():
        r = rules.by_id(rid)
        rule_rows.append((r.id, r.content_hash, r.title, r.clause, r.law, r.category, r.severity, ",".join(r.sources)))
    columns = [range(n), case_list, rule_ids.to_pylist(), _accounts(hits, order, case_of, n),
               iso_times(pa.array(lo, pa.int64(), mask=lo == np.iinfo(np.int64).max)).to_pylist(),
               iso_times(pa.array(hi, pa.int64(), mask=hi == NAT)).to_pylist()]
    pairs = list(zip(cid_sorted.to_pylist(), keys.take(at).to_pylist()))
    return Prepared(hits, list(zip(*columns)), pairs, rule_rows, case_list, order, case_of, rank, ns, heads)


@dataclass
class Evidence:
    """The evidence items of some cases: each kept hit's JSON object, grouped by case position."""

    item_case: np.ndarray   # case position of each item, ascending
    item_key: pa.Array
    items: pa.Array

    def spans(self, cases: np.ndarray) -> tuple[np.ndarray, pa.Array]:
        """For the sorted case positions ``cases``: where each case's items start in the second
        result (plus its end), and the indices of those items, case by case."""
        starts = np.searchsorted(self.item_case, cases)
        lengths = np.searchsorted(self.item_case, cases, side="right") - starts
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        return offsets, pa.array(np.arange(offsets[-1]) + np.repeat(starts - offsets[:-1], lengths))


def evidence_items(prep: Prepared, cases: np.ndarray, max_evidence: int) -> Evidence:
    """The first ``max_evidence`` items of each case at the positions ``cases`` (sorted)."""
    wanted = np.zeros(len(prep.case_list), dtype=bool)
    wanted[cases] = True
    kept = np.flatnonzero((prep.rank < max_evidence) & wanted[prep.case_of])
    ns = prep.ns[kept]
    items = _items(prep.hits, prep.order[kept], pa.array(ns, pa.int64(), mask=ns == NAT))
    return Evidence(prep.case_of[kept], _text(prep.hits["hit_key"]).take(pa.array(prep.order[kept])), items)


def evidence_json(ev: Evidence, cases: np.ndarray) -> list[str]:
    """Each case's evidence array (its items joined by Arrow), for the sorted case positions ``cases``."""
    if not len(cases):
        return []
    offsets, take = ev.spans(cases)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), ev.items.take(take))
    return _concat("[", pc.binary_join(lists, _s(",")), "]").to_pylist()


def _accounts(hits: pd.DataFrame, order: np.ndarray, case_of: np.ndarray, n: int) -> list[str | None]:
    """Each case's most frequent non-empty account among its events (ties: the first in sorted order)."""
    acc = _text(hits["account_id"]).take(pa.array(order))
    ok = pc.fill_null(pc.not_equal(acc, _s("")), False).to_numpy(zero_copy_only=False)
    out = np.full(n, None, dtype=object)
    if not ok.any():
        return out.tolist()
    encoded = acc.filter(pa.array(ok)).dictionary_encode()
    names = encoded.dictionary.to_pylist()
    rank_of = np.argsort(np.argsort(np.array(names, dtype=object), kind="stable"))  # code → sorted position
    ranked = rank_of[encoded.indices.to_numpy()]
    combined, counts = np.unique(case_of[ok].astype(np.int64) * len(names) + ranked, return_counts=True)
    case, rank = combined // len(names), combined % len(names)
    best = np.lexsort((rank, -counts, case))
    case, rank = case[best], rank[best]
    firsts = np.r_[True, case[1:] != case[:-1]]
    out[case[firsts]] = np.array(sorted(names), dtype=object)[rank[firsts]]
    return out.tolist()


def iso_times(ns: pa.Array) -> pa.Array:
    """Each time (ns since the epoch, UTC) as ``pd.Timestamp.isoformat`` writes it, null where missing."""
    if not len(ns):
        return pa.array([], pa.large_string())
    values = pc.fill_null(ns, 0).to_numpy()
    seconds = pa.array(values // 1_000_000_000, pa.int64()).cast(pa.timestamp("s")).cast(pa.large_string())
    base = pc.utf8_replace_slice(seconds, 10, 11, "T")  # Arrow writes "YYYY-MM-DD HH:MM:SS"
    frac = values % 1_000_000_000
    if frac.any():  # isoformat writes a fraction only when there is one: microseconds, or all nine digits
        text = np.full(len(values), "", dtype=object)
        micro, nano = (frac != 0) & (frac % 1000 == 0), frac % 1000 != 0
        text[micro] = [f".{f // 1000:06d}" for f in frac[micro].tolist()]
        text[nano] = [f".{f:09d}" for f in frac[nano].tolist()]
        out = _concat(base, pa.array(text, pa.large_string()), "+00:00")
    else:
        out = _concat(base, "+00:00")
    return pc.if_else(pc.is_null(ns), pa.nulls(len(ns), pa.large_string()), out)


def _items(hits: pd.DataFrame, pos: np.ndarray, ns: pa.Array) -> pa.Array:
    """The evidence item JSON of each hit row at ``pos``: hit key, file, line, event time, the record's
    context fields and its matches, in that order (what a reviewer and the enforcement plan read)."""
    n = len(pos)
    if not n:
        return pa.array([], pa.large_string())
    at = pa.array(pos)

    def text(name: str) -> pa.Array:
        return _text(hits[name]).take(at) if name in hits.columns else pa.nulls(n, pa.large_string())

    if "source_line" in hits.columns:
        line = _arrow(pd.to_numeric(hits["source_line"], errors="coerce"), pa.float64()).take(at)
        line = pc.cast(line, pa.int64()).cast(pa.large_string())
    else:
        line = pa.nulls(n, pa.large_string())
    context = text("context")
    inner = pc.utf8_slice_codeunits(context, 1, -1)  # the object's members, to splice into the item
    ctx = pc.if_else(pc.fill_null(pc.greater(pc.utf8_length(context), 2), False), _concat(",", inner), _s(""))
    if "evidence" in hits.columns and hits["evidence"].dtype != object:
        matches = pc.fill_null(text("evidence"), _s("null"))
    else:
        values = hits["evidence"].to_numpy(dtype=object)[pos] if "evidence" in hits.columns else [None] * n
        matches = pa.array([m if isinstance(m, str) else _json(None if _missing(m) else m) for m in values],
                           pa.large_string())
    when = pc.fill_null(_concat('"', iso_times(ns), '"'), _s("null"))
    return _concat('{"hit_key":', _quoted(text("hit_key")), ',"source_file":', _quoted(text("source_file")),
                   ',"source_line":', pc.fill_null(line, _s("null")), ',"event_time":', when, ctx,
                   ',"matches":', matches, "}")


def _quoted(arr: pa.Array) -> pa.Array:
    """Each value as a JSON string (null where missing); orjson only for the few that need escapes."""
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
    # no index on the staged rows: filling one costs more than the few scans of them below
    "CREATE TEMP TABLE fold_hits (case_id TEXT NOT NULL, hit_key TEXT NOT NULL)",
    "CREATE TEMP TABLE fold_cases (pos INTEGER NOT NULL, case_id TEXT NOT NULL, rule_id TEXT, account_id TEXT,"
    " first_event TEXT, last_event TEXT)",
    "CREATE TEMP TABLE fold_rules (rule_id TEXT PRIMARY KEY, rule_hash TEXT, rule_title TEXT, clause TEXT, law TEXT,"
    " category TEXT, severity TEXT, source TEXT)",
    # what a new case's row takes from its hits, staged only for the new cases
    "CREATE TEMP TABLE fold_new (pos INTEGER PRIMARY KEY, subject_type TEXT, subject_id TEXT, evidence TEXT NOT NULL)",
    # the merged evidence of known cases that gained hits, written by the update of every seen case
    "CREATE TEMP TABLE fold_evidence (pos INTEGER PRIMARY KEY, evidence TEXT NOT NULL)",
)
# Each staged case with what the store knew of it and what this run does to it (outcome). The new
# events of each case (``added``) are counted once, in a table of their own, from the staged hits
# that ``case_hits`` does not have yet; they are also the rows inserted into ``case_hits``.
FRESH = """
CREATE TEMP TABLE fold_fresh AS
SELECT f.case_id, f.hit_key FROM fold_hits f
WHERE NOT EXISTS (SELECT 1 FROM case_hits k WHERE k.case_id = f.case_id AND k.hit_key = f.hit_key)
"""
CLASSIFY = """
CREATE TEMP TABLE fold_state AS
SELECT y.*, CASE WHEN y.outcome = 'unchanged' AND y.hash_before = y.rule_hash
                 AND (y.first_event IS NULL OR y.first_before <= y.first_event)
                 AND (y.last_event IS NULL OR y.last_before >= y.last_event) THEN 1 ELSE 0 END AS only_seen
FROM (SELECT x.*, CASE WHEN x.status_before IS NULL THEN 'new'
                 WHEN x.status_before = 'resolved' AND (x.added > 0 OR x.last_resolve = 'auto_resolved') THEN 'reopened'
                 WHEN x.added > 0 THEN 'updated' ELSE 'unchanged' END AS outcome
FROM (SELECT s.pos, s.case_id, s.rule_id, s.account_id, s.first_event, s.last_event, r.rule_hash,
             c.status AS status_before, c.rule_hash AS hash_before, c.account_id AS account_before,
             c.first_event AS first_before, c.last_event AS last_before,
             COALESCE(a.added, 0) AS added,
             CASE WHEN c.status = 'resolved' THEN
                  (SELECT h.action FROM case_history h WHERE h.case_id = s.case_id AND h.to_status = 'resolved'
                   ORDER BY h.id DESC LIMIT 1) END AS last_resolve
      FROM fold_cases s
      JOIN fold_rules r ON r.rule_id = s.rule_id
      LEFT JOIN cases c ON c.case_id = s.case_id
      LEFT JOIN (SELECT case_id, COUNT(*) AS added FROM fold_fresh GROUP BY case_id) a ON a.case_id = s.case_id) x) y
"""
_EARLIER = "CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} <= {b} THEN {a} ELSE {b} END"
_LATER = "CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END"
WRITE = (
    "INSERT INTO case_hits (case_id, hit_key, run_id) SELECT case_id, hit_key, ? FROM fold_fresh",
    # NOT EXISTS rather than ON CONFLICT: PostgreSQL logs a speculative insertion for each row otherwise
    "INSERT INTO case_runs (case_id, run_id) SELECT st.case_id, ? FROM fold_state st"
    " WHERE NOT EXISTS (SELECT 1 FROM case_runs r WHERE r.case_id = st.case_id AND r.run_id = ?)",
)
# A new case's row from its staged fields, its rule's and its evidence (staged only for new cases).
INSERT_NEW = (
    f"INSERT INTO cases ({', '.join(CASE_COLUMNS)})"
    " SELECT st.case_id, st.rule_id, r.rule_hash, r.rule_title, r.clause, r.law, r.category, r.severity, r.source,"
    " n.subject_type, n.subject_id, st.account_id, 'open', ?, ?, st.first_event, st.last_event, st.added,"
    " n.evidence, ? FROM fold_new n JOIN fold_state st ON st.pos = n.pos JOIN fold_rules r ON r.rule_id = st.rule_id"
)
# Known cases: the columns every seen case changes, then the two that change for few of them. The
# indexed ones (account, status) are set apart so the big update leaves every index as it was. A
# rescan sees most cases as they were (``only_seen``: no new event, same rule, events inside the
# known span): for those only the times of the sighting change, in a statement of its own.
UPDATE_SEEN = (
    "UPDATE cases SET last_seen = ?, updated_at = ?, hit_count = cases.hit_count + st.added, rule_hash = st.rule_hash,"
    f" first_event = {_EARLIER.format(a='cases.first_event', b='st.first_event')},"
    f" last_event = {_LATER.format(a='cases.last_event', b='st.last_event')},"
    " evidence = COALESCE(e.evidence, cases.evidence)"
    " FROM fold_state st LEFT JOIN fold_evidence e ON e.pos = st.pos"
    " WHERE st.case_id = cases.case_id AND st.outcome <> 'new' AND st.only_seen = 0"
)
UPDATE_ONLY_SEEN = ("UPDATE cases SET last_seen = ?, updated_at = ? FROM fold_state st"
                    " WHERE st.case_id = cases.case_id AND st.only_seen = 1")
UPDATE_FEW = (
    "UPDATE cases SET account_id = st.account_id FROM fold_state st WHERE st.case_id = cases.case_id"
    " AND st.outcome <> 'new' AND st.account_before IS NULL AND st.account_id IS NOT NULL",
    "UPDATE cases SET status = 'open' FROM fold_state st WHERE st.case_id = cases.case_id AND st.outcome = 'reopened'",
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
TEMP_TABLES = ("fold_hits", "fold_cases", "fold_rules", "fold_fresh", "fold_state", "fold_new", "fold_evidence")


def fold(db: Database, run_id: str, hits: pd.DataFrame, rules: RuleSet, max_evidence: int, now: str) -> ApplyResult:
    """Fold ``hits`` into cases inside the caller's transaction on ``db``."""
    if hits.empty:
        return ApplyResult(0, 0, 0, 0)
    prep = prepare(hits, rules)
    # the previous fold's staging tables are dropped now, not at its end: dropping them costs about
    # as much as filling them, and a store is usually closed (freeing them at once) right after a fold
    for table in TEMP_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    for ddl in STAGE_DDL:
        db.execute(ddl)
    db.bulk_insert("fold_hits", ("case_id", "hit_key"), prep.pairs)
    db.bulk_insert("fold_cases", STAGED_CASE_COLUMNS, prep.cases)
    db.bulk_insert("fold_rules", RULE_COLUMNS, prep.rules)
    checkpoint("store.fold")
    if db.dialect == "postgresql":
        # the classifying query's estimated cost (a subquery per case) sets off JIT compilation,
        # which takes longer than the query; SET LOCAL ends with the transaction
        db.execute("SET LOCAL jit = off")
        db.execute("ANALYZE fold_hits")  # the planner's row counts
        db.execute("ANALYZE fold_cases")
    db.execute(FRESH)
    db.execute(CLASSIFY)
    checkpoint("store.fold")
    # only the cases that gained events need evidence: new ones, and known ones to merge it into
    touched = db.execute("SELECT st.pos, st.outcome, c.evidence FROM fold_state st"
                         " LEFT JOIN cases c ON c.case_id = st.case_id AND st.outcome <> 'new'"
                         " WHERE st.added > 0 ORDER BY st.pos").fetchall()
    new = np.array([r[0] for r in touched if r[1] == "new"], dtype=np.int64)
    ev = evidence_items(prep, np.array([r[0] for r in touched], dtype=np.int64), max_evidence)
    merged = _merged_evidence(prep, ev, [(r[0], r[2]) for r in touched if r[1] != "new"], max_evidence)
    hits_sql, runs_sql = WRITE
    db.execute(hits_sql, (run_id,))
    db.execute(runs_sql, (run_id, run_id))
    checkpoint("store.fold")
    if len(new):
        db.bulk_insert("fold_new", ("pos", "subject_type", "subject_id", "evidence"), _new_cases(prep, new, ev))
        db.execute(INSERT_NEW, (now, now, now))
    db.bulk_insert("fold_evidence", ("pos", "evidence"), merged)
    db.execute(UPDATE_SEEN, (now, now))
    db.execute(UPDATE_ONLY_SEEN, (now, now))
    for sql in UPDATE_FEW:
        db.execute(sql)
    checkpoint("store.fold")
    for select in HISTORY:
        db.execute("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id) "
                   + select, (now, run_id))
    checkpoint("store.fold")
    counts = {r["outcome"]: int(r["n"]) for r in
              db.all("SELECT outcome, COUNT(*) AS n FROM fold_state GROUP BY outcome")}
    return ApplyResult(counts.get("new", 0), counts.get("updated", 0) + counts.get("reopened", 0),
                       counts.get("unchanged", 0), counts.get("reopened", 0), tuple(prep.case_list))


def _new_cases(prep: Prepared, new: np.ndarray, ev: Evidence) -> Iterator[tuple[Any, ...]]:
    """The staged rows (pos, subject type, subject, evidence) of the new cases at the sorted positions ``new``."""
    heads = pa.array(prep.heads[new])
    subject_type = _text(prep.hits["subject_type"]).take(heads).to_pylist()
    subject_id = _text(prep.hits["subject_id"]).take(heads).to_pylist()
    return zip(new.tolist(), subject_type, subject_id, evidence_json(ev, new))


def _merged_evidence(prep: Prepared, ev: Evidence, known: list[tuple[int, str]],
                     max_evidence: int) -> list[tuple[int, str]]:
    """(case position, evidence) of the known cases that gained hits: their evidence, then this run's first
    items they did not have, up to ``max_evidence``. Cases already holding that many keep theirs."""
    if not known:
        return []
    offsets, take = ev.spans(np.array([pos for pos, _ in known], dtype=np.int64))
    keys, items = ev.item_key.take(take).to_pylist(), ev.items.take(take).to_pylist()
    out = []
    for (pos, evidence), lo, hi in zip(known, offsets[:-1].tolist(), offsets[1:].tolist()):
        old = orjson.loads(evidence)
        if len(old) >= max_evidence:
            continue
        have = {i.get("hit_key") for i in old}
        fresh = [item for key, item in zip(keys[lo:hi], items[lo:hi]) if key not in have]
        if fresh:  # the stored array's text is kept as it is, this run's items appended to it
            appended = ",".join(fresh[:max_evidence - len(old)])
            out.append((pos, evidence.rstrip()[:-1] + ("," if old else "") + appended + "]"))
    return out
