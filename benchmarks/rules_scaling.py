"""Rule evaluation as the rule set grows: 1, 10, 30 (starter), 86 (Sigma) and 1,000 rules, in one run.

    python benchmarks/rules_scaling.py --lines 1000000          (the figure; --lines 200000 while developing)

Generates access logs (pipeline/generate/logs.py, its mix of 7 formats) and object metadata
(pipeline/generate/objects.py), reads them as the scan does (raw line kept for Sigma keywords), and
evaluates them in this process, one core (rates are per CPU second of this process, so they hold on
a loaded machine), with growing rule sets: the first starter rule, the
first 10, all 30, the 86 SigmaHQ web-server rules of the shared corpus, starter + Sigma, and
1,000 (starter + Sigma + generated keyword and regex rules). Prints rows/s per core of evaluation
alone (``CompiledRules.evaluate_all`` and the hit rows), the cost per added rule from 30 to 1,000,
and, measured in the same run on the same rows:

- pySigma with pysigma-backend-sqlite on the Sigma rules: its queries over an in-memory SQLite table
  of the same records (as tests/test_sigma_differential.py builds it), query time only;
- the tree-walking reference evaluator on the Sigma rules (on ``--reference-lines`` rows);
- the bare automaton: the plan's automata alone over the same folded bytes of every field they read.

``--e2e`` adds `compliance scan --full` through the CLI on one Dask worker with starter + Sigma
rules over the generated log files (parse, evaluate, hit rows, cases).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
SIGMA = ROOT.parent / "shared" / "corpus" / "sigma-webserver"
sys.path.insert(0, str(ROOT))

from pipeline.config import SIGMA_FIELDS, load_settings  # noqa: E402
from pipeline.generate.logs import generate_logs  # noqa: E402
from pipeline.generate.objects import generate_objects  # noqa: E402
from pipeline.matchers.evaluate import CompiledRules  # noqa: E402
from pipeline.matchers.hits import record_hits  # noqa: E402
from pipeline.rules import model as m  # noqa: E402
from pipeline.rules.loader import load_rules  # noqa: E402
from pipeline.runner import plan_tasks, read_records  # noqa: E402
from pipeline.sources.logs_common import RAW  # noqa: E402


read = read_records


def generated_rules(n: int, seed: int) -> list[m.Rule]:
    """``n`` rules as users write them, over the fields the starter and Sigma rules read already (so
    the rule count grows, not the text searched): keyword lists over log paths and queries and object
    text fields, RE2 regexes over the request, Sigma-style contains values with a method."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))

    def word(k: int = 7) -> str:
        return "".join(rng.choice(letters, k))

    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            leaf: m.Matcher = m.Keywords(tuple(word() for _ in range(5)), ("path", "query"))
            src = ("logs",)
        elif kind == 1:
            leaf = m.Keywords(tuple(word() for _ in range(5)), ("key", "title", "description", "tags"))
            src = ("objects",)
        elif kind == 2:
            leaf = m.Regex(f"(?i)/{word(5)}[0-9]+\\.(php|jsp)", ("uri",))
            src = ("logs",)
        else:
            leaf = m.AllOf((m.Regex(f"(?is)/{word(6)}", ("uri",), decoded=False, label=f"gen{i}"),
                            m.Regex("(?is)^(?:GET|POST)$", ("method",), decoded=False, label=f"gen{i} method")))
            src = ("logs",)
        out.append(m.Rule(f"bench.gen.{i:04d}", f"generated {i}", "3.1.3.7", "attack_web", "low", src, leaf,
                          "<generated>", 1, f"gen{i}", subject="client_ip" if src == ("logs",) else None,
                          meta={"sigma": {}} if kind == 3 else {}))
    return out


def evaluate(rules: list[m.Rule], source: str, df: pd.DataFrame, evaluator: str = "plan",
             batch: int = 200_000) -> tuple[float, int]:
    """CPU seconds of this process to evaluate ``df`` in batches as the scan does (rules compiled
    beforehand), and the hit rows: per core, whatever else the machine runs."""
    own = tuple(r for r in rules if source in r.sources and r.enabled)
    if not own:
        return 0.0, 0
    compiled = CompiledRules(own, source, evaluator=evaluator)
    compiled.evaluate_all(df.iloc[:100].reset_index(drop=True))   # imports and kernels warm
    began = time.process_time()
    hits = 0
    for lo in range(0, len(df), batch):
        part = df.iloc[lo:lo + batch].reset_index(drop=True)
        results, _ = compiled.evaluate_all(part)
        hits += len(record_hits(compiled, part, results))
    return time.process_time() - began, hits


def pysigma_seconds(df: pd.DataFrame, sigma: list[m.Rule]) -> tuple[float, int]:
    """pySigma's SQLite queries for the Sigma rules over the same records: query seconds, rows matched."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    def regexp(pattern: str, value: Any) -> bool:
        return value is not None and re.search(pattern, str(value)) is not None

    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, regexp, deterministic=True)
    fields = sorted(set(SIGMA_FIELDS) | {"cs-content-type"})
    numeric = {"sc-status", "sc-bytes"}
    cols = [RAW, *fields]
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" INTEGER' if c in numeric else f'"{c}" TEXT COLLATE NOCASE'
                                                 for c in cols) + ")")
    data = {RAW: df[RAW]}
    for f in fields:
        canon = SIGMA_FIELDS.get(f)
        data[f] = (df[canon].astype("Int64") if f in numeric else df[canon].astype("string")) if canon \
            else pd.Series([None] * len(df))
    frame = pd.DataFrame(data)
    db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * len(cols))})",
                   frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))
    backend = sqliteBackend(fulltext_field=RAW)
    queries = []
    for path in sorted({r.path for r in sigma}):
        queries += backend.convert(SigmaCollection.from_yaml(Path(path).read_text(encoding="utf-8")))
    began = time.process_time()
    found = sum(len(db.execute(q).fetchall()) for q in queries)
    return time.process_time() - began, found


def bare_automaton(rules: list[m.Rule], df: pd.DataFrame) -> float:
    """The plan's automata alone over the folded bytes of the fields they read (no rows, no rules)."""
    compiled = CompiledRules(tuple(r for r in rules if "logs" in r.sources), "logs", evaluator="plan")
    from pipeline.matchers.plan import _Run
    from pipeline.matchers.plan_scan import _view

    plan = compiled._plan
    buffers = []
    run = _Run(plan, plan.partition(df))
    for key, lits in plan.fields.items():
        if lits.anywhere_index:
            folded = pc.ascii_lower(pc.fill_null(run.text(key), ""))
            buffers.append((lits, folded))
    began = time.process_time()
    for lits, folded in buffers:
        lits.bare_scan(_view(folded)[0])
    return time.process_time() - began


def end_to_end(folder: Path, summary: dict, lines: int) -> tuple[float, float]:
    """Wall seconds of `compliance scan --full` on one worker, and the CPU seconds of it and its children."""
    cfg = folder / "config-e2e.yaml"
    logs = [{"path": str(folder / "logs-gen" / f["path"]), "format": f["format"], "domain": f["domain"]}
            for f in summary["files"]]
    cfg.write_text(json.dumps({"rules": str(ROOT / "rules"), "state_dir": str(folder / "state"),
                               "dask": {"workers": 1}, "scan": {"progress": "never"},
                               "sigma": {"folders": [str(SIGMA)]}, "sources": {"logs": logs}}), encoding="utf-8")
    began, cpu = time.perf_counter(), os.times()
    res = subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan", "--full",
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    wall, after = time.perf_counter() - began, os.times()
    if res.returncode != 0:
        sys.exit(f"scan failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return wall, (after.children_user + after.children_system) - (cpu.children_user + cpu.children_system)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="generated access-log lines (background)")
    p.add_argument("--objects", type=int, default=200_000, help="generated object metadata rows")
    p.add_argument("--reference-lines", type=int, default=50_000, help="rows the reference and pySigma read")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--e2e", action="store_true", help="also `compliance scan --full` through the CLI")
    p.add_argument("--keep", action="store_true", help="keep the generated files (their folder is printed)")
    args = p.parse_args()
    if not SIGMA.is_dir():
        sys.exit(f"no Sigma rules at {SIGMA}")
    folder = Path(tempfile.mkdtemp(prefix="rules-scaling-"))
    try:
        began = time.perf_counter()
        summary = generate_logs(folder / "logs-gen", lines=args.lines, seed=args.seed)
        logs = pd.concat([read("logs", str(folder / "logs-gen" / f["path"]), f["format"], domain=f["domain"])
                          for f in summary["files"]], ignore_index=True)
        obj = generate_objects(folder / "objects-gen", rows=args.objects, seed=args.seed, rules_dir=ROOT / "rules")
        objects = pd.concat([read("objects", t.path, t.format, **dict(t.extras))
                             for t in plan_tasks(load_settings(obj["config"]))], ignore_index=True)
        raw_mb = pc.sum(pc.binary_length(pa.array(logs[RAW].array))).as_py() / 1e6
        print(f"{len(logs):,} log lines ({raw_mb:,.0f} MB raw), {len(objects):,} object rows; generated and read in "
              f"{time.perf_counter() - began:.0f} s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

        starter = list(load_rules(str(ROOT / "rules")).rules)
        (folder / "no-rules").mkdir()
        sigma = list(load_rules(str(folder / "no-rules"), sigma_folders=(str(SIGMA),),
                                sigma=load_settings(None).sigma).rules)
        both = starter + sigma
        sets = [("1 (first starter)", starter[7:8]), ("10 (starter)", starter[5:15]), ("30 (starter)", starter),
                ("86 (Sigma)", sigma), ("116 (starter+Sigma)", both),
                ("1,000 (+ generated)", both + generated_rules(1000 - len(both), args.seed))]
        print(f"\n{'rules':<22}{'log rules':>10}{'logs s':>9}{'lines/s per core':>18}{'obj rules':>10}{'objects s':>10}"
              f"{'rows/s per core':>17}{'hits':>8}")
        timed: dict[str, tuple[float, float]] = {}
        for name, rules in sets:
            t_logs, h1 = evaluate(rules, "logs", logs)
            t_obj, h2 = evaluate(rules, "objects", objects)
            timed[name] = (t_logs, t_obj)
            n_logs = sum("logs" in r.sources for r in rules)
            n_obj = sum("objects" in r.sources for r in rules)
            print(f"{name:<22}{n_logs:>10}{t_logs:>9.2f}{(len(logs) / t_logs if t_logs else 0):>18,.0f}"
                  f"{n_obj:>10}{t_obj:>10.2f}{(len(objects) / t_obj if t_obj else 0):>17,.0f}{h1 + h2:>8,}")

        t30 = sum(timed["30 (starter)"])
        t1000 = sum(timed["1,000 (+ generated)"])
        print(f"\n30 -> 1,000 rules: evaluation time x{t1000 / t30:.2f} (target < 3); "
              f"{(t1000 - t30) / 970 * 1e3 / ((len(logs) + len(objects)) / 1e6):.2f} ms per added rule per million rows")

        # the baselines, same run, same rows
        sub = logs.iloc[:args.reference_lines].reset_index(drop=True)
        t_plan_sub, _ = evaluate(sigma, "logs", sub)
        t_ref_sub, _ = evaluate(sigma, "logs", sub, evaluator="reference")
        t_sql, found = pysigma_seconds(sub, sigma)
        t_sigma = timed["86 (Sigma)"][0]
        plan_rate = len(logs) / t_sigma
        sql_rate = len(sub) / t_sql
        print(f"\nSigma rules on {len(sub):,} of the lines: plan {len(sub) / t_plan_sub:,.0f} lines/s, reference "
              f"tree walk {len(sub) / t_ref_sub:,.0f} lines/s (plan x{t_ref_sub / t_plan_sub:.1f}), pySigma + "
              f"sqlite {sql_rate:,.0f} lines/s ({found:,} rows matched)")
        print(f"plan on all {len(logs):,} lines: {plan_rate:,.0f} lines/s per core = x{plan_rate / sql_rate:.1f} "
              f"pySigma-sqlite (target >= 25x and >= 500,000 lines/s)")
        t_obj_ref, _ = evaluate(starter, "objects", objects, evaluator="reference")
        t_obj_plan = timed["30 (starter)"][1]
        print(f"objects, starter rules: plan {len(objects) / t_obj_plan:,.0f} rows/s, reference "
              f"{len(objects) / t_obj_ref:,.0f} rows/s (plan x{t_obj_ref / t_obj_plan:.2f}; target: not slower)")
        t_bare = bare_automaton(sigma, logs)
        print(f"bare automaton over the same folded bytes: {len(logs) / t_bare:,.0f} lines/s; "
              f"plan evaluation = {t_bare / t_sigma:.2f} of its speed")
        if args.e2e:
            wall, cpu = end_to_end(folder, summary, len(logs))
            print(f"\ncompliance scan --full (1 worker, starter + Sigma, parse + evaluate + cases): {wall:.1f} s wall, "
                  f"{cpu:.1f} s CPU (scheduler, worker and all): {len(logs) / wall:,.0f} lines/s wall, "
                  f"{len(logs) / cpu:,.0f} lines/s per core of CPU")
    finally:
        if args.keep:
            print(f"files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
