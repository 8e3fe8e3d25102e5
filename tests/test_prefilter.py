"""The prefilter hands the automaton only stretches that may hold a key, and loses no hit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from keyword_strategies import pattern_st, text_st  # noqa: E402

from pipeline.matchers import prefilter  # noqa: E402
from pipeline.matchers.keyword_engine import build_backend  # noqa: E402
from pipeline.matchers.prefilter import JOIN, Prefilter  # noqa: E402
from pipeline.normalize import normalize  # noqa: E402

# bytes of multi-byte characters, separators and the joining byte, so that keys of every prefix
# class overlap, repeat and straddle rows
PIECES = ["a", "b", "ab", "\n", "赌", "场", "赌场", "x", " ", "0"]
bytes_st = st.lists(st.sampled_from(PIECES), max_size=40).map(lambda parts: "".join(parts).encode())
key_st = st.lists(st.sampled_from(PIECES), min_size=1, max_size=5).map(lambda parts: "".join(parts).encode())


def occurrences(keys: list[bytes], data: bytes) -> set[tuple[int, int]]:
    found = set()
    for key in keys:
        at = data.find(key)
        while at >= 0:
            found.add((at, at + len(key)))
            at = data.find(key, at + 1)
    return found


@given(st.lists(key_st, min_size=1, max_size=6), bytes_st, st.sampled_from([8, 16, 20]))
@settings(max_examples=400, deadline=None)
def test_every_occurrence_lies_inside_one_stretch(keys: list[bytes], data: bytes, bits: int) -> None:
    buf = np.frombuffer(data, dtype=np.uint8)
    cut = Prefilter.build(keys, bits=bits).cut(buf, max_cover=10)
    assert cut is not None
    starts, ends = cut.starts.tolist(), cut.ends.tolist()
    assert all(a < b for a, b in zip(starts, ends))
    assert all(b <= a for b, a in zip(ends, starts[1:]))   # sorted and disjoint
    want = b"".join(data[a:b] + bytes([JOIN]) for a, b in zip(starts, ends))
    assert cut.packed.tobytes() == want
    assert cut.at.tolist() == [sum(b - a + 1 for a, b in zip(starts[:i], ends[:i])) for i in range(len(starts))]
    for a, b in occurrences(keys, data):
        assert any(s <= a and b <= e for s, e in zip(starts, ends)), (a, b)


def test_stretches_skip_what_no_key_starts() -> None:
    data = ("无关文字" * 50 + "赌场" + "无关文字" * 50).encode()
    cut = Prefilter.build(["赌场".encode()]).cut(np.frombuffer(data, dtype=np.uint8))
    assert cut is not None
    assert cut.packed.tobytes() == "赌场\n".encode()
    start, inside = cut.locate(np.array([0]), np.array([6]))
    assert data[start[0]:start[0] + 6] == "赌场".encode() and inside.all()


def test_many_stretches_grow_their_arrays() -> None:
    data = b"x." * 5000   # 5000 one-byte stretches, more than the first allocation holds
    cut = Prefilter.build([b"x"]).cut(np.frombuffer(data, dtype=np.uint8), max_cover=10)
    assert cut is not None and len(cut.starts) == 5000
    assert cut.starts.tolist() == list(range(0, 10000, 2))


def test_dense_candidates_fall_back_to_a_whole_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [b"a"]
    assert Prefilter.build(keys).cut(np.frombuffer(b"a" * 1000, dtype=np.uint8)) is None
    # a long buffer is judged on its first SAMPLE bytes
    monkeypatch.setattr(prefilter, "SAMPLE", 64)
    dense_then_sparse = b"a" * 64 + b"." * 1000
    assert Prefilter.build(keys).cut(np.frombuffer(dense_then_sparse, dtype=np.uint8)) is None
    sparse = b"." * 64 + b"a" + b"." * 1000
    cut = Prefilter.build(keys).cut(np.frombuffer(sparse, dtype=np.uint8))
    assert cut is not None and cut.starts.tolist() == [64]


# -- through the backends, with the prefilter forced on every batch -----------------------



@given(st.lists(st.one_of(text_st, st.none()), max_size=8), st.lists(pattern_st, min_size=1, max_size=6),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_prefiltered_backends_agree_with_reference(texts: list[str | None], patterns: list[str],
                                                   norm: bool) -> None:
    assume(all(normalize(p) for p in patterns) if norm else True)
    ref = build_backend(patterns, normalize=norm, backend="reference").find(texts)
    for name in ("pyahocorasick", "ahocorasick-rs"):
        backend = build_backend(patterns, normalize=norm, backend=name)
        assert backend.prefilter is not None, name
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(prefilter, "MAX_COVER", 10.0)
            assert backend.find(texts).as_tuples() == ref.as_tuples(), name


def test_hit_across_the_join_of_two_stretches_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # packed, the stretches read "ab\ncd\n": the key "b\nc" is there, but not in the text
    monkeypatch.setattr(prefilter, "MAX_COVER", 10.0)
    patterns = ["ab", "cd", "b\nc"]
    rows = ["ab....cd"]
    for name in ("pyahocorasick", "ahocorasick-rs"):
        hits = build_backend(patterns, normalize=False, backend=name).find(rows)
        assert hits.as_tuples() == [(0, 0, 0, 2), (0, 1, 6, 8)], name


def test_keys_of_both_walks_on_the_same_first_bytes_are_all_found() -> None:
    # short keys (under WALK_SPLIT bytes) and long ones sharing their first bytes: each walk
    # finds its own, whichever the other says
    keys = [b"ab", b"abc", b"abcd", b"abcdef", b"abcdefgh", "赌".encode(), "赌场".encode(), "赌场里".encode()]
    assert any(len(k) < prefilter.WALK_SPLIT for k in keys) and any(len(k) >= prefilter.WALK_SPLIT for k in keys)
    data = ("xx abcdefghij 赌场里面 abc 赌 ab" * 3).encode()
    cut = Prefilter.build(keys).cut(np.frombuffer(data, dtype=np.uint8), max_cover=10)
    assert cut is not None
    starts, ends = cut.starts.tolist(), cut.ends.tolist()
    for a, b in occurrences(keys, data):
        assert any(s <= a and b <= e for s, e in zip(starts, ends)), (a, b)
    assert len(cut.packed) < len(data)
