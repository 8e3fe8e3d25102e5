"""The per-codepoint folding table: what each character folds to and its class flags.

Loaded once per process from the shipped ``pipeline/data/fold_table.npz`` (see ``build_table``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "fold_table.npz"

N_CODES = 0x110000
# Rows of a batch are separated by this pseudo-codepoint, one past Unicode, so that no
# character of any text can be mistaken for a row boundary; it folds to "\n", which no
# text character folds to (every control character folds to a space).
ROWSEP_INPUT = N_CODES
ROWSEP_OUTPUT = 0x0A

# Class flags of a codepoint (uint8 bit set), computed at build time.
DEL = 1        # folds to nothing (zero-width, format characters, variation selectors)
MULTI = 2      # folds to more than one character (⑩ → "10", ß → "ss", 十 → "10")
CJK = 4        # a CJK character in the original text: separators between two of them are deleted
SEP = 8        # folds to whitespace, punctuation or symbols only: an insertable separator
LETTER = 16    # folds to exactly one ASCII letter and is not CJK: may take part in "c.a.s.i.n.o"
WORD = 32      # folds to something alphanumeric and is not CJK: blocks a Latin / digit keyword's boundary
ROWSEP = 64    # the row separator
# Not stored in the table: set in the in-memory narrow copy (``FoldTable.narrow``) on BMP
# characters whose fold lies outside the BMP, so a UTF-16 batch holding one is folded wide.
WIDE = 128


def is_cjk_codepoint(cp: int) -> bool:
    """Han, kana, hangul, bopomofo and enclosed CJK (㈠, ㊀): the scripts written without spaces."""
    return (
        0x2E80 <= cp <= 0x2FDF
        or cp in (0x3005, 0x3006, 0x3007)
        or 0x3021 <= cp <= 0x3029
        or 0x3040 <= cp <= 0x30FF
        or 0x3100 <= cp <= 0x318F
        or 0x31A0 <= cp <= 0x31FF
        or 0x3200 <= cp <= 0x32FF
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xA960 <= cp <= 0xA97F
        or 0xAC00 <= cp <= 0xD7FF
        or 0x1100 <= cp <= 0x11FF
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF66 <= cp <= 0xFFDC
        or 0x20000 <= cp <= 0x3FFFF
    )


@dataclass(frozen=True)
class FoldTable:
    """Numpy views of the table; index with codepoints (and ROWSEP_INPUT)."""

    single: np.ndarray         # uint32: the folded character when it is exactly one
    cls: np.ndarray            # uint8: class flags above
    multi_cp: np.ndarray       # uint32, sorted: codepoints that fold to several characters
    multi_offsets: np.ndarray  # int32: multi_data[multi_offsets[i]:multi_offsets[i+1]] is the fold of multi_cp[i]
    multi_data: np.ndarray     # uint32
    unidata_version: str
    opencc_version: str

    def fold_char(self, ch: str) -> str:
        """The fold of one character, for the reference path and for tests."""
        cp = ord(ch)
        flags = int(self.cls[cp])
        if flags & DEL:
            return ""
        if flags & MULTI:
            i = int(np.searchsorted(self.multi_cp, cp))
            lo, hi = int(self.multi_offsets[i]), int(self.multi_offsets[i + 1])
            return "".join(chr(int(c)) for c in self.multi_data[lo:hi])
        return chr(int(self.single[cp]))

    def flags(self, ch: str) -> int:
        return int(self.cls[ord(ch)])

    @functools.cached_property
    def narrow(self) -> np.ndarray:
        """The 65,536 UTF-16 code units' single fold (low 16 bits) and class flags (bits 16-23)
        in one uint32 table: a quarter of a megabyte that stays in cache, read with one gather
        where the full tables take two over 5.5 MB."""
        cls = self.cls[:0x10000].astype(np.uint32)
        single = self.single[:0x10000]
        cls[single > 0xFFFF] |= WIDE
        return (single & 0xFFFF) | (cls << 16)


@functools.cache
def load_table(path: Path = TABLE_PATH) -> FoldTable:
    with np.load(path) as z:
        single = (np.arange(N_CODES + 1, dtype=np.int64) + z["delta"]).astype(np.uint32)
        return FoldTable(
            single=single,
            cls=z["cls"].copy(),
            multi_cp=z["multi_cp"].copy(),
            multi_offsets=z["multi_offsets"].copy(),
            multi_data=z["multi_data"].copy(),
            unidata_version=str(z["unidata_version"]),
            opencc_version=str(z["opencc_version"]),
        )
