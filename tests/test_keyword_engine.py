"""Keyword engine: evasions that must hit, over-matches that must not, spans, and fast == reference."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from keyword_strategies import pattern_st, text_st  # noqa: E402

from pipeline.errors import PipelineError, RuleError  # noqa: E402
from pipeline.matchers.keyword_engine import BACKENDS, KeywordHits, build_backend  # noqa: E402
from pipeline.normalize import normalize  # noqa: E402

BACKEND_NAMES = ["ahocorasick-rs", "pyahocorasick", "reference"]
FAST_BACKENDS = [name for name in BACKEND_NAMES if name != "reference"]


def spans(patterns: list[str], texts: list[str | None], backend: str, *, normalize: bool = True
          ) -> list[tuple[int, str, str]]:
    """(row, pattern, original text of the hit) per hit."""
    hits = build_backend(patterns, normalize=normalize, backend=backend).find(texts)
    return [(r, patterns[p], str(texts[r])[s:e]) for r, p, s, e in hits.as_tuples()]


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(("pattern", "text", "evidence"), [
    ("casino", "ＣＡＳＩＮＯ", "ＣＡＳＩＮＯ"),
    ("casino", "Play CaSiNo now", "CaSiNo"),
    ("赌场", "澳门賭場开业", "賭場"),
    ("百家乐", "百家樂下载.apk", "百家樂"),
    ("赌场", "赌*场", "赌*场"),
    ("赌场", "赌 场", "赌 场"),
    ("赌场", "赌\u200b场", "赌\u200b场"),
    ("赌场", "赌 * 场", "赌 * 场"),
    ("赌场", "賭 場", "賭 場"),
    ("六合彩", "⑥合彩", "⑥合彩"),
    ("六合彩", "6合彩", "6合彩"),
    ("6合彩", "陆合彩", "陆合彩"),
    ("12", "①②", "①②"),
    ("casino", "c.a.s.i.n.o", "c.a.s.i.n.o"),
    ("casino", "cas\u200bino", "cas\u200bino"),
    ("casino", "casino_2026.png", "casino"),
    ("casino", "free-casino.apk", "casino"),
    ("casino", "赌场casino", "casino"),
    ("一号", "统一号", "一号"),            # 统 is CJK: no boundary problem although 一 folds to "1"
    ("av", "av-001.mp4", "av"),
])
def test_evasions_hit_with_original_span(backend: str, pattern: str, text: str, evidence: str) -> None:
    assert spans([pattern], [text], backend) == [(0, pattern, evidence)]


@pytest.mark.parametrize(("pattern", "text"), [
    ("av", "java"),
    ("ass", "class"),
    ("casino", "casinos"),         # a Latin keyword inside a longer word does not hit
    ("casino", "mycasino"),
    ("av", "a v"),                 # separators between Latin letters are not deleted
    ("freecasino", "free casino"),
    ("casino", "c.a-s.i.n.o"),     # mixed separators: not a spelled-out word
    ("av", "ja\u200bva"),          # zero-width characters do not create a boundary
    ("一号", "21号"),               # the pattern folds to "1号": digits before it block it
    ("casino", "ｃａｓｉｎｏｓ"),
])
def test_no_overmatch(backend: str, pattern: str, text: str) -> None:
    assert spans([pattern], [text], backend) == []


def test_overlapping_and_same_normalized_patterns_all_reported(backend: str) -> None:
    patterns = ["赌场", "场所", "赌", "賭場"]
    hits = build_backend(patterns, backend=backend).find(["去赌场所"])
    assert hits.as_tuples() == [(0, 0, 1, 3), (0, 2, 1, 2), (0, 3, 1, 3), (0, 1, 2, 4)]


def test_missing_values_and_row_order(backend: str) -> None:
    texts = pd.Series(["no hit", pd.NA, "赌场 and 赌场", None, "", "赌场"], dtype="string")
    hits = build_backend(["赌场"], backend=backend).find(texts)
    assert hits.row.tolist() == [2, 2, 5]
    assert hits.start.tolist() == [0, 7, 0]
    assert hits.row.dtype == np.int64 and hits.pattern.dtype == np.int32
    assert hits.start.dtype == np.int64 and hits.end.dtype == np.int64
    assert len(build_backend(["赌场"], backend=backend).find([None, "赌场"])) == 1
    assert len(build_backend(["赌场"], backend=backend).find(pd.Series([], dtype="string"))) == 0


def test_hits_never_cross_rows(backend: str) -> None:
    # "赌" ends one row and "场" starts the next; "c.a" + "s" would spell "cas"
    assert spans(["赌场", "cas"], ["x赌", "场y", "c.a", "s.i"], backend) == []


def test_raw_mode_is_literal_substring_search(backend: str) -> None:
    texts = ["java class", "CASINO casino", "賭場", "a\nb"]
    got = spans(["av", "casino", "赌场", "a\nb"], texts, backend, normalize=False)
    assert got == [(0, "av", "av"), (1, "casino", "casino"), (3, "a\nb", "a\nb")]
    # a pattern spanning the row separator is not a hit
    assert spans(["a\nb"], ["x a", "b y"], backend, normalize=False) == []


def test_empty_pattern_is_a_rule_error(backend: str) -> None:
    with pytest.raises(RuleError, match="empty after normalization"):
        build_backend(["赌场", "\u200b"], backend=backend)
    with pytest.raises(RuleError, match="empty"):
        build_backend([""], normalize=False, backend=backend)


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(PipelineError) as err:
        build_backend(["x"], backend="hyperscan")
    assert "pyahocorasick" in str(err.value) and "reference" in str(err.value)
    assert set(BACKEND_NAMES) <= set(BACKENDS.names())


def test_every_backend_is_tested() -> None:
    assert sorted(BACKENDS.names()) == sorted(BACKEND_NAMES)


@pytest.mark.parametrize("name", FAST_BACKENDS)
def test_fast_backend_refuses_to_be_pickled(name: str) -> None:
    backend = build_backend(["赌场"], backend=name)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(backend)
    assert backend.find(["赌场"]).as_tuples() == [(0, 0, 0, 2)]   # still usable after the attempt


def test_no_patterns_no_hits(backend: str) -> None:
    assert len(build_backend([], backend=backend).find(["anything"])) == 0


def test_hits_build_sorts_and_deduplicates() -> None:
    hits = KeywordHits.build(np.array([1, 0, 1]), np.array([0, 2, 0]), np.array([5, 3, 5]), np.array([6, 4, 6]))
    assert hits.as_tuples() == [(0, 2, 3, 4), (1, 0, 5, 6)]


# -- the fast backend against the reference --------------------------------------------------



@given(st.lists(st.one_of(text_st, st.none()), max_size=8), st.lists(pattern_st, min_size=1, max_size=6),
       st.booleans())
@settings(max_examples=400, deadline=None)
def test_fast_agrees_with_reference(texts: list[str | None], patterns: list[str], norm: bool) -> None:
    assume(all(normalize(p) for p in patterns) if norm else True)
    ref = build_backend(patterns, normalize=norm, backend="reference").find(texts)
    for name in FAST_BACKENDS:
        fast = build_backend(patterns, normalize=norm, backend=name).find(texts)
        assert fast.as_tuples() == ref.as_tuples(), name


@given(st.lists(text_st, min_size=1, max_size=8), st.data())
@settings(max_examples=200, deadline=None)
def test_fast_agrees_with_reference_on_planted_substrings(texts: list[str], data: st.DataObject) -> None:
    # patterns cut out of the texts themselves, so that hits are frequent
    row = data.draw(st.integers(0, len(texts) - 1))
    text = texts[row]
    assume(text)
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i + 1, len(text)))
    pattern = text[i:j]
    assume(normalize(pattern))
    ref = build_backend([pattern], backend="reference").find(texts)
    for name in FAST_BACKENDS:
        fast = build_backend([pattern], backend=name).find(texts)
        assert fast.as_tuples() == ref.as_tuples(), name


def test_real_access_log_uris_agree(corpus: Path) -> None:
    path = corpus / "access-logs" / "apache_combined_2015.log"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[:3000]
    patterns = ["wp-admin", "php", "robots.txt", "admin", "xmlrpc", "select", "union", "etc/passwd",
                "Mozilla", "bot", "jpg", "favicon"]
    ref = build_backend(patterns, backend="reference").find(lines)
    for name in FAST_BACKENDS:
        assert build_backend(patterns, backend=name).find(lines).as_tuples() == ref.as_tuples(), name
    fast = build_backend(patterns).find(lines)
    assert len(fast) > 1000
    # every hit's evidence is the pattern itself up to case (no evasions in this benign log)
    for r, p, s, e in fast.as_tuples()[:500]:
        assert lines[r][s:e].lower() == patterns[p].lower()


@pytest.mark.parametrize("name", FAST_BACKENDS)
@pytest.mark.parametrize("norm", [True, False])
def test_arrow_python_and_list_inputs_agree(norm: bool, name: str) -> None:
    import pyarrow as pa

    rows = ["x 賭 場", None, "CASINO_1.png", "", "赌场赌场", "java"]
    want = build_backend(["赌场", "casino", "av"], normalize=norm, backend="reference").find(rows).as_tuples()
    assert want  # the inputs do hit
    backend = build_backend(["赌场", "casino", "av"], normalize=norm, backend=name)
    sliced = pa.chunked_array([pa.array(["pad", *rows[:3]], pa.large_string()).slice(1),
                               pa.array(rows[3:], pa.large_string())])
    for texts in (rows, pd.Series(rows, dtype="string[python]"), pd.Series(rows, dtype="str"),
                  pd.Series(rows, dtype=pd.ArrowDtype(pa.string())), pd.Series(sliced, dtype=pd.ArrowDtype(pa.large_string()))):
        assert backend.find(texts).as_tuples() == want


def test_rs_backend_gives_the_same_hits_beyond_the_dfa_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.matchers import keyword_rs

    patterns = ["赌场", "casino", "av", "六合彩", "賭場"]
    rows = ["去赌场所 CASINO", "java av-1", "⑥合彩", None]
    dfa = build_backend(patterns, backend="ahocorasick-rs").find(rows).as_tuples()
    monkeypatch.setattr(keyword_rs, "DFA_MAX_KEYS", 0)
    nfa = build_backend(patterns, backend="ahocorasick-rs")
    assert isinstance(nfa, keyword_rs.RustAhoCorasickBackend)
    assert nfa.find(rows).as_tuples() == dfa == build_backend(patterns, backend="reference").find(rows).as_tuples()
    assert len(dfa) == 5
