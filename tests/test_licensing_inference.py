"""Site-field inference: the site_* rules match requested URLs as well as object metadata, and hits are
attributed to sites by domain or origin bucket, counted once per event, against each rule's min_hits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.licensing.inference import infer_fields
from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.hits import record_hits
from pipeline.records import LOGS, OBJECTS, conform
from pipeline.rules.loader import load_rules

RULES = load_rules(str(Path(__file__).resolve().parent.parent / "rules")).rules
SITE = tuple(r for r in RULES if r.category.startswith("site_"))


def _logs(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return conform(pd.DataFrame([{"ts": "2026-11-01T01:00:00Z", "domain": d, "uri": p, "path": p,
                                  "source_file": "a.log", "source_line": i + 1} for i, (d, p) in enumerate(rows)]), LOGS)


def test_site_rules_match_encoded_urls_and_not_plain_news_paths() -> None:
    df = _logs([("g.cn", "/%E7%BD%91%E7%BB%9C%E6%B8%B8%E6%88%8F/1.html"), ("g.cn", "/游戏充值/index.html"),
                ("g.cn", "/%E6%96%B0%E9%97%BB/1.html"), ("n.cn", "/news/2026/1.html"), ("g.cn", "/java/tutorial.html")])
    hits = record_hits(CompiledRules(tuple(r for r in SITE if "logs" in r.sources), "logs"), df)
    assert sorted(zip(hits["rule_id"], hits["subject_type"], hits["subject_id"])) == [
        ("sites.fields.online_game", "domain", "g.cn"), ("sites.fields.online_game", "domain", "g.cn")]


def test_inference_counts_per_site_against_min_hits() -> None:
    logs = _logs([("g.cn", f"/网络游戏/{i}.html") for i in range(3)] + [("d.cn", "/处方药/1.html")] * 2)
    objects = conform(pd.DataFrame([{"bucket": "vod", "key": f"vod/电视剧全集_{i}.mp4", "etag": str(i)} for i in range(3)]),
                      OBJECTS)
    hits = pd.concat([record_hits(CompiledRules(tuple(r for r in SITE if s in r.sources), s), df)
                      for s, df in (("logs", logs), ("objects", objects))], ignore_index=True)
    fields = infer_fields(RULES, hits, {"vod": ["v.cn", "v2.cn"]})
    assert sorted((d, c) for d, fs in fields.items() for c in fs) == [
        ("g.cn", "site_online_game"), ("v.cn", "site_audiovisual"), ("v2.cn", "site_audiovisual")]
    assert fields["g.cn"]["site_online_game"].hits == 3     # d.cn: 2 drug hits stay below min_hits 3
