"""Rule evaluation over a partition: every matcher kind, exceptions, and evidence spans."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.hits import record_hits
from pipeline.matchers.keyword_engine import BACKENDS
from pipeline.records import LOGS, OBJECTS, conform
from pipeline.rules.loader import load_rules

RULES = """\
rules:
  - id: objects.gambling.promotion
    title: Gambling
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      any:
        - keywords: [赌场, 百家乐, casino]
          fields: [key, title]
        - regex: '(?i)lottery-\\d{3,}'
          fields: [key]
    unless:
      - allow_words: [赌场风云]
      - field: bucket
        in: [licensed-lottery]
  - id: objects.moderation.pulp
    title: Porn label
    clause: "3.1.3.5.3"
    category: pornographic_adult
    severity: medium
    source: objects
    match:
      all:
        - field: labels.pulp
          gte: 0.9
        - not: {field: mime_type, startswith: "text/"}
  - id: objects.hash.bad
    title: Known bad
    clause: "3.1.3.7"
    category: malware
    severity: critical
    source: objects
    match: {hash_list: bad.txt, field: md5}
  - id: logs.attack.internal
    title: from a blocked range
    clause: "3.1.3.7"
    category: attack_injection
    severity: low
    source: logs
    match:
      all:
        - {field: client_ip, cidr: ["10.0.0.0/8", "2001:db8::/32"]}
        - {field: status, gte: 400}
        - keywords: [赌场]
          fields: [uri]
"""


@pytest.fixture()
def ruleset(tmp_path: Path):
    (tmp_path / "bad.txt").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "r.yaml").write_text(RULES, encoding="utf-8")
    return load_rules(str(tmp_path))


def objects(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["source_file"] = "f.csv"
    df["source_line"] = range(2, len(df) + 2)
    return conform(df, OBJECTS)


@pytest.fixture(params=BACKENDS.names())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def matched(ruleset, df: pd.DataFrame, source: str = "objects", backend: str = "pyahocorasick") -> dict[str, list[int]]:
    compiled = CompiledRules(ruleset.for_source(source), source, backend=backend)
    return {rule.id: [int(i) for i in mask.nonzero()[0]] for rule, mask, _ in compiled.evaluate(df)}


def test_keywords_regex_and_exceptions(ruleset, backend: str) -> None:
    df = objects([
        {"bucket": "b", "key": "promo/賭 場.png"},            # traditional + separator: hit
        {"bucket": "b", "key": "movies/赌场风云.mp4"},          # inside an allowed phrase: no hit
        {"bucket": "b", "key": "movies/赌场风云-赌场.mp4"},      # a second, free occurrence: hit
        {"bucket": "licensed-lottery", "key": "百家乐.png"},    # excepted bucket: no hit
        {"bucket": "b", "key": "x/LOTTERY-2026.zip"},          # regex, case-insensitive: hit
        {"bucket": "b", "key": "x/casinos.txt"},               # Latin keyword inside a longer word: no hit
        {"bucket": "b", "key": "x/casino_2026.png"},           # '_' is a boundary: hit
        {"bucket": "b", "key": None, "title": None},           # nulls never match
    ])
    assert matched(ruleset, df, backend=backend)["objects.gambling.promotion"] == [0, 2, 4, 6]


def test_field_conditions_on_labels_and_hashes(ruleset) -> None:
    df = objects([
        {"bucket": "b", "key": "a.jpg", "mime_type": "image/jpeg", "labels": '{"pulp": 0.95}'},
        {"bucket": "b", "key": "b.jpg", "mime_type": "image/jpeg", "labels": '{"pulp": 0.89}'},
        {"bucket": "b", "key": "c.txt", "mime_type": "text/plain", "labels": '{"pulp": 0.99}'},
        {"bucket": "b", "key": "d.jpg", "mime_type": "image/jpeg", "labels": "not json"},
        {"bucket": "b", "key": "e.bin", "md5": "0123456789ABCDEF0123456789ABCDEF"},
        {"bucket": "b", "key": "f.jpg", "mime_type": "image/jpeg", "labels": '{"pulp": 0.95}'},  # parsed once
    ])
    got = matched(ruleset, df)
    assert got["objects.moderation.pulp"] == [0, 5]
    assert got["objects.hash.bad"] == [4]
    # a frame of one's own (a notebook's) may hold the maps as objects rather than JSON text
    as_dicts = pd.DataFrame({"bucket": ["b", "b"], "key": ["g.jpg", "h.jpg"], "mime_type": ["image/jpeg"] * 2,
                             "labels": [{"pulp": 0.91}, {"porn": 0.99}]})
    assert matched(ruleset, as_dicts)["objects.moderation.pulp"] == [0]


def test_evidence_carries_original_span_and_provenance(ruleset, backend: str) -> None:
    df = objects([{"bucket": "b", "key": "k1", "title": "最新 賭\u200b場 開業", "account_id": "acc9", "etag": "e1"}])
    hits = record_hits(CompiledRules(ruleset.for_source("objects"), "objects", backend=backend), df)
    assert len(hits) == 1
    row = hits.iloc[0]
    assert row["subject_type"] == "object" and row["subject_id"] == "b/k1" and row["account_id"] == "acc9"
    assert row["source_file"] == "f.csv" and row["source_line"] == 2 and row["hit_key"] == "b/k1@e1"
    import json
    ev = json.loads(row["evidence"])[0]
    assert ev["field"] == "title" and ev["text"] == "賭\u200b場" and ev["pattern"] == "赌场"
    assert ev["normalized"] == "赌场"
    assert "最新 賭\u200b場 開業"[ev["span"][0]:ev["span"][1]] == ev["text"]


def test_log_cidr_status_and_url_decoding(ruleset, backend: str) -> None:
    df = conform(pd.DataFrame([
        {"client_ip": "10.1.2.3", "status": 404, "uri": "/%E8%B5%8C%E5%9C%BA/x"},
        {"client_ip": "11.1.2.3", "status": 404, "uri": "/%E8%B5%8C%E5%9C%BA/x"},
        {"client_ip": "2001:db8::1", "status": 500, "uri": "/赌场"},
        {"client_ip": "10.1.2.3", "status": 200, "uri": "/赌场"},
        {"client_ip": "not-an-ip", "status": 500, "uri": "/赌场"},
    ]), LOGS)
    assert matched(ruleset, df, "logs", backend)["logs.attack.internal"] == [0, 2]


def test_configured_keyword_backend_reaches_the_compiled_rules(ruleset, tmp_path: Path) -> None:
    from pipeline.config import load_settings
    from pipeline.errors import ConfigError
    from pipeline.runner import compiled_for, scan_context

    assert load_settings(None, environ={}).scan.keyword_backend == "pyahocorasick"
    settings = load_settings(None, environ={"COMPLIANCE_SCAN__KEYWORD_BACKEND": "ahocorasick-rs"})
    ctx = scan_context(settings, ruleset)
    assert ctx.keyword_backend == "ahocorasick-rs"
    compiled = compiled_for(ctx.ruleset, "objects", ctx.keyword_backend)
    assert compiled.backend == "ahocorasick-rs"
    assert {type(b).name for b in compiled._backends.values()} == {"ahocorasick-rs"}
    assert compiled_for(ctx.ruleset, "objects").backend == "pyahocorasick"   # cached per backend
    (tmp_path / "c.yaml").write_text("scan:\n  keyword_backend: hyperscan\n")
    with pytest.raises(ConfigError, match="keyword_backend"):
        load_settings(str(tmp_path / "c.yaml"), environ={})


@given(st.lists(st.text(alphabet=st.sampled_from(list("ab赌場ß😀\u200b é")), max_size=12), min_size=1, max_size=8),
       st.data())
@settings(max_examples=200, deadline=None)
def test_span_texts_cut_the_characters_python_would(rows: list[str], data: st.DataObject) -> None:
    from pipeline.matchers.evaluate import _span_texts

    col = pd.Series(rows, dtype="string[pyarrow]")
    spans = []
    for _ in range(data.draw(st.integers(1, 10))):
        r = data.draw(st.integers(0, len(rows) - 1))
        start = data.draw(st.integers(0, len(rows[r])))
        spans.append((r, start, data.draw(st.integers(start, len(rows[r])))))
    spans.sort()
    r, s, e = (np.array(x, dtype=np.int64) for x in zip(*spans))
    assert _span_texts(col, r, s, e).to_pylist() == [rows[i][a:b] for i, a, b in spans]
