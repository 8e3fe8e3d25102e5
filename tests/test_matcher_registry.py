"""Matcher kinds as registered modules: every kind documents its keys and has an example that loads
and runs, unknown keys and kinds are located errors, and a new kind is one module."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from pipeline.errors import RuleLoadError
from pipeline.matchers import base
from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.selftest import run_rule_tests
from pipeline.records import SCHEMAS, conform
from pipeline.rules import model as m
from pipeline.rules.loader import load_rules

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"
BUILT_IN = ["keywords", "keywords_file", "regex", "hash_list", "field", "any", "all", "not"]


RULE = textwrap.dedent("""\
    rules:
      - id: {source}.example.rule
        title: example
        clause: "3.1"
        category: example
        severity: low
        source: {source}
        match: {match}
    """)


def _rule_file(root: Path, source: str, match: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "r.yaml").write_text(RULE.format(source=source, match=match) + extra, encoding="utf-8")
    return root


def _example_files(kind: base.MatcherKind, root: Path) -> None:
    for rel, text in kind.example_files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def _matcher_reference() -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("## Matchers")
    return text[start:text.index("\n## ", start + 1)]


def test_built_in_kinds_are_registered_in_message_order() -> None:
    # the order is part of the messages ("a matcher is one of: ..."), so it is fixed by the package
    assert [k.name for k in base.kinds()] == BUILT_IN


@pytest.mark.parametrize("kind", base.kinds(), ids=lambda k: k.name)
def test_every_key_of_every_kind_is_documented(kind: base.MatcherKind) -> None:
    ref = _matcher_reference()
    missing = [key for key in kind.keys if not re.search(rf"`{re.escape(key)}\b", ref)]
    assert not missing, f"{kind.name}: keys not in the matcher table of docs/rules.md: {missing}"
    assert kind.example, f"{kind.name} has no example"


@pytest.mark.parametrize("kind", base.kinds(), ids=lambda k: k.name)
def test_every_example_loads_and_runs(kind: base.MatcherKind, tmp_path: Path) -> None:
    _example_files(kind, tmp_path)
    rules = load_rules(str(_rule_file(tmp_path, kind.example_source, kind.example)))
    rule = rules.rules[0]
    assert rule.match is not None and base.owner(rule.match) is not None
    if kind.types:   # the kind builds its own class (keywords_file builds Keywords)
        assert isinstance(rule.match, kind.types)
    df = conform(pd.DataFrame({"source_file": ["x"], "source_line": [1]}), SCHEMAS[kind.example_source])
    [(got, mask, _)] = CompiledRules(rules.rules, kind.example_source).evaluate(df)
    assert got is rule and mask.shape == (1,)


@pytest.mark.parametrize("kind", base.kinds(), ids=lambda k: k.name)
def test_an_unknown_key_is_located_and_lists_the_kinds_keys(kind: base.MatcherKind, tmp_path: Path) -> None:
    _example_files(kind, tmp_path)
    assert kind.example.startswith("{")
    root = _rule_file(tmp_path, kind.example_source, "{bogus_key: 1, " + kind.example[1:])
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(root))
    [problem] = exc.value.problems
    column = len("    match: {") + 1   # the key's own place
    assert str(problem) == (f"{root / 'r.yaml'}:8:{column}: [{kind.example_source}.example.rule] unknown key "
                            f"'bogus_key' in a {kind.name} matcher (valid keys: {', '.join(kind.keys)})")


def test_an_unknown_kind_lists_the_registered_ones(tmp_path: Path) -> None:
    root = _rule_file(tmp_path, "objects", "\n      any:\n        - {keyword: [x], fields: [key]}")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(root))
    [problem] = exc.value.problems
    assert problem.location is not None and problem.location.line == 10 and problem.location.column == 12
    assert problem.message == "unknown matcher key 'keyword'"
    assert problem.hint == f"a matcher is one of: {', '.join(BUILT_IN)}"
    with pytest.raises(Exception, match="unknown matcher 'keyword'.*valid matchers: all, any, field"):
        base.MATCHERS.get("keyword")


def _no_parse(ctx: base.ParseContext, node: object, items: base.Items) -> None:
    return None


def test_a_name_or_a_class_is_registered_once() -> None:
    # another module may not take a built-in's name or class
    with pytest.raises(ValueError, match="registered twice"):
        base.register(base.MatcherKind(name="keywords", keys=("keywords",), parse=_no_parse))
    with pytest.raises(ValueError, match="already belongs to kind 'keywords'"):
        base.register(base.MatcherKind(name="keywords2", keys=("keywords2",), parse=_no_parse, types=(m.Keywords,)))
    assert "keywords2" not in base.MATCHERS and [k.name for k in base.kinds()] == BUILT_IN


# --- a new kind from one module ---------------------------------------------------------------

TOY_MODULE = '''\
"""min_length: N with field: F -- values of at least N characters (a toy kind, one module)."""

from dataclasses import dataclass

from pipeline.matchers.base import MatcherKind, check_field, leaf_evidence, register, value


@dataclass(frozen=True)
class MinLength:
    field: str
    length: int


def parse(ctx, node, items):
    length = value(items["min_length"][1])
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        ctx.error(items["min_length"][1], "min_length takes a positive whole number")
        return None
    if "field" not in items:
        ctx.error(node, "min_length needs field")
        return None
    name = value(items["field"][1])
    if not isinstance(name, str) or not check_field(ctx, items["field"][1], name):
        return None
    return MinLength(name, length)


def evaluate(engine, node, rule, part, scope):
    values = part.value(node.field).astype("string")
    mask = (values.str.len() >= node.length).fillna(False).to_numpy(dtype=bool)
    return mask, leaf_evidence(mask, node.field, "min_length", str(node.length), values)


register(MatcherKind(name="min_length", keys=("min_length", "field"), parse=parse, types=(MinLength,),
                     evaluate=evaluate, example="{min_length: 40, field: key}"))
'''


@pytest.fixture
def toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The toy kind's module written to a folder on the path and imported, as a deployment's would be."""
    (tmp_path / "toy_min_length.py").write_text(TOY_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("toy_min_length")
    finally:
        if "min_length" in base.MATCHERS:
            base.unregister("min_length")
        sys.modules.pop("toy_min_length", None)


TOY_TESTS = """\
    unless:
      - {field: bucket, equals: archive}
    tests:
      - record: {key: "uploads/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bin"}
        expect: match
      - record: {key: "short.txt"}
        expect: no_match
      - record: {key: "uploads/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bin", bucket: archive}
        expect: no_match
"""


def test_a_new_kind_is_one_module(toy_kind: ModuleType, tmp_path: Path) -> None:
    assert [k.name for k in base.kinds()] == [*BUILT_IN, "min_length"]
    root = _rule_file(tmp_path / "ok", "objects",
                      "\n      all:\n        - {min_length: 20, field: key}\n        - {not: {field: key, endswith: .txt}}",
                      TOY_TESTS)
    rules = load_rules(str(root))
    rule = rules.rules[0]
    assert isinstance(rule.match, m.AllOf) and type(rule.match.children[0]).__name__ == "MinLength"
    outcomes = run_rule_tests(rules)   # what `compliance rules test` runs
    assert len(outcomes) == 3 and all(o.passed for o in outcomes), [o.line() for o in outcomes if not o.passed]

    df = conform(pd.DataFrame({"key": ["a" * 25, "b" * 5, None, "c" * 30 + ".txt"], "source_file": "f",
                               "source_line": [1, 2, 3, 4]}), SCHEMAS["objects"])
    [(_, mask, ev)] = CompiledRules(rules.rules, "objects").evaluate(df)
    assert mask.tolist() == [True, False, False, False]
    assert ev[["row", "field", "kind", "pattern", "text"]].values.tolist() == [[0, "key", "min_length", "20", "a" * 25]]


def test_a_new_kinds_module_imported_again_replaces_its_kind(toy_kind: ModuleType) -> None:
    first = base.MATCHERS.get("min_length")
    importlib.reload(toy_kind)   # as Dask's upload_file does on every worker
    again = base.MATCHERS.get("min_length")
    assert again is not first and [k.name for k in base.kinds()] == [*BUILT_IN, "min_length"]
    assert base.owner(toy_kind.MinLength(field="key", length=3)) is again
    assert base.owner(first.types[0](field="key", length=3)) is None   # the old class is no kind's any more


def test_a_new_kinds_keys_and_values_are_checked_with_their_place(toy_kind: ModuleType, tmp_path: Path) -> None:
    root = _rule_file(tmp_path, "objects", "{min_length: 0, feild: key}")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(root))
    assert [(p.location and p.location.line, p.location and p.location.column, p.message, p.hint)
            for p in exc.value.problems] == [
        (8, 28, "unknown key 'feild' in a min_length matcher", "valid keys: min_length, field"),
        (8, 25, "min_length takes a positive whole number", None),
    ]


def test_without_its_module_the_new_kind_is_unknown(tmp_path: Path) -> None:
    root = _rule_file(tmp_path, "objects", "{min_length: 20}")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(root))
    assert [p.message for p in exc.value.problems] == ["unknown matcher key 'min_length'"]


@pytest.mark.cluster
def test_a_new_kind_scans_on_worker_processes(toy_kind: ModuleType, tmp_path: Path, dask_client) -> None:
    """The whole scan on the real cluster: workers import the kind's module (shipped as one file,
    as a deployment ships a plugin) when they unpickle the rules, and the case store gets its cases."""
    from pipeline.cases.store import open_store
    from pipeline.config import load_settings
    from pipeline.runner import scan

    dask_client.upload_file(str(tmp_path / "toy_min_length.py"))
    rules = _rule_file(tmp_path / "rules", "objects", "{min_length: 40, field: key}")
    long_key = "uploads/" + "x" * 40 + ".bin"
    pd.DataFrame({"account_id": ["acct-1", "acct-1", "acct-2"], "bucket": ["b1", "b1", "b2"],
                  "key": [long_key, "short.txt", "y" * 45]}).to_csv(tmp_path / "objects.csv", index=False)
    (tmp_path / "config.yaml").write_text(textwrap.dedent(f"""\
        rules: {rules}
        state_dir: {tmp_path / "state"}
        sources:
          objects:
          - path: {tmp_path / "objects.csv"}
            format: csv
        """), encoding="utf-8")
    settings = load_settings(str(tmp_path / "config.yaml"))
    scan(settings, client=dask_client)
    cases = open_store(settings.state_path).list_cases()
    assert sorted(zip(cases["rule_id"], cases["subject_id"])) == [
        ("objects.example.rule", f"b1/{long_key}"), ("objects.example.rule", "b2/" + "y" * 45)]
