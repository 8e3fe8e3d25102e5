"""Generates the per-codepoint folding table shipped as ``pipeline/data/fold_table.npz``.

Run ``python -m pipeline.normalize.build_table`` after upgrading Python (its Unicode database)
or opencc; the table is shipped rather than built at start-up so that every worker of a cluster
folds text identically whatever library versions it has, and starts without a 2-second build.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import unicodedata
from pathlib import Path

import numpy as np
import opencc

from .table import (
    CJK,
    DEL,
    LETTER,
    MULTI,
    N_CODES,
    ROWSEP,
    ROWSEP_INPUT,
    ROWSEP_OUTPUT,
    SEP,
    TABLE_PATH,
    WORD,
    is_cjk_codepoint,
)

# Invisible characters used to split keywords; category Cf is deleted wholesale besides these.
_DELETE_EXTRA = {0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x180B, 0x180C, 0x180D, 0x180F}
_DELETE_RANGES = (
    (0xFE00, 0xFE0F),      # variation selectors (emoji presentation), invisible
    (0xE0100, 0xE01EF),    # variation selectors supplement
    (0x0300, 0x036F),      # combining diacritics: decomposed "e\u0301" folds like precomposed "é" → "e"
    (0x1AB0, 0x1AFF),
    (0x1DC0, 0x1DFF),
    (0x20D0, 0x20FF),
    (0xFE20, 0xFE2F),
)
_BLANKS = {0x2800}  # braille pattern blank renders as a space and is used as one

# Chinese numerals fold to digits so that 六合彩 / 6合彩 / ⑥合彩 meet; 百 千 万 are left alone
# because they occur inside ordinary words (百家乐) far more often than as numbers.
_CJK_DIGITS = {
    "〇": "0", "零": "0", "一": "1", "二": "2", "三": "3", "四": "4", "五": "5",
    "六": "6", "七": "7", "八": "8", "九": "9", "十": "10",
    "壹": "1", "贰": "2", "叁": "3", "肆": "4", "伍": "5", "陆": "6", "柒": "7", "捌": "8",
    "玖": "9", "拾": "10",
}
_DECORATION_WORDS = ("CIRCLED", "PARENTHESIZED", "FULL STOP", "COMMA", "DINGBAT")


def _decorated_digit(ch: str) -> str | None:
    """①, ⑴, ⒈, ㈠, ❶ … → their number without the decoration (NFKC would keep "(1)" or "1.")."""
    value = unicodedata.numeric(ch, None)
    if value is None or value != int(value):
        return None
    name = unicodedata.name(ch, "")
    return str(int(value)) if any(w in name for w in _DECORATION_WORDS) else None


def _deleted(cp: int, ch: str) -> bool:
    if cp in _DELETE_EXTRA or unicodedata.category(ch) == "Cf":
        return True
    return any(lo <= cp <= hi for lo, hi in _DELETE_RANGES)


class _Folder:
    """Folds one character at a time; t2s is taken per character, not per phrase, on purpose:
    a lookup table cannot see phrases, and patterns are folded the same way."""

    def __init__(self) -> None:
        self._t2s: dict[str, str] = {}
        han = [chr(cp) for cp in range(N_CODES) if is_cjk_codepoint(cp) and unicodedata.category(chr(cp)) == "Lo"]
        converted = opencc.OpenCC("t2s").convert("\n".join(han)).split("\n")
        if len(converted) != len(han):
            raise RuntimeError("opencc changed the number of characters; cannot fold per character")
        for src, dst in zip(han, converted):
            if dst != src and len(dst) == 1:
                self._t2s[src] = dst

    def step(self, ch: str) -> str:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            return "\ufffd"
        if _deleted(cp, ch):
            return ""
        cat = unicodedata.category(ch)
        if cat == "Cc" or cat in ("Zs", "Zl", "Zp") or cp in _BLANKS:
            return " "
        if ch in _CJK_DIGITS:
            return _CJK_DIGITS[ch]
        if ch in self._t2s:
            return self._t2s[ch]
        decorated = _decorated_digit(ch)
        if decorated is not None:
            return decorated
        if cat == "Nd":
            return str(unicodedata.digit(ch))
        decomposed = unicodedata.normalize("NFKD", ch)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if base and base != decomposed and base.isascii() and base.isalpha():
            return base.lower()  # accented Latin → plain letters: cásino meets casino
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", ch).casefold())
        return folded

    def fold(self, ch: str) -> str:
        out = self.step(ch)
        for _ in range(8):
            nxt = "".join(self.step(c) for c in out)
            if nxt == out:
                return out
            out = nxt
        raise RuntimeError(f"folding U+{ord(ch):04X} does not converge")


def _classify(cp: int, out: str) -> int:
    cjk = is_cjk_codepoint(cp)
    flags = CJK if cjk else 0
    if out == "":
        return flags | DEL
    if len(out) > 1:
        flags |= MULTI
    if all(unicodedata.category(c)[0] in "ZPS" for c in out):
        flags |= SEP
    if not cjk:
        if any(c.isalnum() for c in out):
            flags |= WORD
        if len(out) == 1 and "a" <= out <= "z":
            flags |= LETTER
    return flags


def build() -> dict[str, np.ndarray]:
    folder = _Folder()
    single = np.arange(N_CODES + 1, dtype=np.int64)
    cls = np.zeros(N_CODES + 1, dtype=np.uint8)
    multi: dict[int, str] = {}
    for cp in range(N_CODES):
        out = folder.fold(chr(cp))
        cls[cp] = _classify(cp, out)
        if len(out) == 1:
            single[cp] = ord(out)
        elif out:
            single[cp] = ord(out[0])
            multi[cp] = out
        else:
            single[cp] = 0
    single[ROWSEP_INPUT] = ROWSEP_OUTPUT
    cls[ROWSEP_INPUT] = ROWSEP
    multi_cp = np.array(sorted(multi), dtype=np.uint32)
    lengths = [len(multi[int(cp)]) for cp in multi_cp]
    offsets = np.zeros(len(multi_cp) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(lengths)
    data = np.array([ord(c) for cp in multi_cp for c in multi[int(cp)]], dtype=np.uint32)
    return {
        # stored as a difference from the identity so the compressed file stays small
        "delta": (single - np.arange(N_CODES + 1, dtype=np.int64)).astype(np.int32),
        "cls": cls,
        "multi_cp": multi_cp,
        "multi_offsets": offsets,
        "multi_data": data,
        "unidata_version": np.array(unicodedata.unidata_version),
        "opencc_version": np.array(importlib.metadata.version("opencc")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=TABLE_PATH)
    args = parser.parse_args()
    np.savez_compressed(args.out, allow_pickle=False, **build())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
