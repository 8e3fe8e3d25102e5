"""The keyword engine's contract: hits as parallel arrays, the backend protocol and registry.

Semantics shared by every backend, with ``normalize=True`` (the default):
- patterns and text are normalized alike (``pipeline.normalize``); a hit is an occurrence of a
  normalized pattern in the normalized text, overlapping ones included;
- boundaries: if a normalized pattern starts (ends) with a letter or digit of a non-CJK script,
  the hit counts only if the normalized character before (after) it is not a letter or digit, or
  comes from a CJK character of the original (一 folds to "1" but 统一 blocks nothing). Deleted
  zero-width characters are looked through (``ja\\u200bva`` is "java"); ``_ - .``, spaces,
  punctuation, CJK and the start or end of the text are boundaries;
- ``start`` / ``end`` index the ORIGINAL text (Python str character offsets): ``text[start:end]``
  is the evasive original, e.g. "賭 場" for the pattern 赌场.
With ``normalize=False``: literal substring search of the raw pattern in the raw text, no
boundary check, case-sensitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RuleError
from ..normalize import normalize_many as _normalize_many
from ..registry import Registry


@dataclass(frozen=True)
class KeywordHits:
    """Parallel arrays, one element per hit, sorted by (row, start, pattern, end), no duplicates."""

    row: np.ndarray        # int64: index into the texts passed to find()
    pattern: np.ndarray    # int32: index into the patterns given at construction
    start: np.ndarray      # int64: start offset in the original text (str index)
    end: np.ndarray        # int64: end offset (exclusive) in the original text

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def empty(cls) -> KeywordHits:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))

    @classmethod
    def build(cls, row: np.ndarray, pattern: np.ndarray, start: np.ndarray, end: np.ndarray) -> KeywordHits:
        """Sort and de-duplicate raw hits."""
        row = np.asarray(row, dtype=np.int64)
        pattern = np.asarray(pattern, dtype=np.int32)
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        if len(row) == 0:
            return cls.empty()
        if row.min() >= 0 and row.max() < 2**31 and start.min() >= 0 and end.max() < 2**32 and end.min() >= 0:
            # two 64-bit keys sort and compare faster than four
            keys = [(row << 32) | start, (pattern.astype(np.int64) << 32) | end]
        else:
            keys = [row, start, pattern.astype(np.int64), end]
        order = np.lexsort(keys[::-1])
        sorted_keys = [k[order] for k in keys]
        fresh = np.ones(len(row), dtype=bool)
        fresh[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in sorted_keys])
        keep = order[fresh]
        return cls(row[keep], pattern[keep], start[keep], end[keep])

    def as_tuples(self) -> list[tuple[int, int, int, int]]:
        """(row, pattern, start, end) per hit, for tests and debugging."""
        return list(zip(self.row.tolist(), self.pattern.tolist(), self.start.tolist(), self.end.tolist()))


# List-valued fields and the separator their items are joined with (records.py: tags is "a,b").
# A keyword never spans two items: before matching, each separator becomes ITEM_BOUNDARY, a
# private-use character that folds to itself and is neither a separator nor a letter, so
# normalization neither deletes it (中,出 stays apart) nor lets a letter run or a boundary check
# cross it ("x,c,a,s,i,n,o" still holds "casino" in its own items). It is one character for one,
# so hit offsets stay those of the original text.
LIST_FIELDS: dict[str, str] = {"tags": ","}
ITEM_BOUNDARY = "\ue000"


def items_apart(texts: pd.Series, separator: str) -> pd.Series:
    """``texts`` with each item separator replaced by ITEM_BOUNDARY (same length, same offsets)."""
    arrow = pa.array(texts.astype("string").array)
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    replaced = pc.replace_substring(arrow, separator, ITEM_BOUNDARY)
    return pd.Series(pd.array(replaced, dtype=texts.astype("string").dtype), index=texts.index)


@runtime_checkable
class KeywordBackend(Protocol):
    name: str

    def __init__(self, patterns: Sequence[str], *, normalize: bool = True) -> None: ...

    def find(self, texts: pd.Series | Sequence[str | None]) -> KeywordHits: ...


BACKENDS: Registry[type[KeywordBackend]] = Registry("keyword backend")


def build_backend(patterns: Sequence[str], *, normalize: bool = True,
                  backend: str = "pyahocorasick") -> KeywordBackend:
    """Build the named backend for a pattern list; build once per process and reuse it."""
    return BACKENDS.get(backend)(patterns, normalize=normalize)


def as_rows(texts: pd.Series | Sequence[str | None]) -> list[str]:
    """The texts as a list of str, a missing value (None, NA, NaN) becoming "" (it has no hits)."""
    if isinstance(texts, pd.Series):
        if texts.dtype == object or isinstance(texts.dtype, pd.StringDtype):
            return texts.fillna("").tolist()
        return texts.astype("string").fillna("").tolist()
    return [t if isinstance(t, str) else "" for t in texts]


TextColumn: TypeAlias = "list[str] | pa.Array | pa.ChunkedArray"


def as_text_column(texts: pd.Series | Sequence[str | None]) -> TextColumn:
    """Like ``as_rows``, but an Arrow-backed Series stays Arrow (nulls are handled downstream):
    making 100k Python strings costs as much as normalizing them."""
    if isinstance(texts, pd.Series) and isinstance(texts.dtype, (pd.StringDtype, pd.ArrowDtype)):
        if getattr(texts.dtype, "storage", None) == "pyarrow" or isinstance(texts.dtype, pd.ArrowDtype):
            arrow = pa.array(texts.array)
            if pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type):
                return arrow
    return as_rows(texts)


@dataclass(frozen=True)
class PatternGroups:
    """Distinct search keys and which patterns each stands for (two patterns may normalize alike)."""

    keys: list[str]                  # distinct keys in order of first appearance (deterministic)
    members: list[list[int]]         # pattern indexes per key
    check_start: np.ndarray          # bool per key: the key starts with a letter or digit
    check_end: np.ndarray            # bool per key: the key ends with a letter or digit


def group_patterns(patterns: Sequence[str], *, normalize: bool) -> PatternGroups:
    index: dict[str, int] = {}
    members: list[list[int]] = []
    for i, raw in enumerate(patterns):
        if not isinstance(raw, str):
            raise RuleError(f"keyword #{i + 1} is {type(raw).__name__}, not text",
                            hint="quote the keyword in the rule file")
    keys_of = _normalize_many(patterns) if normalize else list(patterns)
    for i, (raw, key) in enumerate(zip(patterns, keys_of)):
        if not key:
            raise RuleError(
                f"keyword #{i + 1} {raw!r} is empty" + (" after normalization" if normalize and raw else ""),
                hint="remove it: it would match everywhere or nowhere",
            )
        if key not in index:
            index[key] = len(members)
            members.append([])
        members[index[key]].append(i)
    keys = list(index)
    if not normalize:
        none = np.zeros(len(keys), dtype=bool)
        return PatternGroups(keys=keys, members=members, check_start=none, check_end=none.copy())
    return PatternGroups(keys=keys, members=members, check_start=_word_chars([k[0] for k in keys]),
                         check_end=_word_chars([k[-1] for k in keys]))


def _word_chars(chars: list[str]) -> np.ndarray:
    """Whether each character is a letter or digit (of the folding table), looked up all at once."""
    from ..normalize.table import WORD, load_table

    codes = np.fromiter(map(ord, chars), dtype=np.int64, count=len(chars))
    return (load_table().cls[codes] & WORD) != 0


# Importing the backends registers them.
from . import keyword_aho, keyword_reference, keyword_rs  # noqa: E402,F401
