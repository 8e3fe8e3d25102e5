"""Percent-decoding many values at once decodes each as ``urllib.parse.unquote`` does alone."""

from __future__ import annotations

from urllib.parse import unquote

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.matchers.percent import holds_percent, unquote_many

_PIECES = st.sampled_from(["%", "%%41", "%4%41", "%e8", "%E5%9C%BA", "%c3", "%C3%A9", "%ff", "%0A", "%2", "%zz",
                           "%7e", "a", "\u00e9", "\u4e2d", "\n", "%25", "%F0%9F%98"])
_VALUES = st.lists(st.one_of(st.lists(_PIECES, max_size=6).map("".join), st.text(max_size=8)), max_size=25)


@settings(max_examples=200, deadline=None)
@given(values=_VALUES, skip=st.integers(min_value=0, max_value=3))
def test_each_value_decodes_as_unquote_decodes_it(values: list[str], skip: int) -> None:
    arr = pa.array(values, type=pa.string()).slice(min(skip, len(values)))   # a slice reads its offset
    assert unquote_many(arr).to_pylist() == [unquote(v, errors="replace") for v in values[skip:]]


def test_values_keep_their_array_type() -> None:
    arr = pa.array(["a%41", "%e4%b8%ad", "b"], type=pa.large_string())
    decoded = unquote_many(arr)
    assert decoded.type == pa.large_string() and decoded.to_pylist() == ["aA", "\u4e2d", "b"]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.lists(_PIECES, max_size=4).map("".join), st.text(max_size=8)), max_size=25),
       skip=st.integers(min_value=0, max_value=3))
def test_the_values_holding_a_percent_are_found_as_a_substring_search_finds_them(values: list[str | None],
                                                                                  skip: int) -> None:
    arr = pa.array(values, type=pa.string()).slice(min(skip, len(values)))
    assert holds_percent(arr).tolist() == [v is not None and "%" in v for v in values[skip:]]
