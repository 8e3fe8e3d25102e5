"""The compiled normalization kernel: UTF-8 rows in, normalized UTF-8 out, one pass per row.

For every output byte it also records where its character came from (the original character's
position in the joined rows) and whether that character blocks a Latin / digit keyword's
boundary, packed in one integer (position × 2 + blocks), so a hit's byte offsets map straight
back to the original text and its boundaries are checked with two look-ups. The rules are
those of ``reference`` (the yardstick it is tested against), applied to each row's visible
characters.

Numba compiles it on first use and caches it on disk next to this file (or in numba's user cache
when the package folder is read-only), so a worker process pays the compilation once per
installation, not once per task. The hot loops are written out in one function: a call per
character or per row costs numba more than the work it does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .table import CJK, DEL, LETTER, MULTI, SEP, WORD

# Set in the kernel's copy of the class flags (``FoldTable.kernel_cls``) on characters whose
# single fold is a letter or digit and that are not CJK: they block a keyword's boundary.
BLOCKS = 128

NEWLINE = 0x0A
PLAIN, COLLECT, MARKED = 0, 1, 2   # the passes over a row (see fold_rows)
REPLACEMENT = 0xFFFD
# Indexes cast to unsigned spare numba the negative-index check on every access of a hot loop.
_U1, _U2, _U3 = np.uint64(1), np.uint64(2), np.uint64(3)


@njit(cache=True, nogil=True)
def _same_fold(a: int, b: int, cls: np.ndarray, enc: np.ndarray, multi_cp: np.ndarray,
               multi_offsets: np.ndarray, multi_data: np.ndarray) -> bool:
    """Whether two visible characters fold to the same text."""
    if a == b:
        return True
    a_multi, b_multi = (cls[a] & MULTI) != 0, (cls[b] & MULTI) != 0
    if not a_multi and not b_multi:
        return enc[a] == enc[b]
    if a_multi != b_multi:
        return False
    ka, kb = np.searchsorted(multi_cp, a), np.searchsorted(multi_cp, b)
    alo, ahi = multi_offsets[ka], multi_offsets[ka + 1]
    blo, bhi = multi_offsets[kb], multi_offsets[kb + 1]
    if ahi - alo != bhi - blo:
        return False
    for k in range(ahi - alo):
        if multi_data[alo + k] != multi_data[blo + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def fold_rows(data: np.ndarray, offsets: np.ndarray, cls: np.ndarray, enc: np.ndarray,
              multi_cp: np.ndarray, multi_offsets: np.ndarray, multi_data: np.ndarray,
              multi_enc: np.ndarray, max_ratio: int,
              out: np.ndarray, origin: np.ndarray, row_seps: np.ndarray,
              r: int, o: int, pos: int) -> tuple[int, int, int]:
    """Normalize the rows ``data[offsets[r]:offsets[r + 1]]`` (UTF-8) into ``out``, from row ``r``.

    ``cls`` are the class flags with ``BLOCKS``; ``enc[cp]`` is the UTF-8 of a character's
    single fold, its bytes packed little-endian in the low 32 bits, their number above;
    ``multi_enc`` the same of each character of ``multi_data``.
    ``out`` receives "\\n" + row0 + "\\n" + row1 + ... + "\\n", normalized; ``origin`` one
    entry per output byte (see the module doc); ``row_seps`` the original
    position of each separator. Original positions count characters of the joined original
    "SEP row0 SEP row1 ... SEP", one per row separator.

    Call with ``r = o = pos = 0``. Returns ``(r, o, pos)``: where it stopped, how much of
    ``out`` is used, the next original position. It stops before a row that might not fit
    (a row can grow by ``max_ratio`` bytes per input byte, and the outputs need 3 bytes of
    room past the end): grow the outputs and call again with what it returned;
    ``r == len(offsets) - 1`` means done.
    """
    n = len(offsets) - 1
    longest = 0
    for k in range(r, n):
        longest = max(longest, offsets[k + 1] - offsets[k])
    vcp = np.empty(longest, dtype=np.int64)    # a row's visible characters
    vfl = np.empty(longest, dtype=np.uint8)    # their class flags
    spelled_sep = np.zeros(longest, dtype=np.int64)   # r + 1 on separators of a spelled-out word of row r

    if r == 0 and o == 0:
        out[0] = NEWLINE
        origin[0] = 0
        row_seps[0] = 0
        o, pos = 1, 1
    while r < n:
        start, end = np.int64(offsets[r]), np.int64(offsets[r + 1])
        if o + (end - start) * max_ratio + 4 > len(out):
            break
        stamp = r + 1
        row_o, row_pos = o, pos
        # Most rows take one pass. The spelled-out rule needs to look ahead, so a row holding
        # two "L s L" with nothing alphanumeric before the first L (a necessary condition,
        # counted on the way) is folded again keeping its visible characters (COLLECT), marked
        # from them, and folded a last time leaving the marked separators out (MARKED).
        phase = PLAIN
        while True:
            i = start
            o, pos = row_o, row_pos
            nv = 0
            run_o = -1               # output position where the current run of separators began
            run_after_cjk = False    # whether a CJK character comes right before that run
            last_cjk = False         # whether the last visible non-separator is CJK
            f1 = f2 = f3 = np.int64(0)   # the last three visible characters' flags
            spelled = 0
            while i < end:
                # Decode. Encoded surrogates (Python's "surrogatepass") decode to themselves, as
                # Python strings hold them; a byte that starts no well-formed character is one
                # U+FFFD, so nothing is lost and positions still count one per character.
                u = np.uint64(i)
                b0 = np.int64(data[u])
                cp = np.int64(REPLACEMENT)
                width = 1
                if b0 < 0x80:
                    cp = b0
                elif b0 < 0xC2:
                    pass
                elif b0 < 0xE0:
                    if i + 1 < end and (data[u + _U1] & 0xC0) == 0x80:
                        cp = ((b0 & 0x1F) << 6) | (np.int64(data[u + _U1]) & 0x3F)
                        width = 2
                elif b0 < 0xF0:
                    if i + 2 < end and (data[u + _U1] & 0xC0) == 0x80 and (data[u + _U2] & 0xC0) == 0x80:
                        c = (((b0 & 0x0F) << 12) | ((np.int64(data[u + _U1]) & 0x3F) << 6)
                             | (np.int64(data[u + _U2]) & 0x3F))
                        if c >= 0x800:
                            cp = c
                            width = 3
                elif b0 < 0xF5:
                    if (i + 3 < end and (data[u + _U1] & 0xC0) == 0x80 and (data[u + _U2] & 0xC0) == 0x80
                            and (data[u + _U3] & 0xC0) == 0x80):
                        c = (((b0 & 0x07) << 18) | ((np.int64(data[u + _U1]) & 0x3F) << 12)
                             | ((np.int64(data[u + _U2]) & 0x3F) << 6) | (np.int64(data[u + _U3]) & 0x3F))
                        if 0x10000 <= c <= 0x10FFFF:
                            cp = c
                            width = 4
                i += width
                src = pos
                pos += 1
                flags = np.int64(cls[np.uint64(cp)])
                if flags & DEL:
                    continue   # folds to nothing: the rules see through it

                # A run of separators with a CJK character on both sides is deleted (赌 * 场 →
                # 赌场): it is written, and taken back when the CJK character after it comes.
                if flags & SEP:
                    if run_o < 0:
                        run_o = o
                        run_after_cjk = last_cjk
                else:
                    if run_o >= 0 and run_after_cjk and flags & CJK:
                        o = run_o
                    run_o = -1
                    last_cjk = (flags & CJK) != 0
                if flags & LETTER and f1 & SEP and f2 & LETTER and not f3 & WORD:
                    spelled += 1
                f3, f2, f1 = f2, f1, flags
                v = np.uint64(nv)
                nv += 1
                if phase == COLLECT:
                    vcp[v] = cp
                    vfl[v] = flags
                elif phase == MARKED and spelled_sep[v] == stamp:
                    continue

                # Fold and encode: the character's single fold, or each character of a
                # multi-character fold; 1-4 bytes each, all four written, the length says how
                # many count. (The single fold is written out on its own: a loop of one around
                # it costs numba twice the time of the whole kernel.)
                if not flags & MULTI:
                    e = np.int64(enc[np.uint64(cp)])
                    where = src * 2 + ((flags & BLOCKS) != 0)
                    u = np.uint64(o)
                    out[u] = e & 0xFF
                    out[u + _U1] = (e >> 8) & 0xFF
                    out[u + _U2] = (e >> 16) & 0xFF
                    out[u + _U3] = (e >> 24) & 0xFF
                    origin[u] = where
                    origin[u + _U1] = where
                    origin[u + _U2] = where
                    origin[u + _U3] = where
                    o += int(e >> 32)
                    continue
                at = np.searchsorted(multi_cp, cp)
                for m in range(multi_offsets[at], multi_offsets[at + 1]):
                    e = np.int64(multi_enc[m])
                    where = src * 2 + ((cls[multi_data[m]] & WORD) != 0 and not flags & CJK)
                    for k in range(int(e >> 32)):
                        out[o + k] = (e >> (8 * k)) & 0xFF
                        origin[o + k] = where
                    o += int(e >> 32)
            if phase == PLAIN and spelled >= 2:
                phase = COLLECT
            elif phase == COLLECT and _mark_spelled(vcp, vfl, nv, spelled_sep, stamp, cls, enc,
                                                    multi_cp, multi_offsets, multi_data):
                phase = MARKED
            else:
                break

        row_seps[r + 1] = pos
        out[o] = NEWLINE
        origin[o] = pos * 2
        o += 1
        pos += 1
        r += 1
    return r, o, pos


@njit(cache=True, nogil=True)
def _mark_spelled(vcp: np.ndarray, vfl: np.ndarray, nv: int, spelled_sep: np.ndarray, stamp: int,
                  cls: np.ndarray, enc: np.ndarray, multi_cp: np.ndarray, multi_offsets: np.ndarray,
                  multi_data: np.ndarray) -> bool:
    """Mark with ``stamp`` the separators of spelled-out words among a row's ``nv`` visible
    characters: L s L s L, s the same single separator, L a lone letter (no letter or digit
    beside it), as in c.a.s.i.n.o → casino. Returns whether there is any."""
    found = False
    j = 0
    while j < nv:
        if not (vfl[j] & LETTER and not (j > 0 and vfl[j - 1] & WORD)
                and not (j + 1 < nv and vfl[j + 1] & WORD)):
            j += 1
            continue
        first = -1
        count = 0
        while (j + 2 < nv and vfl[j + 1] & SEP and not vfl[j + 1] & WORD and vfl[j + 2] & LETTER
               and not (vfl[j + 3] & WORD if j + 3 < nv else False)
               and (first < 0 or _same_fold(vcp[j + 1], vcp[first], cls, enc, multi_cp,
                                            multi_offsets, multi_data))):
            if first < 0:
                first = j + 1
            count += 1
            j += 2
        if count >= 2:
            found = True
            for m in range(first, j, 2):
                spelled_sep[m] = stamp
        if count == 0:
            j += 1
    return found


@njit(cache=True, nogil=True)
def char_spans_to_bytes(data: np.ndarray, offsets: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                        ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The byte ranges in ``data`` of the character ranges ``starts[i]:ends[i]`` of the rows
    ``rows[i]`` (row r is ``data[offsets[r]:offsets[r + 1]]``, well-formed UTF-8)."""
    begin = np.empty(len(rows), dtype=np.int64)
    end = np.empty(len(rows), dtype=np.int64)
    for h in range(len(rows)):
        pos, stop = int(offsets[rows[h]]), int(offsets[rows[h] + 1])
        pos = _skip_chars(data, pos, stop, int(starts[h]))
        begin[h] = pos
        end[h] = _skip_chars(data, pos, stop, int(ends[h] - starts[h]))
    return begin, end


@njit(cache=True, nogil=True)
def _skip_chars(data: np.ndarray, pos: int, stop: int, count: int) -> int:
    """The byte ``count`` characters after ``pos`` (``stop`` at most): a character is a lead
    byte and the continuation bytes after it."""
    for _ in range(count):
        if pos >= stop:
            break
        pos += 1
        while pos < stop and (data[pos] & 0xC0) == 0x80:
            pos += 1
    return pos
