"""A compiled scanner of the flat JSON objects of JSON-lines logs: one pass per line finds the
value of each known key, and one copy per column builds the Arrow table.

It takes only the lines it can read exactly as Arrow's JSON reader does: one object of keys
without escapes, whose values are strings without escapes or control characters, plain numbers
(no exponent, at most 15 significant digits, integers where the column is an integer), or null;
keys it does not know may hold any of those or a boolean. Every other line (escapes, nested
values, duplicate keys, values of the wrong type, broken JSON) is left to the reader, which also
names what is wrong with a bad line. Compiled and cached on disk as ``normalize.kernel`` is.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from .base import Stored
from .logs_tokens import gather

STRING, INT, FLOAT = 0, 1, 2
_QUOTE, _BACKSLASH, _COLON, _COMMA, _OPEN, _CLOSE, _MINUS, _DOT = 34, 92, 58, 44, 123, 125, 45, 46
_POW10 = np.array([10.0 ** k for k in range(16)])


@njit(cache=True, nogil=True)
def _ws(buf: np.ndarray, i: int, e: int) -> int:
    while i < e and (buf[i] == 32 or buf[i] == 9 or buf[i] == 13 or buf[i] == 10):
        i += 1
    return i


@njit(cache=True, nogil=True)
def _string_end(buf: np.ndarray, i: int, e: int) -> int:
    """Index of the quote closing the string whose text starts at ``i``; -1 on an escape or control byte."""
    while i < e:
        c = buf[i]
        if c == _QUOTE:
            return i
        if c == _BACKSLASH or c < 32:
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _key(buf: np.ndarray, lo: int, hi: int, name_data: np.ndarray, name_off: np.ndarray) -> int:
    for f in range(len(name_off) - 1):
        a, b = name_off[f], name_off[f + 1]
        if b - a != hi - lo:
            continue
        same = True
        for k in range(b - a):
            if buf[lo + k] != name_data[a + k]:
                same = False
                break
        if same:
            return f
    return -1


@njit(cache=True, nogil=True)
def _literal(buf: np.ndarray, i: int, e: int, word: bytes) -> bool:
    if i + len(word) > e:
        return False
    for k in range(len(word)):
        if buf[i + k] != word[k]:
            return False
    return True


@njit(cache=True, nogil=True)
def scan_objects(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, name_data: np.ndarray,
                 name_off: np.ndarray, kinds: np.ndarray, slots: np.ndarray, taken: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray, present: np.ndarray, ints: np.ndarray, floats: np.ndarray) -> None:
    """For each line ``r``: ``taken[r]`` (read here), and per known key ``f`` whether it is present
    and not null (``present[f, r]``, all False on entry), the span of its string value (``lo[f, r]``,
    ``hi[f, r]``) or its number (``ints[slots[f], r]`` / ``floats[slots[f], r]``). One column per
    row of each array, so that a column is read without a gather; rows of lines not taken are
    left as they are."""
    for r in range(len(starts)):
        e = ends[r]
        i = _ws(buf, starts[r], e)
        ok = i < e and buf[i] == _OPEN
        i = _ws(buf, i + 1, e)
        seen = 0
        if ok and i < e and buf[i] == _CLOSE:
            i += 1
        elif ok:
            while True:
                if i >= e or buf[i] != _QUOTE:
                    ok = False
                    break
                k_end = _string_end(buf, i + 1, e)
                if k_end < 0:
                    ok = False
                    break
                f = _key(buf, i + 1, k_end, name_data, name_off)
                if f >= 0:
                    if seen & (1 << f):
                        ok = False   # a duplicate key: the reader decides
                        break
                    seen |= 1 << f
                i = _ws(buf, k_end + 1, e)
                if i >= e or buf[i] != _COLON:
                    ok = False
                    break
                i = _ws(buf, i + 1, e)
                if i >= e:
                    ok = False
                    break
                c = buf[i]
                kind = kinds[f] if f >= 0 else -1
                if c == _QUOTE:
                    v_end = _string_end(buf, i + 1, e)
                    if v_end < 0 or (f >= 0 and kind != STRING):
                        ok = False
                        break
                    if f >= 0:
                        lo[f, r] = i + 1
                        hi[f, r] = v_end
                        present[f, r] = True
                    i = v_end + 1
                elif c == 110:   # null
                    if not _literal(buf, i, e, b"null"):
                        ok = False
                        break
                    i += 4
                elif c == 116 or c == 102:   # true, false: no known key holds a boolean
                    word = b"true" if c == 116 else b"false"
                    if f >= 0 or not _literal(buf, i, e, word):
                        ok = False
                        break
                    i += len(word)
                elif c == _MINUS or (48 <= c <= 57):
                    negative = c == _MINUS
                    if negative:
                        i += 1
                    d0 = i
                    mantissa = 0
                    while i < e and 48 <= buf[i] <= 57:
                        mantissa = mantissa * 10 + (buf[i] - 48)
                        i += 1
                    digits = i - d0
                    if digits == 0 or (digits > 1 and buf[d0] == 48):
                        ok = False
                        break
                    fraction = 0
                    if i < e and buf[i] == _DOT:
                        i += 1
                        f0 = i
                        while i < e and 48 <= buf[i] <= 57:
                            mantissa = mantissa * 10 + (buf[i] - 48)
                            i += 1
                        fraction = i - f0
                        if fraction == 0:
                            ok = False
                            break
                    if (i < e and (buf[i] == 101 or buf[i] == 69)) or digits + fraction > 15:
                        ok = False   # exponents and long numbers: the reader rounds them
                        break
                    if f >= 0:
                        if kind == STRING or (kind == INT and fraction > 0):
                            ok = False
                            break
                        value = -mantissa if negative else mantissa
                        ints[slots[f], r] = value
                        # Both exact in a double, so the quotient is the correctly rounded value.
                        floats[slots[f], r] = value / _POW10[fraction] if not negative or value != 0 else -0.0
                        present[f, r] = True
                else:
                    ok = False   # nested values: the reader decides
                    break
                i = _ws(buf, i, e)
                if i < e and buf[i] == _COMMA:
                    i = _ws(buf, i + 1, e)
                    continue
                if i < e and buf[i] == _CLOSE:
                    i += 1
                    break
                ok = False
                break
        taken[r] = ok and _ws(buf, i, e) == e


def scan(data: Stored, starts: np.ndarray, ends: np.ndarray, schema: pa.Schema) -> tuple[np.ndarray, pa.Table]:
    """Which lines the scanner reads, and the table (``schema``) of those lines' values."""
    names = [name.encode() for name in schema.names]
    name_off = np.zeros(len(names) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in names], out=name_off[1:])
    name_data = np.frombuffer(b"".join(names), dtype=np.uint8)
    kinds = np.array([INT if pa.types.is_integer(f.type) else FLOAT if pa.types.is_floating(f.type) else STRING
                      for f in schema], dtype=np.int64)
    numeric = kinds != STRING
    slots = np.where(numeric, np.cumsum(numeric) - 1, 0)
    n, k, m = len(starts), len(names), int(numeric.sum())
    buf = np.frombuffer(data, dtype=np.uint8)
    taken = np.zeros(n, dtype=np.bool_)
    # Zeros: a key absent or null keeps an empty span and a zero under its null.
    lo, hi, present = np.zeros((k, n), dtype=np.int64), np.zeros((k, n), dtype=np.int64), np.zeros((k, n), dtype=np.bool_)
    ints, floats = np.zeros((m, n), dtype=np.int64), np.zeros((m, n), dtype=np.float64)
    scan_objects(buf, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), name_data, name_off,
                 kinds, slots, taken, lo, hi, present, ints, floats)
    every = bool(taken.all())
    rows = np.flatnonzero(taken)

    def column(values: np.ndarray) -> np.ndarray:
        return values if every else values[rows]

    arrays: list[pa.Array] = []
    for f, field in enumerate(schema):
        valid = column(present[f])
        if kinds[f] == STRING:
            arrays.append(gather(buf, column(lo[f]), column(hi[f]), valid))
        else:
            values = column(ints[slots[f]] if kinds[f] == INT else floats[slots[f]])
            arrays.append(pa.array(values, field.type, mask=None if valid.all() else ~valid))
    return taken, pa.Table.from_arrays(arrays, schema=schema)
