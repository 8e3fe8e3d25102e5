"""Run the inline ``tests`` of rules: each record (or group of records) against its rule alone."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from ..records import SCHEMAS, conform
from ..rules import model as m
from .evaluate import CompiledRules


@dataclass(frozen=True)
class TestOutcome:
    rule: m.Rule
    test: m.RuleTest
    passed: bool
    detail: str

    def line(self) -> str:
        verdict = "match" if self.test.expect else "no_match"
        return f"{self.rule.path}:{self.test.line}: [{self.rule.id}] expected {verdict}, {self.detail}"


def _frame(records: tuple[dict[str, object], ...], source: str) -> pd.DataFrame:
    df = pd.DataFrame(list(records))
    if "labels" in df.columns:
        df["labels"] = [json.dumps(v) if isinstance(v, dict) else v for v in df["labels"]]
    if "tags" in df.columns:
        df["tags"] = [",".join(v) if isinstance(v, list) else v for v in df["tags"]]
    df["source_file"] = "<test>"
    df["source_line"] = range(1, len(df) + 1)
    return conform(df, SCHEMAS[source])


def run_rule_tests(ruleset: m.RuleSet) -> list[TestOutcome]:
    from .aggregate import aggregate_groups  # aggregate rules are tested over their records as a batch

    out: list[TestOutcome] = []
    for rule in ruleset.rules:
        source = next((s for s in rule.sources if s in SCHEMAS), None)
        if source is None or not rule.tests:
            continue
        compiled = CompiledRules((rule,), source)
        for test in rule.tests:
            df = _frame(test.records, source)
            if rule.aggregate is not None:
                groups = aggregate_groups(rule, df, compiled.match_mask(rule, df))
                got = len(groups) > 0
                detail = f"got {len(groups)} group(s) over the threshold"
            else:
                results = compiled.evaluate(df)
                mask = results[0][1] if results else [False]
                got = bool(mask.any()) if hasattr(mask, "any") else False
                ev = results[0][2] if results else None
                detail = "got match" if got else "got no match"
                if got and ev is not None and len(ev):
                    first = ev.iloc[0]
                    detail += f" ({first['kind']} {first['pattern']!r} on {first['field']}: {first['text']!r})"
            out.append(TestOutcome(rule, test, got == test.expect, detail))
    return out
