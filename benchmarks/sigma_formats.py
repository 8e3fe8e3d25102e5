"""What the Sigma field mapping per log format costs: the SigmaHQ web-server rules over a real log.

    python benchmarks/sigma_formats.py --repeat 7 --copies 4

Evaluates the rules (``CompiledRules.evaluate_all``) over the benign corpus log read as combined, in
the same run, three ways: the default mapping (only Tencent CDN maps ``cs-host`` otherwise, so the
one rule reading cs-host carries a guarded copy), a mapping where two more formats differ on the
referer and user agent (every rule reading them carries a copy), and, as the baseline, the rules
converted with no per-format entries at all. Prints seconds and each over the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pipeline.config import SigmaLogsource, load_settings  # noqa: E402
from pipeline.matchers.evaluate import CompiledRules  # noqa: E402
from pipeline.rules.loader import load_rules  # noqa: E402
from pipeline.rules.sigma.mapping import LOG_FORMAT, reads_log_format  # noqa: E402
from pipeline.sources import logs as _formats  # noqa: E402,F401
from pipeline.sources.base import LOG_FORMATS  # noqa: E402
from pipeline.sources.logs_common import keeping_raw  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"


def ruleset(formats: dict[str, dict[str, str | None]]):  # type: ignore[no-untyped-def]
    base = load_settings(None).sigma
    entry = SigmaLogsource(category="webserver", formats=formats)
    settings = base.model_copy(update={"logsources": (entry,)})
    with tempfile.TemporaryDirectory() as own:
        return load_rules(own, sigma_folders=(str(CORPUS / "sigma-webserver"),), sigma=settings)


def prepared(rs, df: pd.DataFrame) -> tuple[CompiledRules, pd.DataFrame]:  # type: ignore[no-untyped-def]
    compiled = CompiledRules(rs.for_source("logs"), "logs")
    return compiled, (df.assign(**{LOG_FORMAT: "combined"}) if reads_log_format(compiled.rules) else df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--copies", type=int, default=1, help="evaluate the log this many times over, as one frame")
    args = ap.parse_args()
    with keeping_raw():
        df = LOG_FORMATS.get("combined")(str(CORPUS / "access-logs" / "apache_combined_2015.log"),
                                         domain="www.example.cn").records
    df = pd.concat([df] * args.copies, ignore_index=True)
    variants = {
        "no per-format entries (baseline)": {"tencent-cdn": {"cs-host": "host"}},
        "default (tencent-cdn cs-host: domain)": {},
        "+ common, qiniu-kodo: no referer / user agent": {"common": {"cs-referer": None, "cs-user-agent": None},
                                                           "qiniu-kodo": {"cs-referer": None, "cs-user-agent": None}},
    }
    runs = {}
    for name, formats in variants.items():
        rs = ruleset(formats)
        guarded = sum(1 for r in rs.rules if "field_mapping_by_format" in r.meta.get("sigma", {}))
        runs[name] = (*prepared(rs, df), guarded)
    best = {name: float("inf") for name in runs}
    for round_no in range(args.repeat + 1):   # rounds interleave the variants; the first warms up
        for name, (compiled, frame, _guarded) in runs.items():
            began = time.perf_counter()
            compiled.evaluate_all(frame)
            if round_no:
                best[name] = min(best[name], time.perf_counter() - began)
    results = {name: (best[name], runs[name][2]) for name in runs}
    base = next(iter(results.values()))[0]
    print(f"{len(df)} records, best of {args.repeat}")
    for name, (secs, guarded) in results.items():
        print(f"{name:48s} {secs:7.3f}s  {secs / base:5.2f}x baseline  ({guarded} rules with per-format copies)")


if __name__ == "__main__":
    main()
