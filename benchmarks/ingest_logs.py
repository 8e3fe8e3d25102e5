"""Log ingest throughput: parse + store a generated nginx `combined` log into the retained store,
next to DuckDB's read_csv of the same file in the same run (the ratio is what to compare across runs).

    python benchmarks/ingest_logs.py --lines 300000

Lines/s per core is lines over CPU seconds of this process, kernel time included (pyarrow and DuckDB
are held to one thread, so wall and CPU time agree closely). Kernel time is shown apart: most of it is
page faults on freshly allocated buffers, so it tracks how many bytes a run copies.
Target: >= 500k lines/s per core, every line accounted for.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.config import load_settings
from pipeline.retention import ingest, verify
from pipeline.sources.base import LOG_FORMATS
from pipeline.sources.logs_common import LOG_TABLES

try:
    import pipeline.sources.logs  # noqa: F401  (registers every log format)
except ImportError:
    import pipeline.sources.logs_combined  # noqa: F401

AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
          "curl/8.5.0", "Googlebot/2.1 (+http://www.google.com/bot.html)"]
PATHS = ["/", "/index.html", "/img/banner.jpg", "/api/v1/items?page=2", "/static/app.js", "/search?q=%E8%B5%8C"]


def generate(path: Path, lines: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    ips = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(20000)]
    start = datetime(2026, 8, 1, tzinfo=timezone(timedelta(hours=8)))
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(lines):
            ts = (start + timedelta(seconds=i * 172800 // lines)).strftime("%d/%b/%Y:%H:%M:%S %z")
            fh.write(f'{rng.choice(ips)} - - [{ts}] "GET {rng.choice(PATHS)} HTTP/1.1" {rng.choice((200, 200, 304, 404))} '
                     f'{rng.randrange(100000)} "https://www.example.cn/" "{rng.choice(AGENTS)}"\n')


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def sys_cpu() -> float:
    # Kernel time is mostly page faults on freshly allocated buffers: worth seeing apart.
    return os.times().system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300_000)
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        generate(log, args.lines)
        size = log.stat().st_size
        # ingest reads rotated logs: one that has not changed for an hour (a live one is copied, not mapped)
        an_hour_ago = time.time() - 3600
        os.utime(log, (an_hour_ago, an_hour_ago))

        reader = LOG_FORMATS.get("combined")
        reader(str(log), domain="www.example.cn")  # type: ignore[call-arg]  # warm-up: imports, first-call costs
        c0, w0 = cpu(), time.perf_counter()
        parsed = reader(str(log), domain="www.example.cn")  # type: ignore[call-arg]
        parse_cpu, parse_wall = cpu() - c0, time.perf_counter() - w0
        c0 = cpu()
        table = LOG_TABLES.get("combined")(str(log), domain="www.example.cn")  # what ingest reads
        table_cpu = cpu() - c0
        del parsed, table

        settings = load_settings(None, {"COMPLIANCE_STATE_DIR": str(Path(tmp) / "state")})
        c0, w0, s0 = cpu(), time.perf_counter(), sys_cpu()
        report = ingest(settings, [(log, "combined")], domain="www.example.cn")
        ingest_cpu, ingest_wall, ingest_sys = cpu() - c0, time.perf_counter() - w0, sys_cpu() - s0
        assert report.reconciled and report.rows_read == args.lines, report
        assert verify(settings).ok

        con = duckdb.connect()
        con.execute("SET threads = 1")
        c0, w0 = cpu(), time.perf_counter()
        # Materialized, so every column is parsed and typed (a bare count(*) could skip that work).
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{log}', delim=' ', quote='\"', escape='\"', "
                    "header=false, store_rejects=true, auto_detect=true)")
        n = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
        duck_cpu, duck_wall = cpu() - c0, time.perf_counter() - w0

    # Other processes on a shared machine slow memory and caches: their load is worth seeing.
    print(f"load average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores")
    print(f"{args.lines} lines, {size / 2**20:.1f} MiB; stored {report.rows_stored}, quarantined {report.rows_quarantined}, "
          f"{len(report.partitions_written)} partitions")
    print(f"parse to pandas (combined)   : {args.lines / parse_cpu:>10,.0f} lines/s per core  ({parse_wall:.2f} s wall)")
    print(f"parse to Arrow (as ingest)   : {args.lines / table_cpu:>10,.0f} lines/s per core")
    print(f"parse + store (ingest)       : {args.lines / ingest_cpu:>10,.0f} lines/s per core  ({ingest_wall:.2f} s wall, "
          f"{ingest_cpu:.2f} s CPU of which {ingest_sys:.2f} s kernel)")
    print(f"  of which store             : {args.lines / max(ingest_cpu - table_cpu, 1e-9):>10,.0f} lines/s per core")
    print(f"DuckDB read_csv (1 thread)   : {n / duck_cpu:>10,.0f} lines/s per core  ({duck_wall:.2f} s wall, {n} rows)")
    print(f"ratio ingest / DuckDB        : {(args.lines / ingest_cpu) / (n / duck_cpu):.2f}")
    print(f"target >= 500,000 lines/s per core: {'met' if args.lines / ingest_cpu >= 500_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
