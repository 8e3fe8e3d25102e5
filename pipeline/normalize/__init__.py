"""Text normalization applied alike to keyword patterns and to scanned text, with offset maps.

Each character is folded through one table (``table``): NFKC (full-width → half-width), case
folding, accents stripped from Latin letters, traditional → simplified Chinese (opencc t2s, per
character), digit variants → ASCII digits (① ⑴ ⒈ ㈠ ❶ ¹ ₁ ０ 一 壹 十→"10"), whitespace and control
characters → space; zero-width and format characters (U+200B–U+200D, U+2060, U+FEFF, soft
hyphen, variation selectors, combining accents) are deleted everywhere. Then two context rules:
a run of separators (whitespace, punctuation, symbols) between two CJK characters of the
original is deleted (赌 * 场 → 赌场); in a spelled-out Latin word — three or more lone letters
each separated by the same single separator (c.a.s.i.n.o, c a s i n o) — the separators are
deleted. Separators between Latin words are kept: "a v" stays "a v".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batch import NormalizedBatch, normalize, normalize_batch, normalize_many
    from .reference import blank_once_normalized, normalize_reference, normalize_with_offsets

# Where each name lives, imported on first use: the batch path brings pyarrow (and its kernel numba),
# which checking a rule file for blank keywords (``blank_once_normalized``) does not need.
_WHERE = {"NormalizedBatch": "batch", "normalize": "batch", "normalize_batch": "batch", "normalize_many": "batch",
          "blank_once_normalized": "reference", "normalize_reference": "reference",
          "normalize_with_offsets": "reference"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
