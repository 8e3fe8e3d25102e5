"""Rule loading: the contract of rules.md, and every problem reported at once with its place."""

from pathlib import Path

import pytest

from pipeline.errors import RuleLoadError
from pipeline.rules import model as m
from pipeline.rules.loader import load_rules

GOOD = """\
rules:
  - id: objects.gambling.promotion
    title: Gambling or lottery promotion
    clause: "3.1.3.5.4"
    law: "互联网信息服务管理办法 第十五条"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      any:
        - keywords: [博彩, 赌场, 百家乐, 六合彩, baccarat]
          fields: [key, title, description, tags]
        - keywords_file: lexicons/gambling.txt
          fields: [key, title]
        - regex: '(?i)casino-\\d{3,}'
          fields: [key]
    unless:
      - allow_words: [赌场风云]
      - field: bucket
        in: [licensed-lottery-assets]
    tests:
      - record: {key: "promo/百家乐下载.apk"}
        expect: match
      - record: {key: "photos/beach.jpg", title: "假期"}
        expect: no_match
  - id: objects.moderation.porn_label
    title: Moderation says pornographic
    clause: "3.1.3.5.3"
    category: pornographic_adult
    severity: medium
    source: objects
    match:
      all:
        - field: labels.pulp
          gte: 0.9
        - not: {field: mime_type, startswith: "text/"}
  - id: logs.scan.notfound_burst
    title: 404 burst
    clause: "3.1.3.7"
    category: attack_scanning
    severity: medium
    source: logs
    match: {field: status, equals: 404}
    aggregate: {group_by: [client_ip], window: 1m, count_gte: 50}
  - id: logs.abuse.bandwidth
    title: bandwidth
    clause: "3.1.3.6"
    category: abuse_bandwidth
    severity: medium
    source: logs
    subject: domain
    aggregate: {group_by: [domain], window: 1d, sum: {field: bytes_sent, gte: 1e11}}
"""


def make(tmp_path: Path, text: str, name: str = "gambling.yaml") -> Path:
    (tmp_path / "lexicons").mkdir(exist_ok=True)
    (tmp_path / "lexicons" / "gambling.txt").write_text("# gambling\n老虎机\n\nslots\n", encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_loads_the_contract_example(tmp_path: Path) -> None:
    rs = load_rules(str(make(tmp_path, GOOD)))
    rule = rs.by_id("objects.gambling.promotion")
    assert rule.sources == ("objects",) and rule.severity == "high" and rule.clause == "3.1.3.5.4"
    assert rule.allow_words == ("赌场风云",)
    assert isinstance(rule.match, m.AnyOf) and len(rule.match.children) == 3
    kw_file = rule.match.children[1]
    assert isinstance(kw_file, m.Keywords) and kw_file.words == ("老虎机", "slots")
    assert isinstance(rule.unless[0], m.FieldCondition) and rule.unless[0].op == "in"
    assert [t.expect for t in rule.tests] == [True, False]
    agg = rs.by_id("logs.scan.notfound_burst").aggregate
    assert agg is not None and agg.window_seconds == 60 and agg.count_gte == 50
    bw = rs.by_id("logs.abuse.bandwidth").aggregate
    assert bw is not None and bw.sum_gte == 1e11 and bw.window_seconds == 86400


def test_content_hash_follows_lexicon_changes(tmp_path: Path) -> None:
    before = load_rules(str(make(tmp_path, GOOD))).by_id("objects.gambling.promotion").content_hash
    (tmp_path / "lexicons" / "gambling.txt").write_text("老虎机\n", encoding="utf-8")
    after = load_rules(str(tmp_path)).by_id("objects.gambling.promotion")
    other = load_rules(str(tmp_path)).by_id("objects.moderation.porn_label")
    assert after.content_hash != before
    assert other.content_hash == load_rules(str(make(tmp_path, GOOD))).by_id("objects.moderation.porn_label").content_hash


BROKEN = """\
rules:
  - id: objects.bad.one
    title: t
    clause: "3.1.3.5.4"
    category: c
    severity: hgh
    source: objects
    match:
      any:
        - keywords: [a]
          fields: [key, titel]
        - regex: '(?<=x)y'
          fields: [key]
        - keywords: [b]
          fields: [key]
          normalise: false
  - id: objects.bad.one
    title: dup
    clause: "3.1.3.5.4"
    category: c
    severity: low
    source: objectz
    match: {keywords: [a], fields: [key]}
  - id: objects.bad.three
    title: t
    clause: "3.1.3.5.4"
    category: c
    severity: low
    source: objects
    match: {feild: bucket, equals: x}
    tests:
      - record: {kee: x}
        expect: match
"""


def test_every_problem_reported_with_location(tmp_path: Path) -> None:
    make(tmp_path, BROKEN, "bad.yaml")
    (tmp_path / "other.yaml").write_text("rules:\n  - id: x.y\n    title: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(tmp_path))
    lines = [str(p) for p in exc.value.problems]
    text = "\n".join(lines)
    bad = str(tmp_path / "bad.yaml")
    assert f"{bad}:6:15: [objects.bad.one] unknown severity 'hgh'" in text
    assert f"{bad}:11:25" in text and "unknown field 'titel'" in text and "valid fields:" in text
    assert "not a valid RE2 regular expression" in text and f"{bad}:12:18" in text
    assert "unknown key 'normalise'" in text and "valid keys: keywords, fields, normalize" in text
    assert "duplicate rule id 'objects.bad.one', first defined at " + f"{bad}:2" in text
    assert "unknown source 'objectz'" in text
    assert "unknown matcher key 'feild'" in text
    assert "unknown field(s) kee" in text
    assert "other.yaml:" in text and "not valid YAML" in text
    assert all(line.startswith(str(tmp_path)) for line in lines)


def test_a_rule_missing_a_key_still_has_its_other_problems_reported(tmp_path: Path) -> None:
    make(tmp_path, """\
rules:
  - id: objects.a.b
    titel: x
    clause: "3.1"
    category: c
    severity: extreme
    source: objects
    match: {keywords: [赌场], fields: [nosuchfield]}
  - id: logs.a.c
    title: y
    clause: "3.1"
    category: c
    severity: low
    source: logs
    aggregate: {count_gte: -1, window: 5x, group_by: [client_ip]}
""", "bad.yaml")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(tmp_path))
    text = "\n".join(str(p) for p in exc.value.problems)
    for expected in ("unknown key 'titel'", "missing 'title'", "unknown severity 'extreme'",
                     "unknown field 'nosuchfield'", "aggregate needs window", "count_gte takes a positive"):
        assert expected in text
    assert "rule needs match" not in text   # the rule has an aggregate, a broken one
    assert len(exc.value.problems) == 6


def test_missing_lexicon_and_bad_hash_file(tmp_path: Path) -> None:
    text = """\
rules:
  - id: objects.hash.bad
    title: t
    clause: "3.1.3.7"
    category: malware
    severity: high
    source: objects
    match:
      any:
        - hash_list: lexicons/hashes.txt
          field: md5
        - keywords_file: lexicons/missing.txt
          fields: [key]
"""
    make(tmp_path, text, "hash.yaml")
    (tmp_path / "lexicons" / "hashes.txt").write_text("d41d8cd98f00b204e9800998ecf8427e\nnot a hash\n")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(tmp_path))
    text_out = str(exc.value)
    assert "1 line(s) are not hashes" in text_out and "file not found: lexicons/missing.txt" in text_out


def test_aggregate_needs_logs_and_one_condition(tmp_path: Path) -> None:
    text = """\
rules:
  - id: objects.agg.bad
    title: t
    clause: "3.1.3.7"
    category: x
    severity: low
    source: objects
    aggregate: {group_by: [bucket], window: 1m, count_gte: 5}
  - id: logs.agg.bad
    title: t
    clause: "3.1.3.7"
    category: x
    severity: low
    source: logs
    aggregate: {group_by: [client_ip], window: 5 minutes, count_gte: 5, sum: {field: bytes_sent, gte: 1}}
"""
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(make(tmp_path, text, "agg.yaml")))
    out = str(exc.value)
    assert "aggregate rules need source: logs" in out and "window" in out


def test_every_starter_rule_category_has_a_chinese_label_for_notices(root: Path) -> None:
    """Customers read notices in Chinese: no category of the shipped rules may fall back to its code."""
    from pipeline.enforcement.notices import category_zh

    rs = load_rules(str(root / "rules"))
    missing = sorted({r.category for r in rs.rules
                      if not r.category.startswith("site_") and category_zh(r.category) == r.category})
    assert missing == []


def test_shipped_rules_load_and_their_inline_tests_pass(root: Path) -> None:
    from pipeline.matchers.selftest import run_rule_tests

    outcomes = run_rule_tests(load_rules(str(root / "rules")))
    failed = [o.line() for o in outcomes if not o.passed]
    assert outcomes and failed == []


def test_a_check_rule_without_category_is_an_error_not_a_crash(tmp_path: Path) -> None:
    make(tmp_path, """\
rules:
  - id: icp.licences.no_category
    title: t
    clause: "3.1"
    severity: low
    source: icp
    check: licence_missing
""")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(tmp_path))
    assert [p.message for p in exc.value.problems] == ["rule is missing 'category'"]


def test_a_hash_list_and_its_field_are_one_matcher_and_its_file_is_hashed(tmp_path: Path) -> None:
    # 'field' is also the field-condition kind: beside hash_list it is hash_list's key
    (tmp_path / "md5.txt").write_text("0123456789abcdef0123456789abcdef\n", encoding="utf-8")
    rule_text = GOOD.replace("        - regex: '(?i)casino-\\d{3,}'\n          fields: [key]\n",
                             "        - {hash_list: md5.txt, field: md5}\n")
    assert rule_text != GOOD
    before = load_rules(str(make(tmp_path, rule_text))).by_id("objects.gambling.promotion")
    assert isinstance(before.match, m.AnyOf) and isinstance(before.match.children[2], m.HashList)
    (tmp_path / "md5.txt").write_text("fedcba9876543210fedcba9876543210\n", encoding="utf-8")
    after = load_rules(str(tmp_path)).by_id("objects.gambling.promotion")
    assert isinstance(after.match, m.AnyOf) and isinstance(after.match.children[2], m.HashList)
    assert after.match.children[2].hashes == frozenset({"fedcba9876543210fedcba9876543210"})
    assert after.content_hash != before.content_hash



BLANK = """\
rules:
  - id: objects.blank.keyword
    title: t
    clause: "3.1.3.7"
    category: malware
    severity: high
    source: objects
    match:
      any:
        - keywords: [赌场, "\\u200b \\u00ad", "·\\u200b"]
          fields: [key]{literal}
        - keywords_file: lexicons/words.txt
          fields: [title]
"""


def _blank_problems(tmp_path: Path, literal: str, lexicon: str) -> list[str]:
    make(tmp_path, BLANK.format(literal=literal), "blank.yaml")
    (tmp_path / "lexicons" / "words.txt").write_text(lexicon, encoding="utf-8")
    try:
        load_rules(str(tmp_path / "blank.yaml"))
    except RuleLoadError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_a_keyword_that_normalizes_to_nothing_is_an_error_with_its_place(tmp_path: Path) -> None:
    literally = "\n          normalize: false"
    inline = _blank_problems(tmp_path, "", "老虎机\nslots\n")
    assert len(inline) == 1 and "blank.yaml:10:" in inline[0] and "'\\u200b \\xad' is empty once normalized" in inline[0]
    # matched literally the inline word is not blank; a lexicon's blank word is named with the lexicon's place
    lexicon = _blank_problems(tmp_path, literally, "老虎机\n\u00ad\u2060\nslots\n")
    assert len(lexicon) == 1 and "blank.yaml:13:" in lexicon[0] and "'\\xad\\u2060' is empty once normalized" in lexicon[0]
    # a lone separator, and separators deleted between letters or CJK characters, are not blank
    assert _blank_problems(tmp_path, literally, "老虎机\nｓ．ｌ．ｏ．ｔ\n赌 \u200b场\n") == []
