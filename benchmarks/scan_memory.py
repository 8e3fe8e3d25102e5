"""Peak memory of one scan task: a file evaluated whole vs in batches of ``scan.batch_rows``.

    python benchmarks/scan_memory.py --rows 1000000 --patterns 10000 [--batch-rows 200000]

Writes an objects CSV of ``--rows`` metadata rows (the rows of ``scan_objects.py``), then runs
the scan task's reading and evaluation in fresh processes, at half and at all of the file, each
whole and in batches, and prints each one's peak resident memory beyond that of reading the
file alone. The batched figure should stay flat as the file grows; the whole one grows with it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_objects import make_patterns, make_rows  # noqa: E402


def child(csv_path: str, patterns_path: str, batch_rows: int) -> None:
    """Read the file, evaluate one keyword rule over it, print peak RSS after reading and at the end (MB)."""
    from pipeline.matchers.evaluate import CompiledRules
    from pipeline.records import OBJECTS, conform
    from pipeline.rules import model as m
    from pipeline.runner import evaluate_batches
    from pipeline.sources.base import OBJECT_FORMATS
    import pipeline.sources.objects  # noqa: F401  (registers the object formats)

    patterns = tuple(Path(patterns_path).read_text(encoding="utf-8").split("\n"))
    rule = m.Rule(id="bench.keywords.all", title="bench", clause="3.1.3.5", category="bench", severity="low",
                  sources=("objects",), match=m.Keywords(patterns, ("title",)), path="-", line=1,
                  content_hash="bench")
    compiled = CompiledRules((rule,), "objects")
    compiled.evaluate(conform(pd.DataFrame({"title": ["warm-up"]}), OBJECTS))
    records = conform(OBJECT_FORMATS.get("csv")(csv_path).records, OBJECTS)
    after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hits, _ = evaluate_batches(compiled, records, batch_rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"after_read_mb": after_read, "peak_mb": peak, "hits": len(hits)}))


def measure(csv_path: Path, patterns_path: Path, batch_rows: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(csv_path), str(patterns_path), str(batch_rows)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--patterns", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=200_000)
    args = parser.parse_args()

    patterns = make_patterns(args.patterns)
    rows = make_rows(args.rows, planted=patterns[:: max(1, len(patterns) // 50)])
    with tempfile.TemporaryDirectory() as tmp:
        patterns_path = Path(tmp) / "patterns.txt"
        patterns_path.write_text("\n".join(patterns), encoding="utf-8")
        print(f"{'rows':>9} {'file MB':>8} {'batch rows':>10} {'read MB':>8} {'evaluation MB':>13}")
        for n in (args.rows // 2, args.rows):
            csv_path = Path(tmp) / f"objects-{n}.csv"
            pd.DataFrame({"bucket": "bench", "key": [f"k{i}" for i in range(n)], "title": rows[:n]}).to_csv(
                csv_path, index=False)
            size = csv_path.stat().st_size / 1e6
            for batch in (n, args.batch_rows):
                r = measure(csv_path, patterns_path, batch)
                label = "whole" if batch >= n else str(batch)
                print(f"{n:9,} {size:8.1f} {label:>10} {r['after_read_mb']:8.0f} "
                      f"{r['peak_mb'] - r['after_read_mb']:13.0f}")


if __name__ == "__main__":
    main()
