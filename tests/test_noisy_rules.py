"""The scan summary reports rows hit per rule, and names a noisy rule with its most frequent patterns."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

RULES = """\
rules:
  - id: objects.test.noisy
    title: a word too common for the data
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      keywords: [优惠, 赌场]
      fields: [title, tags]
  - id: objects.test.rare
    title: a rare word
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      keywords: [百家乐]
      fields: [title]
"""


def test_noisy_rule_is_named_in_table_and_json(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES, encoding="utf-8")
    titles = ["限时优惠" if i % 4 == 0 else "风景照片" for i in range(400)]
    titles[1], titles[2], titles[5] = "赌场优惠", "赌场", "百家乐"
    tags = ["中,出" if i % 3 == 0 else "" for i in range(400)]
    pd.DataFrame({"bucket": "b", "key": [f"k{i}.jpg" for i in range(400)], "etag": "e", "title": titles,
                  "tags": tags}).to_csv(tmp_path / "objects.csv", index=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"rules: {tmp_path / 'rules'}\nstate_dir: state\ndask: {{workers: 1}}\n"
                   "sources:\n  objects:\n    - {path: objects.csv, format: csv}\n", encoding="utf-8")

    def scan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan", "--full",
                               *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "COLUMNS": "200"})

    res = scan("--json")
    assert res.returncode == 0, res.stderr
    rules = {r["rule_id"]: r for r in json.loads(res.stdout)["rules"]}
    noisy, rare = rules["objects.test.noisy"], rules["objects.test.rare"]
    assert (noisy["rows_hit"], noisy["share"], noisy["noisy"]) == (102, 102 / 400, True)
    assert noisy["top_patterns"] == [["优惠", 101], ["赌场", 2]]
    assert (rare["rows_hit"], rare["noisy"]) == (1, False) and "top_patterns" not in rare
    assert "noisy rule objects.test.noisy" in res.stderr and "优惠 (101)" in res.stderr

    res = scan()
    assert res.returncode == 0, res.stderr
    assert "rows hit per rule" in res.stdout and "25.50%" in res.stdout and "0.25%" in res.stdout
    assert "noisy rule objects.test.noisy: hit 25.5% of the objects rows scanned" in res.stdout
    assert "noisy rule objects.test.rare" not in res.stdout + res.stderr


def test_the_share_is_a_setting(tmp_path: Path) -> None:
    from pipeline.matchers.rule_rows import rule_rows
    from pipeline.matchers.hits import HIT_COLUMNS
    from pipeline.rules.loader import load_rules

    (tmp_path / "r.yaml").write_text(RULES, encoding="utf-8")
    rs = load_rules(str(tmp_path))
    ev = json.dumps([{"field": "title", "kind": "keywords", "pattern": "百家乐", "text": "百家乐"}])
    hits = pd.DataFrame([{"rule_id": "objects.test.rare", "evidence": ev}] * 3, columns=HIT_COLUMNS)
    assert rule_rows(hits, rs, {"objects": 100}, 0.05)[0]["noisy"] is False
    hot = rule_rows(hits, rs, {"objects": 100}, 0.02)[0]
    assert hot["noisy"] is True and hot["top_patterns"] == [["百家乐", 3]]
