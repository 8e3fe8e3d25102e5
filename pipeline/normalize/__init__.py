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

from .batch import NormalizedBatch, normalize, normalize_batch, normalize_many
from .reference import normalize_reference, normalize_with_offsets

__all__ = ["NormalizedBatch", "normalize", "normalize_batch", "normalize_many", "normalize_reference", "normalize_with_offsets"]
