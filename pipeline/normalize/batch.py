"""Vectorized normalization of a whole batch of rows at once, with the map back to the original.

All rows are joined into one code array (UTF-16 units when the batch is all BMP and folds within
it, else codepoints) and folded by table look-ups; the context rules
(separators between CJK characters, spelled-out Latin words) are decided on numpy masks. No
Python code runs per row or per character. The offset map is kept sparse (the deleted positions
and the expansions), since only the few characters where hits start and end are ever mapped.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .table import CJK, DEL, LETTER, MULTI, ROWSEP, ROWSEP_OUTPUT, SEP, WIDE, WORD, FoldTable, load_table

_NO_POS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class OffsetMap:
    """Normalized position → original position, from the edits normalization made.

    Deletions come first (in original coordinates); expansions are then placed in the
    coordinates of the text left after deletions ("compact" coordinates).
    """

    deleted: np.ndarray      # int64, sorted: original positions that produce no output
    exp_pos: np.ndarray      # int64, sorted: compact positions of characters that expand
    exp_extra: np.ndarray    # int64: how many characters each expansion adds

    def __call__(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=np.int64)
        compact = k
        if len(self.exp_pos):
            through = np.cumsum(self.exp_extra)
            head = self.exp_pos + (through - self.exp_extra)   # output position of each expansion's head
            i = np.searchsorted(head, k, side="right") - 1
            has = i >= 0
            ii = np.where(has, i, 0)
            inside = has & (k <= head[ii] + self.exp_extra[ii])
            compact = np.where(inside, self.exp_pos[ii], k - np.where(has, through[ii], 0))
        if len(self.deleted):
            # the compact position c is the c-th kept original position
            kept_before = self.deleted - np.arange(len(self.deleted))
            compact = compact + np.searchsorted(kept_before, compact, side="right")
        return compact


@dataclass(frozen=True)
class NormalizedBatch:
    """The normalized text of many rows, separated by "\\n", and where each character came from.

    The original rows are joined as ``SEP row0 SEP row1 ... SEP`` (one pseudo-character SEP in
    front of every row and one at the end); original positions index that joined original.
    """

    codes: np.ndarray        # uint16 (UTF-16, no surrogates) or uint32: normalized characters; "\n" (10) exactly at row separators
    orig_cls: np.ndarray     # uint8: class flags of each character of the joined original
    row_seps: np.ndarray     # int64 (rows + 1): original position of the separator before each row
    to_orig: OffsetMap       # normalized position → original position

    @property
    def n_rows(self) -> int:
        return len(self.row_seps) - 1

    @property
    def orig(self) -> np.ndarray:
        """The full offset map (for tests; the scan maps only hit positions)."""
        return self.to_orig(np.arange(len(self.codes), dtype=np.int64))

    def text(self) -> str:
        """All rows' normalized text, "\\n"-separated, with a leading and a trailing "\\n"."""
        # decoding straight from the array's buffer saves a copy of the whole batch
        if self.codes.dtype == np.uint16:
            return codecs.utf_16_le_decode(np.ascontiguousarray(self.codes, dtype="<u2").data)[0]
        return codecs.utf_32_le_decode(np.ascontiguousarray(self.codes, dtype="<u4").data)[0]

    def rows(self) -> list[str]:
        return self.text()[1:-1].split("\n") if self.n_rows else []


def join_rows(rows: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[str, np.ndarray]:
    """``"\n" + row0 + "\n" + row1 + ... + "\n"`` and the positions of those "\n" separators.

    ``rows`` is a list of ``str`` or an Arrow string array (nulls count as ""); an Arrow array is
    joined from its UTF-8 buffer without making a Python object per row.
    """
    tail_joined, seps = _join_tail(rows)
    return "\n" + tail_joined, seps


def _join_tail(rows: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[str, np.ndarray]:
    """Like ``join_rows`` without the leading "\n" (``seps`` still counts it): callers that turn
    the text into a code array put it there, which saves a copy of the whole batch."""
    if isinstance(rows, (pa.Array, pa.ChunkedArray)):
        joined, lengths = _join_arrow(rows)
    else:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        joined = "\n".join(rows) + "\n" if len(rows) else ""
    seps = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=seps[1:])
    return joined, seps


def join_rows_utf8(rows: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[bytes, np.ndarray]:
    """``join_rows`` encoded as UTF-8 (lone surrogates passed through), with the separators'
    character positions; an Arrow array's UTF-8 is used as it is, never decoded."""
    if isinstance(rows, (pa.Array, pa.ChunkedArray)):
        utf8, lengths = _join_arrow_utf8(rows)
        seps = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths + 1, out=seps[1:])
        return b"\n" + utf8, seps
    tail_joined, seps = _join_tail(rows)
    return b"\n" + tail_joined.encode("utf-8", "surrogatepass"), seps


def _join_arrow(rows: pa.Array | pa.ChunkedArray) -> tuple[str, np.ndarray]:
    utf8, lengths = _join_arrow_utf8(rows)
    return str(utf8, "utf-8"), lengths


def _join_arrow_utf8(rows: pa.Array | pa.ChunkedArray) -> tuple[memoryview, np.ndarray]:
    """The rows' UTF-8, each followed by "\n", and each row's length in characters."""
    arr = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    arr = pc.fill_null(arr, pa.scalar("", arr.type))
    lengths = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(arr) == 0:
        return memoryview(b""), lengths
    with_nl = pc.binary_join_element_wise(arr, pa.scalar("", arr.type), pa.scalar("\n", arr.type))
    offsets = np.frombuffer(with_nl.buffers()[1], dtype=np.int32 if pa.types.is_string(arr.type) else np.int64)
    lo, hi = int(offsets[with_nl.offset]), int(offsets[with_nl.offset + len(with_nl)])
    return memoryview(with_nl.buffers()[2])[lo:hi], lengths


def _codes(tail_joined: str, narrow: bool) -> np.ndarray:
    """The code array of ``"\n" + tail_joined``: UTF-16 code units when ``narrow`` and the text
    has no surrogates (the usual case, half the memory traffic of UTF-32), else codepoints."""
    if narrow:
        # surrogatepass: lone surrogates (from surrogateescape decoding) must not abort a scan
        units = np.frombuffer(tail_joined.encode("utf-16-le", "surrogatepass"), dtype="<u2")
        if not ((units & 0xF800) == 0xD800).any():
            codes = np.empty(len(units) + 1, dtype=np.uint16)
            codes[0] = ROWSEP_OUTPUT
            codes[1:] = units
            return codes
    wide = np.empty(len(tail_joined) + 1, dtype=np.uint32)
    wide[0] = ROWSEP_OUTPUT
    wide[1:] = np.frombuffer(tail_joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    return wide


def _any_flags(cls: np.ndarray) -> int:
    """The union of the class flags of a uint8 array, OR-reduced eight bytes at a time."""
    n8 = len(cls) // 8 * 8
    acc = np.bitwise_or.reduce(cls[:n8].view(np.uint64), keepdims=True) if n8 else np.zeros(1, np.uint64)
    return int(np.bitwise_or.reduce(np.concatenate((acc.view(np.uint8), cls[n8:]))))


def _dropped_separators(cls: np.ndarray, codes: np.ndarray, sep_pos: np.ndarray, present: int) -> np.ndarray:
    """Sorted positions of the separators the two context rules delete.

    Both rules look at a separator's neighbours first, so those are read once; each rule then
    works on the few separators whose neighbours allow it (CJK or separator on both sides, a
    letter on both sides) instead of on every space and slash of the batch.
    """
    # the batch starts and ends with a row separator, which is no SEP: p - 1 and p + 1 exist
    left, right = cls[sep_pos - 1], cls[sep_pos + 1]
    parts = []
    if present & CJK:
        # every member of a separator run between two CJK characters has a CJK character or
        # another separator on each side
        near = ((left & (CJK | SEP)) != 0) & ((right & (CJK | SEP)) != 0)
        parts.append(_separators_between_cjk(cls, sep_pos[near]))
    if present & LETTER:
        parts.append(_spelled_out_latin(cls, codes, sep_pos[((left & right) & LETTER) != 0]))
    if not parts:
        return _NO_POS
    return np.union1d(*parts) if len(parts) > 1 else parts[0]


def _separators_between_cjk(cls: np.ndarray, sep_pos: np.ndarray) -> np.ndarray:
    """Positions of separator runs with a CJK character on both sides (赌 * 场 → 赌场).

    ``sep_pos`` may leave out separators of runs that cannot qualify: a run cut short then has
    a separator, not a CJK character, beside its end, and is rejected.
    """
    if len(sep_pos) == 0:
        return sep_pos
    breaks = np.flatnonzero(np.diff(sep_pos) != 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(sep_pos) - 1]))
    # the joined array starts and ends with a row separator, so start-1 and end+1 exist
    good = ((cls[sep_pos[starts] - 1] & CJK) != 0) & ((cls[sep_pos[ends] + 1] & CJK) != 0)
    if not good.any():
        return sep_pos[:0]
    return sep_pos[np.repeat(good, ends - starts + 1)]


def _spelled_out_latin(cls: np.ndarray, codes: np.ndarray, sep_pos: np.ndarray) -> np.ndarray:
    """Separators inside a spelled-out word: three or more lone Latin letters, each pair
    separated by one and the same separator character (c.a.s.i.n.o, c a s i n o, c-a-s-i-n-o).

    Lone means neither neighbour is a letter or digit, so "a v" (two letters) and ordinary
    words separated by spaces are never joined.
    """
    inner = sep_pos[(sep_pos >= 2) & (sep_pos <= len(cls) - 3)]
    if len(inner) == 0:
        return inner
    cand = inner[((cls[inner - 1] & LETTER) != 0) & ((cls[inner + 1] & LETTER) != 0)]
    cand = cand[((cls[cand - 2] & WORD) == 0) & ((cls[cand + 2] & WORD) == 0)]
    if len(cand) < 2:
        return cand[:0]
    same = codes[cand]
    link = (np.diff(cand) == 2) & (same[1:] == same[:-1])
    group = np.concatenate(([0], np.cumsum(~link)))
    return cand[np.bincount(group)[group] >= 2]


def _ramp(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each length, concatenated."""
    firsts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(firsts, lengths)


def _expand(table: FoldTable, src_codes: np.ndarray, out: np.ndarray,
            mpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Insert the tails of multi-character folds (⑩ → "10") after their heads.

    ``mpos`` are compact positions; ``src_codes`` their original codepoints.
    Returns the new output and each expansion's number of added characters.
    """
    which = table.multi_cp.searchsorted(src_codes)
    lo = table.multi_offsets[which].astype(np.int64)
    extra = table.multi_offsets[which + 1] - lo - 1
    through = np.cumsum(extra)
    head = mpos + through - extra
    tails = np.repeat(head + 1, extra) + _ramp(extra)
    expanded = np.empty(len(out) + int(through[-1]), dtype=out.dtype)
    is_tail = np.zeros(len(expanded), dtype=bool)
    is_tail[tails] = True
    expanded[~is_tail] = out
    expanded[tails] = table.multi_data[np.repeat(lo + 1, extra) + _ramp(extra)]
    return expanded, extra


def normalize_batch(rows: Sequence[str] | pa.Array | pa.ChunkedArray,
                    table: FoldTable | None = None) -> NormalizedBatch:
    """Normalize every row in one pass: a list of ``str`` (callers turn missing values into "")
    or an Arrow string array (nulls count as "")."""
    table = table or load_table()
    tail_joined, seps = _join_tail(rows)
    src = _codes(tail_joined, narrow=True)
    cls, out = _fold(table, src)
    present = _any_flags(cls)
    if present & WIDE:
        # a BMP character folds outside the BMP: UTF-16 units cannot hold the result
        src = _codes(tail_joined, narrow=False)
        cls, out = _fold(table, src)
        present = _any_flags(cls)
    del tail_joined
    cls[seps] = ROWSEP
    out[seps] = ROWSEP_OUTPUT
    present |= ROWSEP

    # 1. characters that fold to nothing are dropped first: context rules look through them
    deleted = np.flatnonzero((cls & DEL) != 0) if present & DEL else _NO_POS
    if len(deleted):
        visible = np.ones(len(cls), dtype=bool)
        visible[deleted] = False
        vcls, vout, vsrc = cls[visible], out[visible], src[visible]
    else:
        vcls, vout, vsrc = cls, out, src

    # 2. context rules decide which separators go; one pass finds separators and expansions alike.
    # A separator can only go next to a CJK character or between lone letters.
    drop = _NO_POS
    sep_rules = bool(present & SEP) and bool(present & (CJK | LETTER))
    wanted = (SEP if sep_rules else 0) | (MULTI if present & MULTI else 0)
    # nonzero over a bool array is ~4x faster than over uint8
    special = np.flatnonzero((vcls & wanted) != 0) if wanted else _NO_POS
    special_cls = vcls[special]
    if sep_rules:
        sep_pos = special[(special_cls & SEP) != 0] if wanted != SEP else special
        drop = _dropped_separators(vcls, vout, sep_pos, present)
    mpos = (special[(special_cls & MULTI) != 0] if wanted != MULTI else special) if present & MULTI else _NO_POS
    if len(drop):
        keep = np.ones(len(vcls), dtype=bool)
        keep[drop] = False
        vout = vout[keep]
        mpos = mpos[keep[mpos]]   # a dropped separator may itself be an expansion ("…")
    msrc = vsrc[mpos]
    if len(drop):
        mpos = mpos - np.searchsorted(drop, mpos)
        # positions in visible coordinates → original coordinates
        drop_orig = drop + np.searchsorted(deleted - np.arange(len(deleted)), drop, side="right")
        deleted = np.union1d(deleted, drop_orig)

    # 3. expansions
    extra = _NO_POS
    if len(mpos):
        vout, extra = _expand(table, msrc, vout, mpos)
    return NormalizedBatch(codes=vout, orig_cls=cls, row_seps=seps,
                           to_orig=OffsetMap(deleted=deleted, exp_pos=mpos, exp_extra=extra))


def _fold(table: FoldTable, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class flags, single-character fold) of every code; ``take`` beats fancy indexing ~1.5x."""
    if src.dtype == np.uint16:
        packed = np.take(table.narrow, src)
        flags = packed.view(np.uint8)[2::4] if sys.byteorder == "little" else packed >> 16
        return flags.astype(np.uint8), packed.astype(np.uint16)
    return np.take(table.cls, src), np.take(table.single, src)


def normalize(text: str) -> str:
    """The normalization applied alike to keyword patterns and to scanned text (see package doc)."""
    return normalize_batch([text]).text()[1:-1]
