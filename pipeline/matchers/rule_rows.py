"""Per rule, the rows a scan's hits cover and their share of the rows scanned; noisy rules named.

A rule that hits a large share of a source's rows is almost always a lexicon word too common for
the data (one noisy word opens a case on a third of an inventory); the scan summary says so,
with the patterns that did it, before a reviewer meets thousands of cases.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pandas as pd

from ..rules.model import RuleSet

# Evidence read per noisy rule to find its most frequent patterns: enough to rank them.
PATTERN_SAMPLE = 20_000
TOP_PATTERNS = 5


def rule_rows(hits: pd.DataFrame, ruleset: RuleSet, rows_scanned: dict[str, int],
              noisy_share: float) -> list[dict[str, Any]]:
    """One entry per record rule with hits: rows hit, share of its source's rows scanned, and, for a
    rule over ``noisy_share``, ``noisy: true`` and its most frequent patterns. Most rows first."""
    if hits.empty:
        return []
    known = {r.id: r for r in ruleset.rules}
    out = []
    for rule_id, n in hits["rule_id"].value_counts(sort=False).items():
        rule = known.get(str(rule_id))
        if rule is None or rule.aggregate is not None:
            continue  # aggregate rules' hits are episodes, not rows
        source = next((s for s in rule.sources if s in rows_scanned), None)
        if source is None:
            continue
        scanned = rows_scanned[source]
        share = int(n) / scanned if scanned else 0.0
        entry: dict[str, Any] = {"rule_id": rule.id, "source": source, "rows_hit": int(n),
                                 "share": round(share, 6), "noisy": share > noisy_share}
        if entry["noisy"]:
            evidence = hits.loc[hits["rule_id"] == rule_id, "evidence"].head(PATTERN_SAMPLE)
            entry["top_patterns"] = _top_patterns(evidence)
        out.append(entry)
    return sorted(out, key=lambda e: (-e["rows_hit"], e["rule_id"]))


def _top_patterns(evidence: pd.Series) -> list[list[Any]]:
    counts: Counter[str] = Counter()
    for text in evidence:
        if not isinstance(text, str):
            continue
        try:
            matches = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        # a row counts once per pattern, however often the pattern occurs in it
        counts.update({str(m.get("pattern")) for m in matches if isinstance(m, dict) and m.get("pattern")})
    return [[p, c] for p, c in counts.most_common(TOP_PATTERNS)]
