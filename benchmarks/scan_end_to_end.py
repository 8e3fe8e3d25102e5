"""`compliance scan --full` end to end on realistic Chinese object metadata, beside the bare automaton and grep.

    pip install -e ".[bench]"      # jieba, for its dictionary (dict.txt: 349k words with corpus frequencies)
    python benchmarks/scan_end_to_end.py --rows 1000000 --hit-rates 0.001,0.02,0.3

Generates an object listing (CSV) whose key, title, description and tags are words of jieba's
dictionary drawn by their corpus frequency (~110 bytes of scanned text a row), and a deny list
of ``--patterns`` real words (2 to 4 characters, drawn by frequency, never drawn into the text
otherwise) planted into the share of rows given by each hit rate. For each rate it runs
``compliance scan --full --json`` through the CLI with one Dask worker into a fresh case store,
then the same scan again (known cases: 0 new), and in the same run times, over the same bytes,
the bare byte-level pyahocorasick automaton and ``grep -F -c -f`` (with ``--repeat K``, all of
them K times, alternating, and prints the medians). Prints wall seconds, rows/s
per core, each stage's share of the wall time (from the scan's own ``timings``) and the ratios
(targets at 2% hits: within 1.5x of the bare automaton, the case store under 20%; at 30%: 3x).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("key", "title", "description", "tags")
# an installed package has its modules' bytecode cached: measure that, not compiling every module
# on each start (some environments set PYTHONDONTWRITEBYTECODE)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
STAGES = ("dask_start", "read", "compile", "normalize", "match", "hit_rows", "case_store")


def dictionary() -> tuple[list[str], np.ndarray]:
    """jieba's dictionary: words of Han characters only, with their corpus frequencies."""
    try:
        import jieba
    except ImportError:
        sys.exit('this benchmark reads jieba\'s dictionary: pip install -e ".[bench]"')
    words, freqs = [], []
    with open(Path(jieba.__file__).parent / "dict.txt", encoding="utf-8") as f:
        for line in f:
            word, freq, *_ = line.split(" ")
            if all("\u4e00" <= ch <= "\u9fff" for ch in word):
                words.append(word)
                freqs.append(int(freq))
    return words, np.array(freqs, dtype=np.float64)


def make_data(rows: int, patterns: int, seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """The listing's text fields (before planting) and the deny list."""
    rng = np.random.default_rng(seed)
    words, freqs = dictionary()
    lengths = np.array([len(w) for w in words])
    # the deny list: real words of 3-4 characters drawn by frequency that occur inside no other word
    # of the dictionary, kept out of the text (drawn from the other words): each rate's planting then
    # decides which rows hit, up to words that two neighbours happen to spell
    candidates = np.flatnonzero((lengths >= 3) & (lengths <= 4))
    drawn = rng.choice(candidates, size=min(len(candidates), 4 * patterns), replace=False,
                       p=freqs[candidates] / freqs[candidates].sum())
    inside = _inside_other_words([words[i] for i in drawn], words)
    pool = np.array([i for i in drawn if words[i] not in inside])
    keep = np.ones(len(words), dtype=bool)
    keep[pool] = False
    vocab = np.array(words, dtype=object)[keep]
    p = freqs[keep] / freqs[keep].sum()

    def phrases(n: int, lo: int, hi: int, sep: str) -> np.ndarray:
        counts = rng.integers(lo, hi + 1, size=n)
        drawn = vocab[rng.choice(len(vocab), size=int(counts.sum()), p=p)]
        ends = np.cumsum(counts)
        return np.array([sep.join(drawn[e - c:e]) for c, e in zip(counts.tolist(), ends.tolist())], dtype=object)

    years = rng.integers(2019, 2027, size=rows)
    stems = phrases(rows, 1, 2, "")
    fields = {
        "key": np.array([f"photos/{y}/{s}_{i:07d}.jpg" for i, (y, s) in enumerate(zip(years.tolist(), stems))],
                        dtype=object),
        "title": phrases(rows, 3, 6, ""),
        "description": phrases(rows, 4, 9, ""),
        "tags": phrases(rows, 2, 4, ","),
    }
    # and none that two neighbouring words spell anywhere in this text
    spelled = _found_in([words[i] for i in pool], fields)
    deny = [words[i] for i in pool if words[i] not in spelled][:patterns]
    if len(deny) < patterns:
        sys.exit(f"only {len(deny)} deny words qualify; ask for fewer --patterns")
    return fields, deny


def _inside_other_words(candidates: list[str], words: list[str]) -> set[str]:
    """The candidates that occur inside some other word of ``words``."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for c in candidates:
        automaton.add_word(c, c)
    automaton.make_automaton()
    found: set[str] = set()
    for w in words:
        if len(w) > 3:
            found.update(c for _, c in automaton.iter(w) if c != w)
    return found


def _found_in(candidates: list[str], fields: dict[str, np.ndarray]) -> set[str]:
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for c in candidates:
        automaton.add_word(c, c)
    automaton.make_automaton()
    found: set[str] = set()
    for name in FIELDS:
        found.update(c for _, c in automaton.iter("\n".join(fields[name])))
    return found


def plant(fields: dict[str, np.ndarray], deny: list[str], rate: float, seed: int) -> dict[str, np.ndarray]:
    """A copy of the fields with a deny word inside the title or description of ``rate`` of the rows."""
    rng = np.random.default_rng(seed + 1)
    rows = len(fields["title"])
    hit = np.flatnonzero(rng.random(rows) < rate)
    out = {k: v.copy() for k, v in fields.items()}
    words = np.array(deny, dtype=object)[rng.integers(0, len(deny), size=len(hit))]
    where = rng.random(len(hit)) < 0.5
    for name, sel in (("title", where), ("description", ~where)):
        col = out[name]
        at = hit[sel]
        col[at] = [t[: len(t) // 2] + w + t[len(t) // 2:] for t, w in zip(col[at], words[sel])]
    return out


def write_inventory(folder: Path, fields: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """The CSV listing, and the scanned text alone (one row a line, fields tab-separated) for the baselines."""
    rows = len(fields["title"])
    csv = folder / "objects.csv"
    pd.DataFrame({"bucket": "photos", **{k: fields[k] for k in ("key",)}, "etag": [f"e{i:x}" for i in range(rows)],
                  "size": 123456, "mime_type": "image/jpeg", "put_time": "2026-11-01T00:00:00Z",
                  **{k: fields[k] for k in ("title", "description", "tags")}}).to_csv(csv, index=False)
    text = folder / "text.txt"
    with open(text, "w", encoding="utf-8") as f:
        for parts in zip(*(fields[k] for k in FIELDS)):
            f.write("\t".join(parts) + "\n")
    return csv, text


def bare_automaton(deny: list[str], text: Path) -> tuple[float, int]:
    """The byte-level pyahocorasick automaton over the normalized deny words, alone over the bytes."""
    from pipeline.matchers.keyword_aho import AhoCorasickBackend

    backend = AhoCorasickBackend(deny)
    data = text.read_bytes()
    began = time.perf_counter()
    found = backend.bare_scan(data)
    return time.perf_counter() - began, len(found)  # type: ignore[arg-type]


def grep(deny: list[str], text: Path, folder: Path) -> tuple[float, int]:
    words = folder / "deny.txt"
    words.write_text("\n".join(deny) + "\n", encoding="utf-8")
    began = time.perf_counter()
    out = subprocess.run(["grep", "-F", "-c", "-f", str(words), str(text)], capture_output=True, text=True,
                         env={**os.environ, "LC_ALL": "C"})
    return time.perf_counter() - began, int(out.stdout.strip() or 0)


def import_time() -> float:
    """Seconds to start Python and import the CLI with what `scan` imports (its command module and the
    runner: the CLI imports a command's module only when it runs), measured now (part of every scan's
    wall time)."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pipeline.cli, pipeline.cli.scan, pipeline.runner"], check=True, cwd=ROOT,
                   env=ENV)
    return time.perf_counter() - began


def scan(folder: Path, csv: Path, deny: list[str], name: str) -> list[tuple[float, dict]]:
    """`compliance scan --full --json` twice (first scan, then a rescan of known cases) into a fresh store."""
    rules = folder / f"rules-{name}"
    (rules / "lexicons").mkdir(parents=True, exist_ok=True)
    (rules / "lexicons" / "deny.txt").write_text("\n".join(deny) + "\n", encoding="utf-8")
    (rules / "deny.yaml").write_text(
        "rules:\n  - id: objects.bench.deny\n    title: deny list\n    clause: \"3.1.3.5.4\"\n"
        "    category: contraband_gambling\n    severity: high\n    source: objects\n"
        "    match:\n      keywords_file: lexicons/deny.txt\n      fields: [key, title, description, tags]\n",
        encoding="utf-8")
    cfg = folder / f"config-{name}.yaml"
    cfg.write_text(f"rules: {rules}\nstate_dir: {folder / f'state-{name}'}\ndask: {{workers: 1}}\n"
                   f"scan: {{progress: never}}\nsources:\n  objects:\n    - {{path: {csv}, format: csv}}\n",
                   encoding="utf-8")
    shutil.rmtree(folder / f"state-{name}", ignore_errors=True)   # a first scan: into a fresh store
    out = []
    for _ in range(2):
        began = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan", "--full",
                              "--json"], capture_output=True, text=True, cwd=ROOT, env=ENV)
        wall = time.perf_counter() - began
        if res.returncode != 0:
            sys.exit(f"scan failed ({res.returncode}):\n{res.stderr[-3000:]}")
        out.append((wall, json.loads(res.stdout)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--patterns", type=int, default=10_000)
    p.add_argument("--hit-rates", default="0.001,0.02,0.3")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--repeat", type=int, default=1, help="runs of each scan and baseline; medians are printed")
    p.add_argument("--keep", action="store_true", help="keep the generated files (their folder is printed)")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scan-e2e-"))
    try:
        began = time.perf_counter()
        fields, deny = make_data(args.rows, args.patterns, args.seed)
        import_time()   # writes the bytecode cache, as installing the package would have
        print(f"{args.rows:,} rows, {len(deny):,} deny words; generated in {time.perf_counter() - began:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        warm = folder / "warm-up"
        warm.mkdir()
        small, _ = write_inventory(warm, {k: v[:1000] for k, v in plant(fields, deny, 0.02, args.seed).items()})
        (wall, _), _again = scan(warm, small, deny, "warm-up")
        print(f"first scan after installing (1,000 rows; it compiles and caches the kernels, once): {wall:.2f} s")
        for rate in (float(r) for r in args.hit_rates.split(",")):
            csv, text = write_inventory(folder, plant(fields, deny, rate, args.seed))
            # the baselines and the scans alternate, --repeat times: each figure is the median of its
            # runs, so that a slow spell of a shared machine weighs on all of them alike
            runs = []
            for _ in range(args.repeat):
                bare_s, _ = bare_automaton(deny, text)
                grep_run = grep(deny, text, folder)
                runs.append((bare_s, grep_run, scan(folder, csv, deny, f"{rate:g}")))
            bare = float(np.median([r[0] for r in runs]))
            grep_s, grep_rows = float(np.median([r[1][0] for r in runs])), runs[0][1][1]
            middle = sorted(runs, key=lambda r: r[2][0][0])[len(runs) // 2]   # the median first scan
            (wall, first), (again, second) = middle[2]
            again = float(np.median([r[2][1][0] for r in runs]))
            if args.repeat > 1:
                print(f"\n{args.repeat} runs each: scan {min(r[2][0][0] for r in runs):.2f}-"
                      f"{max(r[2][0][0] for r in runs):.2f} s, bare automaton {min(r[0] for r in runs):.2f}-"
                      f"{max(r[0] for r in runs):.2f} s; ratios of the runs "
                      + ", ".join(f"{r[2][0][0] / r[0]:.2f}x" for r in runs) + " (medians below)")
            mb = text.stat().st_size / 1e6
            t = first.get("timings", {})
            print(f"\nhit rate {rate:.1%}: {mb:.0f} MB of scanned text, {grep_rows:,} rows hit by grep, "
                  f"{first['cases_new']:,} cases (load average {os.getloadavg()[0]:.1f})")
            print(f"  compliance scan --full   {wall:7.2f} s  {args.rows / wall:>9,.0f} rows/s per core (1 worker)  "
                  f"{wall / bare:6.2f}x bare automaton  {wall / grep_s:6.2f}x grep")
            print(f"  bare automaton           {bare:7.2f} s  {args.rows / bare:>9,.0f} rows/s")
            print(f"  grep -F -c -f            {grep_s:7.2f} s  {args.rows / grep_s:>9,.0f} rows/s")
            shares = "  ".join(f"{s} {t.get(s, 0.0) / wall:5.1%}" for s in STAGES)
            other = wall - sum(t.get(s, 0.0) for s in STAGES)
            imports = import_time()
            print(f"  stages of the wall time: {shares}  other {other / wall:5.1%} (start-up, planning, summary; "
                  f"of which starting Python and importing the CLI {imports / wall:5.1%}, {imports:.2f} s)")
            print(f"  case store {t.get('case_store', 0.0):.2f} s = {t.get('case_store', 0.0) / bare:.2f}x the bare "
                  f"automaton")
            st = second.get("timings", {})
            print(f"  rescan --full            {again:7.2f} s  {second['cases_new']} new, "
                  f"{second['cases_unchanged']:,} unchanged; case store {st.get('case_store', 0.0):.2f} s")
            for r in first.get("rules", []):
                if r.get("noisy"):
                    print(f"  noisy rule {r['rule_id']}: {r['share']:.1%} of rows; top patterns {r['top_patterns']}")
    finally:
        if args.keep:
            print(f"\nfiles kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
