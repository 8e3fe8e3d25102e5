"""Log throughput end to end through the CLI, beside the bare parser over the same bytes.

    python benchmarks/ingest_logs.py --lines 1000000

Generates access logs in every format with `compliance generate` (the generator's mix of 7 formats,
planted and malformed lines included), then measures in the same run:

- the bare parser: every file read once and parsed into its Arrow table (``LOG_READERS``), in this
  process, pyarrow held to one thread; the baseline the commands are compared with;
- `compliance logs ingest` of the config's sources.logs into a fresh store, as a child process;
- `compliance scan` of the same files (starter rules, one Dask worker) into a fresh state, which
  parses, evaluates, builds hit rows, opens cases and ingests into the store (retention.ingest_on_scan);
- the stage shares of each: ingest from an in-process run's ``IngestReport.timings``, the scan from
  its ``--json`` report (worker stages summed over files, plus the scan process's own).

Lines/s per core is lines over the CPU seconds (user + kernel) of every process of the command,
its Dask worker included (a worker is a child process reaped when the cluster closes). The machine
is shared, so absolute figures are noisy: compare the ratios to the parser across runs.
Targets: ingest >= 500,000 lines/s per core; scan >= 250,000 lines/s per core.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_settings  # noqa: E402
from pipeline.retention import ingest, partitions_between, verify  # noqa: E402
from pipeline.retention.ingest import LogSource  # noqa: E402
from pipeline.sources.base import read_stored  # noqa: E402
from pipeline.sources.logs_common import LOG_READERS  # noqa: E402
import pipeline.sources.logs  # noqa: E402,F401  (registers every log format)

INGEST_TARGET = 500_000
SCAN_TARGET = 250_000


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli(cfg: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run the CLI; (result, CPU seconds of it and its children, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    c0, w0 = children_cpu(), time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), *args],
                         capture_output=True, text=True, env=env)
    if res.returncode not in (0, 4):
        sys.exit(f"compliance {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res, children_cpu() - c0, time.perf_counter() - w0


def store_rows(cfg: Path) -> int:
    settings = load_settings(str(cfg))
    return sum(pq.ParquetFile(f).metadata.num_rows for p in partitions_between(settings, None, None) for f in p.files)


def config(work: Path, gen: Path, state: str) -> Path:
    """The generated config's logs and bindings only, one Dask worker, its own state folder."""
    cfg = yaml.safe_load((gen / "config.yaml").read_text(encoding="utf-8"))
    out = {"rules": cfg["rules"], "state_dir": str(work / state), "dask": {"workers": 1},
           "sources": {"logs": [{**e, "path": str(gen / e["path"])} for e in cfg["sources"]["logs"]],
                       "bindings": [{**e, "path": str(gen / e["path"])} for e in cfg["sources"]["bindings"]]}}
    path = work / f"{state}.yaml"
    path.write_text(yaml.safe_dump(out, allow_unicode=True), encoding="utf-8")
    return path


def shares(timings: dict[str, float], stages: list[str]) -> str:
    total = sum(timings.get(s, 0.0) for s in stages) or 1.0
    return ", ".join(f"{s} {timings.get(s, 0.0) / total:.0%}" for s in stages if timings.get(s, 0.0) > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="background log lines to generate")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for state in ("state-inproc", "state-ingest", "state-scan"):   # a kept folder's stores start empty
            shutil.rmtree(work / state, ignore_errors=True)
        gen = work / "gen"
        if not (gen / "config.yaml").exists():
            subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "generate", "--out", str(gen), "--rows", "1000",
                            "--log-lines", str(args.lines), "--seed", "7"], check=True, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        entries = yaml.safe_load((gen / "config.yaml").read_text(encoding="utf-8"))["sources"]["logs"]
        files = [(str(gen / e["path"]), e["format"], e.get("domain")) for e in entries]
        # Logs are ingested once rotated: files left alone for a while are mapped, not copied.
        an_hour_ago = time.time() - 3600
        for path, _, _ in files:
            os.utime(path, (an_hour_ago, an_hour_ago))
        size = sum(os.path.getsize(p) for p, _, _ in files)

        # The bare parser over the same bytes: the baseline.
        for path, fmt, domain in files[:1]:
            LOG_READERS.get(fmt)(path, domain=domain)   # warm-up: imports, first-call costs
        per_format: dict[str, list[float]] = {}
        lines = 0
        c0 = cpu()
        for path, fmt, domain in files:
            f0 = cpu()
            table = LOG_READERS.get(fmt)(path, data=read_stored(path), domain=domain)
            lines += table.rows_read
            counts = per_format.setdefault(fmt, [0, 0.0])
            counts[0] += table.rows_read
            counts[1] += cpu() - f0
            del table
        parse_cpu = cpu() - c0

        # logs ingest, in this process for its stage shares, then through the CLI for the figure.
        settings = load_settings(None, {"COMPLIANCE_STATE_DIR": str(work / "state-inproc")})
        report = ingest(settings, [LogSource(p, f, d) for p, f, d in files])
        assert report.reconciled and report.rows_read == lines, report
        cfg = config(work, gen, "state-ingest")
        res, ingest_cpu, ingest_wall = cli(cfg, "logs", "ingest")
        read = re.search(r"rows: (\d+) read = (\d+) stored", res.stdout)
        assert read and int(read.group(1)) == lines, res.stdout
        assert store_rows(cfg) == int(read.group(2)) and verify(load_settings(str(cfg))).ok

        # The scan: parse, evaluate, hit rows, cases, ingest into the store.
        cfg = config(work, gen, "state-scan")
        res, scan_cpu, scan_wall = cli(cfg, "scan", "--json")
        scan = json.loads(res.stdout)
        logs = scan["per_source"]["logs"]
        assert logs["rows_read"] == lines, logs
        assert store_rows(cfg) == logs["rows_parsed"] == scan["logs_stored"]["rows_stored"], scan["logs_stored"]

    print(f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores")
    print(f"{lines:,} lines, {size / 2**20:.0f} MiB in {len(files)} files of {len(per_format)} formats; "
          f"scan: {scan['hits']} hits, {scan['cases_new']} new cases")
    for fmt, (n, seconds) in sorted(per_format.items()):
        print(f"  parse {fmt:<12}: {n / max(seconds, 1e-9):>10,.0f} lines/s per core ({n:,} lines)")
    parse_rate = lines / parse_cpu
    ingest_rate = lines / ingest_cpu
    scan_rate = lines / scan_cpu
    print(f"bare parser (in process)   : {parse_rate:>10,.0f} lines/s per core  ({parse_cpu:.2f} s CPU)")
    print(f"logs ingest (CLI)          : {ingest_rate:>10,.0f} lines/s per core  ({ingest_cpu:.2f} s CPU, "
          f"{ingest_wall:.2f} s wall)  = {ingest_rate / parse_rate:.2f} x the parser")
    print(f"  stages (in process)      : {shares(report.timings, ['read', 'parse', 'prepare', 'publish'])}")
    print(f"scan (CLI, 1 worker)       : {scan_rate:>10,.0f} lines/s per core  ({scan_cpu:.2f} s CPU, "
          f"{scan_wall:.2f} s wall)  = {scan_rate / parse_rate:.2f} x the parser")
    stages = ["dask_start", "compile", "read", "ingest_prepare", "normalize", "match", "hit_rows", "store", "case_store"]
    print(f"  stages (report timings)  : {shares(scan['timings'], stages)}")
    print(f"target ingest >= {INGEST_TARGET:,} lines/s per core: {'met' if ingest_rate >= INGEST_TARGET else 'NOT met'}; "
          f"scan >= {SCAN_TARGET:,}: {'met' if scan_rate >= SCAN_TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
