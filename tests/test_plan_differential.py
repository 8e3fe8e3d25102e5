"""The compiled plan against the tree-walking evaluator it replaces, on generated data.

Generated access logs (every format of pipeline/generate/logs.py) with the Sigma attack lines of
tests/sigma_logs.py, and generated object metadata (pipeline/generate/objects.py), are read as a
scan reads them and evaluated with the starter rules and the 86 SigmaHQ web-server rules, once by
the plan and once by the reference: every rule's matched rows, every evidence row and the hit rows
made from them must be equal. Hypothesis then draws Sigma values (wildcards, modifiers, casing,
the characters RE2 folds onto ASCII letters) and texts, and general expressions, where the plan
decides by literal positions or gates RE2 by literals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config import load_settings
from pipeline.generate.logs import generate_logs
from pipeline.generate.objects import generate_objects
from pipeline.matchers.evaluate import CompiledRules
from pipeline.matchers.hits import record_hits
from pipeline.matchers.plan_literals import analyze
from pipeline.rules import model as m
from pipeline.rules.loader import load_rules
from pipeline.rules.sigma import values as sv
from pipeline.runner import plan_tasks, read_records

sys.path.insert(0, str(Path(__file__).parent))

from sigma_logs import corpus_records, write_logs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


_read = read_records


@pytest.fixture(scope="module")
def logs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("gen-logs")
    summary = generate_logs(out, lines=4000, seed=14)
    frames = [_read("logs", str(out / f["path"]), f["format"], domain=f["domain"]) for f in summary["files"]]
    folder = corpus / "sigma-webserver"
    if not folder.is_dir():
        pytest.skip(f"no Sigma rules at {folder}")
    paths = write_logs(corpus_records(folder), tmp_path_factory.mktemp("sigma-logs"))
    frames += [_read("logs", str(p), fmt, domain="www.example.cn") for fmt, p in paths.items()]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("gen-objects")
    summary = generate_objects(out, rows=3000, seed=14, rules_dir=ROOT / "rules")
    tasks = plan_tasks(load_settings(summary["config"]))
    return pd.concat([_read("objects", t.path, t.format, **dict(t.extras)) for t in tasks], ignore_index=True)


@pytest.fixture(scope="module")
def ruleset(corpus: Path) -> m.RuleSet:
    return load_rules(str(ROOT / "rules"), sigma_folders=(str(corpus / "sigma-webserver"),),
                      sigma=load_settings(None).sigma)


def _evidence(ev: pd.DataFrame) -> list[tuple]:
    """Evidence rows as plain values (the frames' dtypes follow which leaves had rows)."""
    def plain(v: object) -> object:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, (int, float, np.integer, np.floating)):   # a span offset, int or float by dtype
            return int(v)
        return str(v)
    return [tuple(plain(v) for v in row) for row in ev.itertuples(index=False, name=None)]


def assert_plan_agrees(rules: tuple[m.Rule, ...], source: str, df: pd.DataFrame) -> dict[str, int]:
    plan = CompiledRules(rules, source, evaluator="plan")
    ref = CompiledRules(rules, source, evaluator="reference")
    got, got_masks = plan.evaluate_all(df)
    want, want_masks = ref.evaluate_all(df)
    assert [r.id for r, _, _ in got] == [r.id for r, _, _ in want]
    matched = {}
    for (rule, mask, ev), (_, ref_mask, ref_ev) in zip(got, want):
        assert np.array_equal(mask, ref_mask), (rule.id, np.flatnonzero(mask ^ ref_mask)[:5])
        assert _evidence(ev) == _evidence(ref_ev), rule.id
        matched[rule.id] = int(mask.sum())
    assert got_masks.keys() == want_masks.keys()
    for rid in got_masks:
        assert np.array_equal(got_masks[rid], want_masks[rid]), rid
        matched[rid] = int(got_masks[rid].sum())
        assert np.array_equal(plan.match_mask(ref.rules[[r.id for r in ref.rules].index(rid)], df), want_masks[rid])
    pd.testing.assert_frame_equal(record_hits(plan, df, got), record_hits(ref, df, want))
    # a second batch through the same plan: literals found in many values are then searched apart
    again, _ = plan.evaluate_all(df)
    for (rule, mask, ev), (_, ref_mask, ref_ev) in zip(again, want):
        assert np.array_equal(mask, ref_mask) and _evidence(ev) == _evidence(ref_ev), rule.id
    return matched


def test_every_log_rule_matches_as_the_reference_does(ruleset: m.RuleSet, logs: pd.DataFrame) -> None:
    rules = ruleset.for_source("logs")
    sigma = [r for r in rules if "sigma" in r.meta]
    assert len(sigma) == 86 and len(rules) > len(sigma)
    matched = assert_plan_agrees(rules, "logs", logs)
    plan = CompiledRules(rules, "logs")._plan
    plan.evaluate_all(logs)
    assert any(f.dense for f in plan.fields.values())   # the path for frequent literals was taken
    # the data reaches the rules: nearly every Sigma rule and some starter log rules match rows
    assert sum(1 for r in sigma if matched[r.id]) >= 85
    assert sum(1 for r in rules if "sigma" not in r.meta and matched[r.id]) >= 3


def test_every_object_rule_matches_as_the_reference_does(ruleset: m.RuleSet, objects: pd.DataFrame) -> None:
    rules = ruleset.for_source("objects")
    matched = assert_plan_agrees(rules, "objects", objects)
    assert sum(1 for n in matched.values() if n) >= len([r for r in rules if r.aggregate is None]) // 2


def test_batches_cut_anywhere_agree(ruleset: m.RuleSet, logs: pd.DataFrame) -> None:
    """A batch of a few rows (values then rarely repeat) and one that starts mid-way agree too."""
    rules = ruleset.for_source("logs")
    assert_plan_agrees(rules, "logs", logs.iloc[-40:].reset_index(drop=True))
    assert_plan_agrees(rules, "logs", logs.iloc[1000:3000])


# -- drawn values and texts --------------------------------------------------------------------

_ALPHABET = "aAkKsS/.-_ *?\\\u212a\u017f\u00e9\u00c9\u4e2d0"
_texts = st.lists(st.one_of(st.none(), st.text(alphabet=_ALPHABET, max_size=12)), min_size=1, max_size=40)
_values = st.text(alphabet=_ALPHABET, min_size=1, max_size=6)
_mods = st.sampled_from([[], ["contains"], ["startswith"], ["endswith"], ["cased"], ["contains", "cased"],
                         ["startswith", "cased"], ["endswith", "cased"]])


def _rule(i: int, leaf: m.Matcher, sigma: bool = True) -> m.Rule:
    return m.Rule(f"r{i}", "t", "c", "cat", "low", ("logs",), leaf, "p", 1, "h", meta={"sigma": {}} if sigma else {})


def _frame(texts: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"uri": pd.array(texts, dtype="string"), "source_file": "f",
                         "source_line": np.arange(len(texts))})


@settings(max_examples=150, deadline=None)
@given(vals=st.lists(_values, min_size=1, max_size=4), mods=_mods, texts=_texts, negate=st.booleans())
def test_drawn_sigma_values_agree(vals: list[str], mods: list[str], texts: list[str | None], negate: bool) -> None:
    patterns = [p for v in vals for p in sv.with_modifiers(v, mods)]
    leaf: m.Matcher = m.Regex(sv.alternation(patterns), ("uri",), decoded=False, label="drawn")
    if negate:
        leaf = m.AllOf((m.Regex("(?is)a", ("uri",), decoded=False, label="a"), m.Not(leaf)))
    assert_plan_agrees((_rule(0, leaf),), "logs", _frame(texts))


def test_sigma_literals_are_decided_without_re2() -> None:
    """contains / startswith / endswith / equals of one literal are exact; wildcards keep a gate."""
    shapes = {"contains": (False, False), "startswith": (True, False), "endswith": (False, True)}
    for mod, (start, end) in shapes.items():
        got = analyze(sv.alternation(sv.with_modifiers("Foo.Bar", [mod])))
        assert got.exact is not None and [(a.literal, a.start, a.end) for a in got.exact] == [("foo.bar", start, end)]
    eq = analyze(sv.alternation(sv.with_modifiers("GET", [])))
    assert eq.exact is not None and (eq.exact[0].start, eq.exact[0].end) == (True, True)
    wild = analyze(sv.alternation(sv.with_modifiers("/CGI*PassWD?x", ["contains"])))
    assert wild.exact is None and wild.gate == ("passwd",)   # the longest part, folded
    assert analyze(sv.alternation(sv.with_modifiers("Foo", ["cased"]))).exact is None   # case matters: RE2


_REGEXES = ["(?i)lottery-\\d{3,}", "a(b|cd)+e", "(?i)(foo|bar)baz", "x*y", "[[:alpha:]]+k", "\\pL+s",
            "(?s)a.b", "^ab$", "(?i)\u017f", "(?i)k\u00e9", "\u4e2d+a", "(a|b?)c", "(?i)(?-i:K)s", "a{2}s"]


@settings(max_examples=60, deadline=None)
@given(texts=_texts, which=st.lists(st.sampled_from(_REGEXES), min_size=1, max_size=3, unique=True))
def test_drawn_texts_under_general_expressions_agree(texts: list[str | None], which: list[str]) -> None:
    rules = tuple(_rule(i, m.Regex(p, ("uri",), decoded=False)) for i, p in enumerate(which))
    rules += tuple(_rule(10 + i, m.Regex(p, ("uri",))) for i, p in enumerate(which))   # starter form
    assert_plan_agrees(rules, "logs", _frame([t.replace("*", "ab").replace("?", "e") if t else t for t in texts]))


def test_general_gates_are_literals_every_match_holds() -> None:
    assert analyze("(?i)lottery-\\d{3,}").gate == ("lottery-",)
    assert analyze("a(b|cd)+e").gate == ("a",)              # as long as the alternatives, and one literal
    assert analyze("(?:foo|barx)z").gate == ("barx", "foo")  # longer than z: one of them is there
    assert analyze("x*y").gate == ("y",)
    assert analyze("(a|b?)c").gate == ("c",)
    # what Python's parser may read otherwise than RE2 gets no gate: RE2 reads every row
    assert analyze("[[:alpha:]]+k").gate is None and analyze("\\pL+s").gate is None


_ENCODED = st.lists(st.sampled_from(["%", "%e8", "%b5", "%8c", "%2", "a", "%41", "\u00e9", "%zz", "%E5%9C%BA",
                                     "\u4e2d", "%c3", "%25", "\n", "%0A"]), max_size=6).map("".join)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), _ENCODED), min_size=1, max_size=30))
def test_decoding_distinct_values_at_once_decodes_each_as_alone(values: list[str | None]) -> None:
    from pipeline.matchers.evaluate import _Partition
    from pipeline.matchers.plan import _decoded

    df = pd.DataFrame({"uri": pd.array(values, dtype="string")})
    pd.testing.assert_series_equal(_decoded(df["uri"]), _Partition(df, "logs").text("uri"))
