"""Cutting the strict lines of a layout into fields, straight from the file's bytes, compiled: one pass over each line's bytes finds its fields
and checks each against its kind, and one copy per kept field builds its Arrow column.

A strict line (quoted fields hold no quote, fields are separated by one space) is described by
the sequence of delimiters it must contain: outside quotes a space or a quote, inside quotes
only the closing quote. Between two delimiters lies a slot, which holds a field (or half of a
bracketed time) or must be empty. The line is strict when its delimiters are exactly the
template's (with ``tail``, the template's may be followed by a space and anything) and every
field's bytes match its kind, which is what the layout's strict regex asks of it.

Numba compiles the kernels on first use and caches them on disk next to this file (or in
numba's user cache when the package folder is read-only), as ``normalize.kernel`` does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from .logs_lines import Lines

SPACE, QUOTE = 32, 34
# Field kind codes (the layout kinds whose text the kernel checks; ``quoted`` needs no check).
QUOTED, TOK, INT, NUM, STATUS, STAMP14, CLFTIME = range(7)
CODES = {"quoted": QUOTED, "tok": TOK, "int": INT, "num": NUM, "status": STATUS, "stamp14": STAMP14,
         "clftime": CLFTIME}


@dataclass(frozen=True)
class Template:
    """A layout as delimiters and slots: ``delims[j]`` is the j-th delimiter byte; slot ``s`` lies
    between delimiter ``s - 1`` (or the line's start) and delimiter ``s`` (or the line's end);
    ``slot_field[s]`` is the field it holds (-1: must be empty), ``slot_half[s]`` 1 for the
    second half of a bracketed time."""

    delims: np.ndarray
    slot_field: np.ndarray
    slot_half: np.ndarray
    kinds: np.ndarray
    tail: bool


def template(kinds: list[str], *, tail: bool = False) -> Template:
    """The template of a layout whose fields have these kinds (written out as ``plan`` does)."""
    pieces: list[str] = []
    for i, kind in enumerate(kinds):
        pieces.append(f'"{i}"' if kind == "quoted" else f"a{i} b{i}" if kind == "clftime" else f"a{i}")
    text = " ".join(pieces)
    delims: list[int] = []
    slots: list[str] = [""]
    quoted = False
    for ch in text:
        if ch == '"' or (ch == " " and not quoted):
            delims.append(ord(ch))
            quoted ^= ch == '"'
            slots.append("")
        else:
            slots[-1] += ch
    field = [-1 if not s else int(s.lstrip("ab")) for s in slots]
    half = [1 if s.startswith("b") else 0 for s in slots]
    return Template(np.array(delims, dtype=np.uint8), np.array(field, dtype=np.int64),
                    np.array(half, dtype=np.int64), np.array([CODES[k] for k in kinds], dtype=np.int64), tail)


@njit(cache=True, nogil=True)
def _plain(buf: np.ndarray, lo: int, hi: int, also: int) -> bool:
    """No white space (RE2's ``\\s``: tab, newline, form feed, CR, space), quote or ``also`` in ``[lo, hi)``."""
    for i in range(lo, hi):
        c = buf[i]
        if c == 9 or c == 10 or c == 12 or c == 13 or c == 32 or c == 34 or c == also:
            return False
    return True


@njit(cache=True, nogil=True)
def _digits(buf: np.ndarray, lo: int, hi: int) -> bool:
    for i in range(lo, hi):
        if buf[i] < 48 or buf[i] > 57:
            return False
    return True


@njit(cache=True, nogil=True)
def _kind_ok(buf: np.ndarray, kind: int, lo: int, hi: int) -> bool:
    """Whether ``buf[lo:hi]`` matches the strict pattern of its kind (``logs_layout._KINDS``)."""
    n = hi - lo
    if kind == QUOTED:
        return True
    if kind == TOK:
        return n > 0 and _plain(buf, lo, hi, -1)
    dash = n == 1 and buf[lo] == 45
    if kind == INT:
        return dash or (n > 0 and _digits(buf, lo, hi))
    if kind == NUM:
        if dash:
            return True
        dot = -1
        for i in range(lo, hi):
            if buf[i] == 46:
                dot = i
                break
        if dot < 0:
            return n > 0 and _digits(buf, lo, hi)
        return dot > lo and dot < hi - 1 and _digits(buf, lo, dot) and _digits(buf, dot + 1, hi)
    if kind == STATUS:
        return n == 3 and _digits(buf, lo, hi)
    if kind == STAMP14:
        return n == 14 and _digits(buf, lo, hi)
    # CLFTIME: "[a b]", each half free of white space, quotes and ']'; one space between them.
    mid = -1
    for i in range(lo, hi):
        if buf[i] == 32:
            mid = i
            break
    if mid < 0 or buf[lo] != 91 or buf[hi - 1] != 93:
        return False
    return mid - lo >= 2 and hi - 1 - mid >= 2 and _plain(buf, lo + 1, mid, 93) and _plain(buf, mid + 1, hi - 1, 93)


@njit(cache=True, nogil=True)
def cut_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, delims: np.ndarray,
              slot_field: np.ndarray, slot_half: np.ndarray, kinds: np.ndarray, tail: bool,
              ok: np.ndarray, rel_start: np.ndarray, rel_end: np.ndarray) -> None:
    """Fill ``ok`` (line is strict) and each field's span relative to its line's start, one row
    per line (a line's spans share a cache line). Spans of a line that is not strict are empty."""
    m = len(delims)
    n_fields = len(kinds)
    for r in range(len(starts)):
        start, end = starts[r], ends[r]
        good = True
        d = 0
        quoted = False
        slot_start = start
        last_end = end
        for i in range(start, end):
            c = buf[i]
            if c != QUOTE and (c != SPACE or quoted):
                continue
            if d == m:     # the template is complete: only a tail may follow, after a space
                good = tail and c == SPACE
                last_end = i
                break
            if c != delims[d]:
                good = False
                break
            f = slot_field[d]
            if f < 0:
                if i != slot_start:
                    good = False
                    break
            else:
                if slot_half[d] == 0:
                    rel_start[r, f] = slot_start - start
                rel_end[r, f] = i - start
            if c == QUOTE:
                quoted = not quoted
            d += 1
            slot_start = i + 1
        if good and d == m:
            f = slot_field[m]
            if f < 0:
                good = last_end == slot_start
            else:
                if slot_half[m] == 0:
                    rel_start[r, f] = slot_start - start
                rel_end[r, f] = last_end - start
        else:
            good = False
        if good:
            for f in range(n_fields):
                if not _kind_ok(buf, kinds[f], start + rel_start[r, f], start + rel_end[r, f]):
                    good = False
                    break
        if not good:
            for f in range(n_fields):
                rel_start[r, f] = 0
                rel_end[r, f] = 0
        ok[r] = good


@njit(cache=True, nogil=True)
def _gather(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    # A byte loop, not a slice copy per row: the values are short, and a slice costs more to set
    # up than to copy.
    for r in range(len(lo)):
        o = offsets[r]
        for i in range(lo[r], hi[r]):
            out[o] = buf[i]
            o += 1


def gather(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, valid: np.ndarray | None = None) -> pa.LargeStringArray:
    """The byte ranges ``[lo, hi)`` of ``buf`` (UTF-8 text cut at ASCII bytes) as one string column,
    copied once into buffers that Arrow then owns; ``valid`` False makes a row null."""
    n = len(lo)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(hi - lo, out=offsets[1:])
    out = np.empty(int(offsets[n]), dtype=np.uint8)
    _gather(buf, lo, hi, offsets, out)
    bitmap = None if valid is None or valid.all() else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(out)])


@njit(cache=True, nogil=True)
def first_byte(buf: np.ndarray, lo: np.ndarray, hi: np.ndarray, byte: int, at: np.ndarray) -> None:
    """``at[r]``: where ``byte`` first occurs in ``buf[lo[r]:hi[r]]``, or ``hi[r]`` when it does not."""
    for r in range(len(lo)):
        at[r] = hi[r]
        for i in range(lo[r], hi[r]):
            if buf[i] == byte:
                at[r] = i
                break


def cut(lines: Lines, kinds: list[str], *, keep: Collection[int] | None = None, tail: bool = False
        ) -> tuple[np.ndarray, list[pa.Array | None]]:
    """Which lines are strict, and every field kept (``keep``, all when None) as a string column.

    Rows of lines that are not strict hold empty strings; the caller parses those lines otherwise.
    """
    t = template(kinds, tail=tail)
    buf = np.frombuffer(lines.data, dtype=np.uint8)
    n = len(lines)
    starts = np.ascontiguousarray(lines.starts, dtype=np.int64)
    ends = np.ascontiguousarray(lines.ends, dtype=np.int64)
    ok = np.zeros(n, dtype=np.bool_)
    # Spans relative to their line fit in 32 bits (lines are at most MAX_LINE_BYTES): half the
    # memory of absolute offsets, the largest temporary of a parse.
    rel_start = np.empty((n, len(kinds)), dtype=np.int32)
    rel_end = np.empty((n, len(kinds)), dtype=np.int32)
    cut_lines(buf, starts, ends, t.delims, t.slot_field, t.slot_half, t.kinds, t.tail, ok, rel_start, rel_end)
    columns: list[pa.Array | None] = [gather(buf, starts + rel_start[:, i], starts + rel_end[:, i]) if keep is None or i in keep
                                      else None for i in range(len(kinds))]
    return ok, columns
