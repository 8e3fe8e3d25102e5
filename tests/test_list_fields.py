"""List-valued fields (tags): a keyword never spans two items; every evasion inside one item still hits."""

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.hits import record_hits
from pipeline.matchers.keyword_engine import BACKENDS
from pipeline.records import OBJECTS, conform
from pipeline.rules.loader import load_rules

RULES = """\
rules:
  - id: objects.tags.normalized
    title: t
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      keywords: [中出, 下下, 赌场, casino]
      fields: [title, tags]
  - id: objects.tags.literal
    title: t
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      keywords: [赌场, "a,b"]
      normalize: false
      fields: [tags]
"""


@pytest.fixture(params=BACKENDS.names())
def compiled(request: pytest.FixtureRequest, tmp_path: Path) -> CompiledRules:
    (tmp_path / "r.yaml").write_text(RULES, encoding="utf-8")
    return CompiledRules(load_rules(str(tmp_path)).for_source("objects"), "objects", backend=str(request.param))


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["bucket"], df["key"], df["etag"] = "b", [f"k{i}" for i in range(len(df))], "e"
    df["source_file"], df["source_line"] = "f.csv", range(2, len(df) + 2)
    return conform(df, OBJECTS)


def spans(compiled: CompiledRules, df: pd.DataFrame, rule_id: str) -> dict[int, list[tuple[str, str, int, int]]]:
    """row → [(field, original text of the span, start, end)] of one rule's evidence."""
    hits = record_hits(compiled, df)
    out: dict[int, list[tuple[str, str, int, int]]] = {}
    for r in hits[hits["rule_id"] == rule_id].itertuples():
        row = int(r.subject_id.split("/k")[1])
        out[row] = [(m["field"], m["text"], *m["span"]) for m in json.loads(r.evidence)]
    return out


def test_no_keyword_spans_two_tags(compiled: CompiledRules) -> None:
    df = frame([
        {"tags": "中,出"},               # 0: two tags, 中 and 出: no hit
        {"tags": "上,下,下,左"},          # 1: 下 and 下 are two tags: no hit
        {"tags": "赌,场"},               # 2
        {"tags": "x,c,a,s,i,n,o"},       # 3: single letters are tags, not a spelled-out word
        {"title": "中,出"},              # 4: a title is one text: the comma is an inserted separator, a hit
    ])
    got = spans(compiled, df, "objects.tags.normalized")
    assert sorted(got) == [4]
    assert got[4] == [("title", "中,出", 0, 3)]


def test_every_evasion_inside_one_tag_still_hits_with_original_offsets(compiled: CompiledRules) -> None:
    tags = ["新品,賭 場,优惠",          # traditional + an inserted space
            "赌\u200b场",                # a zero-width character
            "旅游,c.a.s.i.n.o",          # spelled out with dots
            "ＣＡＳＩＮＯ,x",             # full width
            "x,casino",                  # Latin, after a one-letter tag: the separator is a boundary
            "中出,下下"]                  # two whole tags, each a keyword
    got = spans(compiled, frame([{"tags": t} for t in tags]), "objects.tags.normalized")
    assert sorted(got) == list(range(len(tags)))
    for row, found in got.items():
        for field, text, start, end in found:
            assert field == "tags" and tags[row][start:end] == text and "," not in text
    assert [t for _, t, _, _ in got[0]] == ["賭 場"]
    assert [t for _, t, _, _ in got[2]] == ["c.a.s.i.n.o"]
    assert [t for _, t, _, _ in got[5]] == ["中出", "下下"]


def test_literal_keywords_stay_inside_one_tag(compiled: CompiledRules) -> None:
    df = frame([{"tags": "x,赌场,y"}, {"tags": "赌,场"}, {"tags": "a,b"}])
    got = spans(compiled, df, "objects.tags.literal")
    # "a,b" would span two tags: a keyword never does, even a literal one
    assert got == {0: [("tags", "赌场", 2, 4)]}
