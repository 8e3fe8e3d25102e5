"""Folding hits into cases, into SQLite and PostgreSQL, beside a bare insert of the same rows.

    python benchmarks/case_store.py --cases 100000 --hits-per-case 2
    python benchmarks/case_store.py --cases 100000 --hits-per-case 2 --postgres postgresql://postgres@127.0.0.1:5432/test

For each engine, into a fresh store: fold N new cases of K hits each (``CaseStore.apply_hits``, what
a first scan does), fold the same hits again (a ``--full`` rescan: nothing new), then fold them with
10% more hits (every tenth case gains K new events). Beside it, in the same run, a bare
``executemany`` of the same case rows (with the same evidence) into ``cases`` and hit keys into
``case_hits``, in one transaction, with the rows built beforehand. Prints seconds, cases/s, hits/s and each phase's time
over the bare insert's (target: within 3×; ≥ 50k new cases/s and ≥ 200k known hits/s into SQLite,
≥ 20k new cases/s into PostgreSQL). PostgreSQL runs in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.cases.fold import ApplyResult, evidence_items, evidence_json, prepare  # noqa: E402
from pipeline.cases.store import CaseStore, now_utc  # noqa: E402
from pipeline.matchers.hits import HIT_COLUMNS  # noqa: E402
from pipeline.rules import model as m  # noqa: E402

RULES = 20


def ruleset() -> m.RuleSet:
    rules = tuple(m.Rule(id=f"objects.bench.r{i}", title=f"rule {i}", clause="3.1.3.5.4", category="contraband_gambling",
                         severity="high", sources=("objects",), match=None, path="bench.yaml", line=i + 1,
                         content_hash=f"hash{i:04d}") for i in range(RULES))
    return m.RuleSet(rules, "bench")


def make_hits(cases: range, per_case: int, first_event: int = 0) -> pd.DataFrame:
    """``per_case`` hits on each of the objects numbered ``cases``, shaped like a scan's hit rows."""
    n = len(cases) * per_case
    case = [cases[i // per_case] for i in range(n)]
    event = [first_event + i % per_case for i in range(n)]
    ev = [orjson.dumps([{"field": "title", "kind": "keywords", "pattern": "赌场", "text": "赌场", "span": [3, 5],
                         "normalized": "赌场"}]).decode()] * n
    return pd.DataFrame({
        "rule_id": [f"objects.bench.r{c % RULES}" for c in case],
        "subject_type": "object",
        "subject_id": [f"bench/obj{c:08d}.jpg" for c in case],
        "account_id": [f"acct-{c % 500}" for c in case],
        "event_time": pd.Timestamp("2026-11-01T00:00:00Z") + pd.to_timedelta([e * 60 for e in event], unit="s"),
        "source_file": "/data/inventory.csv",
        "source_line": [i + 2 for i in range(n)],
        "hit_key": [f"bench/obj{c:08d}.jpg@etag{e}" for c, e in zip(case, event)],
        "evidence": ev,
        "context": [f'{{"bucket":"bench","key":"obj{c:08d}.jpg","etag":"etag{e}"}}' for c, e in zip(case, event)],
    }, columns=HIT_COLUMNS)


def bare_insert(url: str, hits: pd.DataFrame, rs: m.RuleSet) -> tuple[float, float]:
    """The same case rows (evidence included, as the fold writes it) and hit keys, built beforehand,
    in one executemany each: the floor to compare with."""
    store = CaseStore(url)
    now = now_utc()
    prep = prepare(hits, rs)
    every = np.arange(len(prep.case_list))
    evidence = evidence_json(evidence_items(prep, every, 20), every)
    rules = {r.id: r for r in rs.rules}
    heads = hits.iloc[prep.heads]
    counts = np.bincount(prep.case_of, minlength=len(every)).tolist()
    case_rows = [(c, r, rules[r].content_hash, rules[r].title, rules[r].clause, rules[r].law, rules[r].category,
                  rules[r].severity, "objects", "object", s, a, "open", now, now, first, last, n, e, now)
                 for (_pos, c, r, a, first, last), s, n, e in zip(prep.cases, heads["subject_id"], counts, evidence)]
    hit_rows = [(c, k, "bench") for c, k in prep.pairs]
    t, cpu = time.perf_counter(), time.process_time()
    with store.transaction() as db:
        db.executemany("INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", case_rows)
        db.executemany("INSERT INTO case_hits (case_id, hit_key, run_id) VALUES (?,?,?)", hit_rows)
    took, cpu = time.perf_counter() - t, time.process_time() - cpu
    store.close()
    return took, cpu


def fold(store: CaseStore, hits: pd.DataFrame, rs: m.RuleSet) -> tuple[float, float, ApplyResult]:
    run = store.begin_run(None, rs.digest)
    t, cpu = time.perf_counter(), time.process_time()
    res = store.apply_hits(run, hits, rs, max_evidence=20)
    return time.perf_counter() - t, time.process_time() - cpu, res


def bench(engine: str, url_for: Callable[[], str], cases: int, per_case: int) -> None:
    rs = ruleset()
    hits = make_hits(range(cases), per_case)
    # every tenth case gains per_case new events
    more = pd.concat([hits, make_hits(range(0, cases, 10), per_case, first_event=per_case)], ignore_index=True)

    bare, bare_cpu = bare_insert(url_for(), hits, rs)
    store = CaseStore(url_for())
    rows = []
    for phase, data in (("new cases", hits), ("rescan, same hits", hits), ("rescan, +10% new hits", more)):
        took, cpu, res = fold(store, data, rs)
        rows.append((phase, took, cpu, res, len(data)))
    store.close()
    # this process's CPU seconds beside the wall time: on a loaded machine they move less (for
    # PostgreSQL they leave out the server's share)
    print(f"\n{engine}: {cases:,} cases x {per_case} hits ({len(hits):,} hit rows); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {'bare executemany insert':<24} {bare:7.2f} s  {cases / bare:>10,.0f} cases/s  "
          f"{len(hits) / bare:>10,.0f} hits/s   1.00x   cpu {bare_cpu:6.2f} s  1.00x")
    for phase, took, cpu, res, n in rows:
        print(f"  {phase:<24} {took:7.2f} s  {cases / took:>10,.0f} cases/s  {n / took:>10,.0f} hits/s  "
              f"{took / bare:5.2f}x   cpu {cpu:6.2f} s {cpu / bare_cpu:5.2f}x   "
              f"new {res.new:,} updated {res.updated:,} unchanged {res.unchanged:,}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=50_000)
    p.add_argument("--hits-per-case", type=int, default=2)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                   help="a PostgreSQL server to measure too ('' to skip)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="case-store-bench-"))
    counter = iter(range(1000))
    bench("SQLite", lambda: f"sqlite:///{folder / f'cases-{next(counter)}.db'}", args.cases, args.hits_per_case)
    if args.postgres:
        import psycopg

        schemas: list[str] = []

        def pg_url() -> str:
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {name}")
            schemas.append(name)
            sep = "&" if "?" in args.postgres else "?"
            return f"{args.postgres}{sep}options=-csearch_path%3D{name}"

        try:
            bench("PostgreSQL", pg_url, args.cases, args.hits_per_case)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for name in schemas:
                    conn.execute(f"DROP SCHEMA {name} CASCADE")


if __name__ == "__main__":
    main()
