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
    def max_growth(self) -> int:
        """The most UTF-8 bytes that folding can make of one byte of UTF-8 (U+FDFA: 3 → 33)."""
        def utf8_len(cp: np.ndarray) -> np.ndarray:
            cp = cp.astype(np.int64)
            return 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)

        out = np.where(self.cls[:N_CODES] & DEL, 0, utf8_len(self.single[:N_CODES]))
        if len(self.multi_cp):
            out[self.multi_cp] = np.add.reduceat(utf8_len(self.multi_data), self.multi_offsets[:-1])
        return int(np.ceil((out / utf8_len(np.arange(N_CODES))).max()))

    @functools.cached_property
    def kernel_cls(self) -> np.ndarray:
        """The class flags plus ``kernel.BLOCKS`` on characters that are not CJK and whose
        single fold is a letter or digit."""
        from .kernel import BLOCKS

        blocks = ((self.cls[self.single] & WORD) != 0) & ((self.cls & CJK) == 0)
        return self.cls | np.where(blocks, np.uint8(BLOCKS), np.uint8(0))

    @functools.cached_property
    def enc(self) -> np.ndarray:
        """Each character's single fold as packed UTF-8 (``utf8_packed``)."""
        return utf8_packed(self.single)

    @functools.cached_property
    def multi_enc(self) -> np.ndarray:
        """Each character of the multi-character folds (``multi_data``) as packed UTF-8."""
        return utf8_packed(self.multi_data)


def utf8_packed(codepoints: np.ndarray) -> np.ndarray:
    """Each codepoint's UTF-8 (surrogates as "surrogatepass" writes them), its bytes little-endian
    in the low 32 bits of a uint64 and their number above."""
    cp = codepoints.astype(np.uint64)
    one, two, three = cp < 0x80, cp < 0x800, cp < 0x10000
    b2 = (0xC0 | (cp >> 6)) | ((0x80 | (cp & 0x3F)) << 8)
    b3 = (0xE0 | (cp >> 12)) | ((0x80 | ((cp >> 6) & 0x3F)) << 8) | ((0x80 | (cp & 0x3F)) << 16)
    b4 = ((0xF0 | (cp >> 18)) | ((0x80 | ((cp >> 12) & 0x3F)) << 8)
          | ((0x80 | ((cp >> 6) & 0x3F)) << 16) | ((0x80 | (cp & 0x3F)) << 24))
    packed = np.where(one, cp, np.where(two, b2, np.where(three, b3, b4)))
    length = np.where(one, 1, np.where(two, 2, np.where(three, 3, 4))).astype(np.uint64)
    return packed | (length << np.uint64(32))


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
