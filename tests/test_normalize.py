"""Normalization: folding, context rules, offset maps, and the vectorized path against the reference."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.normalize import blank_once_normalized, normalize, normalize_batch, normalize_reference, normalize_with_offsets
from pipeline.normalize.table import load_table

# Characters chosen to exercise every rule: CJK (incl. traditional and numerals), Latin letters,
# digits and their variants, separators, zero-width and format characters, full-width forms,
# multi-character folds (十 ß … ⑩), a lone surrogate, and newlines.
ALPHABET = list(
    "赌场百家乐六合彩一十壹統賭場樂号"
    "acsinovACSV"
    "016"
    " *.-_|/·~#"
    "\u200b\u00ad\ufeff\u2060"
    "ＡｃＳ＊０"
    "①⑩㈠¹"
    "ß…"
    "\n\t"
) + ["\ud800"]

texts = st.text(alphabet=st.sampled_from(ALPHABET), max_size=24)


@pytest.mark.parametrize(("raw", "expected"), [
    ("ＣＡＳＩＮＯ", "casino"),          # full-width and case
    ("CaSiNo", "casino"),
    ("賭場", "赌场"),                    # traditional → simplified
    ("百家樂", "百家乐"),
    ("①②", "12"),                       # digit variants
    ("⑴⒈㈠㊀❶", "11111"),
    ("一二三", "123"),
    ("壹贰叁貳", "1232"),
    ("十", "10"),
    ("０９¹²³₄", "09123" + "4"),
    ("⑩", "10"),
    ("cás\u0301ino", "casino"),         # accents stripped, precomposed and combining alike
    ("cas\u200bino", "casino"),         # zero-width deleted everywhere, Latin too
    ("ca\u00adsi\u2060no\ufeff", "casino"),
    ("赌*场", "赌场"),                   # separators between two CJK characters
    ("赌 场", "赌场"),
    ("赌\u200b场", "赌场"),
    ("赌 * 场", "赌场"),
    ("赌｜场", "赌场"),
    ("赌·场", "赌场"),
    ("赌\n场", "赌场"),
    ("赌 x 场", "赌 x 场"),              # not between two CJK characters: kept
    ("a v", "a v"),                     # separators between Latin letters are kept
    ("free casino", "free casino"),
    ("c.a.s.i.n.o", "casino"),          # spelled-out words are joined
    ("c a s i n o", "casino"),
    ("C-A-S-I-N-O", "casino"),
    ("ｃ．ａ．ｓ", "cas"),
    ("a.v", "a.v"),                     # two letters are not a spelled-out word
    ("c.a-s", "c.a-s"),                 # the separator must be the same throughout
    ("1.2.3.4", "1.2.3.4"),             # digits are never joined (IP addresses, versions)
    ("ab.c.d", "ab.c.d"),               # "ab" is not a lone letter, c.d has only two
    ("x\ty", "x y"),
])
def test_folds(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize_reference(raw) == expected


def test_offsets_point_at_the_original_characters() -> None:
    text, offsets = normalize_with_offsets("賭 場 ⑩")
    assert text == "赌场 10"
    assert offsets == [0, 2, 3, 4, 4]
    batch = normalize_batch(["賭 場 ⑩"])
    assert batch.char_orig().tolist()[1:-1] == [o + 1 for o in offsets]


def test_batch_keeps_rows_apart() -> None:
    # separators are not deleted across rows, and a row's letters do not join the next row's
    rows = ["赌 ", " 场", "c.a", "s", "", "c.a.s"]
    assert normalize_batch(rows).rows() == ["赌 ", " 场", "c.a", "s", "", "cas"]


def test_lone_surrogates_do_not_abort() -> None:
    assert normalize("a\udcffb") == "a\ufffdb"


def test_table_is_loaded_once_and_covers_the_row_separator() -> None:
    table = load_table()
    assert table is load_table()
    assert len(table.single) == 0x110001
    assert table.fold_char("\n") == " "   # only the row separator folds to "\n"


@given(st.lists(texts, max_size=6))
@settings(max_examples=300, deadline=None)
def test_batch_agrees_with_reference(rows: list[str]) -> None:
    _check_batch(rows)


def test_batch_rows_where_both_context_rules_apply() -> None:
    # spelled-out words make the kernel fold a row again; the rows around them must not notice
    _check_batch(["c.a.s.i.n.o 赌 * 场", "赌 场 c a s i n o ⑩", "plain", "c-a-s-i-n-o.a.b.c 十",
                  "a.b-c-d", "赌\u200b 场 x.y.z", ""])


def test_batch_grows_its_output_for_rows_that_expand() -> None:
    # U+FDFA folds to 18 characters: these rows need far more room than the input takes
    _check_batch(["\ufdfa" * 200, "ab", "⑩" * 50 + "\ufdfa" * 30, "\ufdfa"])


def _check_batch(rows: list[str]) -> None:
    batch = normalize_batch(rows)
    assert batch.rows() == [normalize_reference(r) for r in rows]
    # the same rows as an Arrow column (its UTF-8 as Python's "surrogatepass" writes it)
    arrow = pa.array([r.encode("utf-8", "surrogatepass") for r in rows], pa.binary()).view(pa.string())
    assert normalize_batch(arrow).rows() == batch.rows()
    orig = batch.char_orig()
    codes = np.array([ord(c) for c in batch.text()])
    for r, row in enumerate(rows):
        _, offsets = normalize_with_offsets(row)
        lo = int(np.flatnonzero(codes == 10)[r]) + 1
        base = int(batch.row_seps[r]) + 1
        assert (orig[lo:lo + len(offsets)] - base).tolist() == offsets


@given(st.lists(texts, max_size=8))
@settings(max_examples=300, deadline=None)
def test_blank_check_agrees_with_the_kernel(words: list[str]) -> None:
    # the rule loader's check for keywords that normalize to nothing reads only the folding table
    words += ["\u200b", " \u00ad ", "赌 \u200b", "·", "*\t*", "c . a"]
    assert blank_once_normalized(words) == [not key.strip() for key in normalize_batch(words).rows()]
    assert blank_once_normalized(words) == [not normalize_reference(w).strip() for w in words]


@given(texts)
@settings(max_examples=300, deadline=None)
def test_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@pytest.mark.slow
def test_shipped_table_matches_generator() -> None:
    import importlib.metadata

    from pipeline.normalize.build_table import build

    table = load_table()
    if (table.unidata_version, table.opencc_version) != (
            unicodedata.unidata_version, importlib.metadata.version("opencc")):
        pytest.skip("installed Unicode database or opencc differ from the ones the table was built with")
    fresh = build()
    assert np.array_equal(fresh["cls"], table.cls)
    assert np.array_equal(fresh["delta"] + np.arange(len(table.single)), table.single.astype(np.int64))
    assert np.array_equal(fresh["multi_data"], table.multi_data)
