"""Scaling of the distributed scan: one worker process against two, on the same files, in one run.

    python benchmarks/scan_scaling.py --rows 3200000 --files 16   (tasks of 200k rows: keep them coarse)

Writes ``--files`` equal CSV files of object metadata (rows from scan_objects.make_rows, ~95 bytes
of mixed Chinese / English in the title) and scans them with the starter rules on a LocalCluster
of 1, then 2, single-threaded worker processes (fresh case store each time), first with fresh
workers, then with workers that have compiled the rules already (as on a long-running cluster,
where a worker does that once). Prints wall seconds, rows/s and the speed-ups of 2 workers over 1
(target ≥ 1.7×).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_objects import make_patterns, make_rows  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_files(folder: Path, rows: int, files: int) -> None:
    texts = make_rows(rows, planted=make_patterns(200)[::10])
    per = rows // files
    for i in range(files):
        chunk = texts[i * per:(i + 1) * per]
        pd.DataFrame({"account_id": "acct-1", "bucket": f"bench{i}", "key": [f"k{j}.jpg" for j in range(len(chunk))],
                      "title": chunk}).to_csv(folder / f"part-{i:03d}.csv", index=False)


def _warm(rules_dir: str) -> None:
    """On a worker: what its first task of a scan does once (imports, kernels, compiled rules)."""
    from pipeline.rules.loader import load_rules
    from pipeline.runner import compiled_for

    compiled_for(load_rules(rules_dir), "objects")


def run(folder: Path, workers: int, warm: bool) -> float:
    from distributed import Client, LocalCluster

    from pipeline.config import load_settings
    from pipeline.runner import scan

    state = Path(tempfile.mkdtemp(dir=folder))
    cfg = folder / f"config-{workers}.yaml"
    cfg.write_text(f"rules: {ROOT / 'rules'}\nstate_dir: {state}\nscan: {{progress: never}}\n"
                   f"sources:\n  objects:\n    - {{path: {folder}/part-*.csv, format: csv}}\n", encoding="utf-8")
    settings = load_settings(str(cfg))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.run(lambda: None)  # workers up before the clock starts
        if warm:
            client.run(_warm, str(ROOT / "rules"))
        t0 = time.perf_counter()
        scan(settings, client=client)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the four runs; the best of each is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, args.rows, args.files)
        times: dict[tuple[int, bool], float] = {}
        # round after round, the best of each kept: a slow spell of a shared machine then falls on
        # 1 and 2 workers alike instead of skewing their ratio
        for _ in range(args.repeat):
            for warm in (False, True):
                for n in (1, 2):
                    t = run(folder, n, warm)
                    times[(n, warm)] = min(t, times.get((n, warm), t))
    print(f"{args.rows} rows in {args.files} files, starter rules")
    print(f"{'workers':>8} {'workers start':>14} {'wall s':>8} {'rows/s':>10}")
    for (n, warm), t in times.items():
        print(f"{n:>8} {'compiled' if warm else 'fresh':>14} {t:8.2f} {args.rows / t:10,.0f}")
    for warm, what in ((False, "fresh workers (each first compiles the rules, as a CLI scan's own cluster)"),
                       (True, "workers that have compiled the rules (a long-running cluster)")):
        print(f"speed-up of 2 workers over 1, {what}: {times[(1, warm)] / times[(2, warm)]:.2f}x (target >= 1.7x)")


if __name__ == "__main__":
    main()
