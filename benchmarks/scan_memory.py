"""Peak memory of one scan task: a file read whole or in parts, evaluated whole or in batches.

    python benchmarks/scan_memory.py --rows 1000000 --patterns 10000 [--batch-rows 200000] [--part-bytes N]

Writes an objects CSV of ``--rows`` metadata rows (the rows of ``scan_objects.py``), then runs
the scan task's reading and evaluation in fresh processes, at half and at all of the file:
evaluated whole, in batches, and read in parts of ``--part-bytes`` (``scan.part_bytes``) as a
scan task reads a big listing. It prints the peak resident memory that reading added and what
evaluation added beyond it. Batches keep evaluation flat as the file grows, parts keep reading
flat; read whole, both grow with the file.
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


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB). Linux's VmHWM, not ru_maxrss: a child process
    started by a big parent inherits the parent's ru_maxrss, which would hide its own figures."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(csv_path: str, patterns_path: str, batch_rows: int, part_json: str) -> None:
    """Read the file (or the part ``part_json`` describes, as a scan task would), evaluate one
    keyword rule over it, print peak RSS before reading, after reading and at the end (MB)."""
    from pipeline.matchers.evaluate import CompiledRules
    from pipeline.records import OBJECTS, conform
    from pipeline.rules import model as m
    from pipeline.runner import evaluate_batches
    from pipeline.sources.base import OBJECT_FORMATS, FilePart, reading_part
    import pipeline.sources.objects  # noqa: F401  (registers the object formats)

    patterns = tuple(Path(patterns_path).read_text(encoding="utf-8").split("\n"))
    rule = m.Rule(id="bench.keywords.all", title="bench", clause="3.1.3.5", category="bench", severity="low",
                  sources=("objects",), match=m.Keywords(patterns, ("title",)), path="-", line=1,
                  content_hash="bench")
    compiled = CompiledRules((rule,), "objects")
    compiled.evaluate(conform(pd.DataFrame({"title": ["warm-up"]}), OBJECTS))
    before_read = peak_rss_mb()
    if part_json:   # the largest part, planned by the parent as the scan's client plans it
        with reading_part(FilePart(**{**json.loads(part_json), "header": bytes.fromhex(json.loads(part_json)["header"])})):
            records = conform(OBJECT_FORMATS.get("csv")(csv_path).records, OBJECTS)
    else:
        records = conform(OBJECT_FORMATS.get("csv")(csv_path).records, OBJECTS)
    after_read = peak_rss_mb()
    hits, _ = evaluate_batches(compiled, records, batch_rows)
    peak = peak_rss_mb()
    print(json.dumps({"before_read_mb": before_read, "after_read_mb": after_read, "peak_mb": peak,
                      "hits": len(hits)}))


def measure(csv_path: Path, patterns_path: Path, batch_rows: int, part_bytes: int = 0) -> dict[str, float]:
    from pipeline.sources.base import plan_parts

    parts = plan_parts(str(csv_path), part_bytes, header=True) if part_bytes else []
    part = max(parts, key=lambda p: p.end - p.start) if parts else None
    part_json = json.dumps({**part.__dict__, "header": part.header.hex()}) if part else ""
    out = subprocess.run([sys.executable, __file__, "--child", str(csv_path), str(patterns_path), str(batch_rows),
                          part_json], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--patterns", type=int, default=10_000)
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument("--part-bytes", type=int, default=16 << 20, help="scan.part_bytes for the last measurement")
    args = parser.parse_args()

    patterns = make_patterns(args.patterns)
    rows = make_rows(args.rows, planted=patterns[:: max(1, len(patterns) // 50)])
    with tempfile.TemporaryDirectory() as tmp:
        patterns_path = Path(tmp) / "patterns.txt"
        patterns_path.write_text("\n".join(patterns), encoding="utf-8")
        print(f"{'rows':>9} {'file MB':>8} {'read':>14} {'batch rows':>10} {'reading MB':>10} {'evaluation MB':>13}")
        for n in (args.rows // 2, args.rows):
            csv_path = Path(tmp) / f"objects-{n}.csv"
            pd.DataFrame({"bucket": "bench", "key": [f"k{i}" for i in range(n)], "title": rows[:n]}).to_csv(
                csv_path, index=False)
            size = csv_path.stat().st_size / 1e6
            for batch, part in ((n, 0), (args.batch_rows, 0), (args.batch_rows, args.part_bytes)):
                r = measure(csv_path, patterns_path, batch, part)
                label = "whole" if batch >= n else str(batch)
                read = f"parts of {part >> 20} MB" if part else "whole file"
                print(f"{n:9,} {size:8.1f} {read:>14} {label:>10} {r['after_read_mb'] - r['before_read_mb']:10.0f} "
                      f"{r['peak_mb'] - r['after_read_mb']:13.0f}")


if __name__ == "__main__":
    main()
