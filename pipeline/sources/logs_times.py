"""Log timestamps of a fixed layout parsed with numpy arithmetic on their bytes.

Access logs write their times in a handful of fixed-width layouts (``[01/Nov/2026:00:04:00 +0800]``,
``20261101000400``, ``2026-11-01 00:04:00``) and, spread over a day or two, nearly every line has
a second of its own, so parsing each distinct value with ``strptime`` still parses most lines.
Here the digits are read off fixed positions of all values at once and turned into epoch seconds
(days from the civil date by Howard Hinnant's formula). Only values that are plainly valid are
taken this way: zero-padded digits, an English month abbreviation as logged, a day that exists in
its month, seconds below 60, a year that nanoseconds can hold. Every other value is left to
``strptime`` by the caller, so the result is the same as parsing all of them with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

NS = 1_000_000_000
_MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"]
_MONTH_KEY = np.array([(m[0] << 16) | (m[1] << 8) | m[2] for m in _MONTHS], dtype=np.int64)
_SORTED_KEYS = np.sort(_MONTH_KEY)
_SORTED_MONTH = np.argsort(_MONTH_KEY) + 1   # month number (1-12) of each sorted key
_DAYS_IN = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@dataclass(frozen=True)
class Fixed:
    """Where each part of one layout sits: start of each number (Y: 4 digits, others 2; b: the
    month's abbreviation), the literal bytes between them, and the ``+hhmm`` offset if written."""

    width: int
    parts: dict[str, int]
    literals: dict[int, int]
    zone: int | None = None


LAYOUTS: dict[str, Fixed] = {
    "[%d/%b/%Y:%H:%M:%S %z]": Fixed(28, {"d": 1, "b": 4, "Y": 8, "H": 13, "M": 16, "S": 19},
                                    {0: ord("["), 3: ord("/"), 7: ord("/"), 12: ord(":"), 15: ord(":"),
                                     18: ord(":"), 21: ord(" "), 27: ord("]")}, zone=22),
    "%Y%m%d%H%M%S": Fixed(14, {"Y": 0, "m": 4, "d": 6, "H": 8, "M": 10, "S": 12}, {}),
    "%Y-%m-%d %H:%M:%S": Fixed(19, {"Y": 0, "m": 5, "d": 8, "H": 11, "M": 14, "S": 17},
                               {4: ord("-"), 7: ord("-"), 10: ord(" "), 13: ord(":"), 16: ord(":")}),
}
_SUFFIX = re.compile(r"^ ([+-])([0-9]{2})([0-9]{2})$")


def layout_for(fmt: str, suffix: str) -> tuple[Fixed, int] | None:
    """The fixed layout of ``fmt`` (with ``suffix`` appended to every value), and the offset in
    seconds the suffix states (``" +0800"``: 28800); None when ``fmt`` is not one of them."""
    if suffix:
        m = _SUFFIX.match(suffix)
        if m is None or not fmt.endswith(" %z") or fmt[:-3] not in LAYOUTS:
            return None
        sign = 1 if m.group(1) == "+" else -1
        return LAYOUTS[fmt[:-3]], sign * (int(m.group(2)) * 3600 + int(m.group(3)) * 60)
    return (LAYOUTS[fmt], 0) if fmt in LAYOUTS else None


def _columns(col: pa.Array, width: int) -> tuple[np.ndarray, Callable[[int], np.ndarray]]:
    """(rows of exactly ``width`` bytes, a function giving the byte at a position of each of them).

    A column cut from lines holds its values packed one after the other: read as a 2-D view of
    its buffer, each position is a strided column, with no copy. Otherwise each is gathered.
    """
    _validity, offset_buf, data = col.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64)[col.offset:col.offset + len(col) + 1]
    lengths = np.diff(offsets)
    fits = lengths == width
    packed = bool(((lengths == 0) | fits).all())
    if col.null_count:
        fits &= np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    rows = np.flatnonzero(fits)
    buf = np.frombuffer(data, dtype=np.uint8)
    if packed and len(rows) == int((lengths == width).sum()):
        grid = buf[offsets[0]:offsets[-1]].reshape(-1, width)
        return rows, lambda pos: grid[:, pos]
    starts = offsets[:-1][rows]
    return rows, lambda pos: buf[starts + pos]


def parse_fixed(col: pa.Array, fmt: Fixed, offset_s: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(nanoseconds since the epoch, UTC; whether each value was taken) for a large string column."""
    n = len(col)
    out = np.zeros(n, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    if n == 0:
        return out, taken
    rows, at = _columns(col, fmt.width)
    if not len(rows):
        return out, taken
    ok = np.ones(len(rows), dtype=bool)

    for pos, byte in fmt.literals.items():
        ok &= at(pos) == byte

    def number(start: int, digits: int) -> np.ndarray:
        nonlocal ok
        value = np.zeros(len(rows), dtype=np.int64)
        for pos in range(start, start + digits):
            d = at(pos) - np.uint8(48)   # wraps below '0': one unsigned test covers both bounds
            ok &= d <= 9
            value = value * 10 + d
        return value

    p = fmt.parts
    year = number(p["Y"], 4)
    if "b" in p:
        key = (at(p["b"]).astype(np.int64) << 16) | (at(p["b"] + 1).astype(np.int64) << 8) | at(p["b"] + 2)
        ix = np.minimum(np.searchsorted(_SORTED_KEYS, key), 11)
        ok &= _SORTED_KEYS[ix] == key
        month = _SORTED_MONTH[ix]
    else:
        month = number(p["m"], 2)
    day, hour, minute, second = (number(p[k], 2) for k in ("d", "H", "M", "S"))
    ok &= (month >= 1) & (month <= 12) & (year > 1678) & (year < 2262)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ix = np.clip(month, 1, 12) - 1
    ok &= (day >= 1) & (day <= _DAYS_IN[month_ix] + ((month_ix == 1) & leap))
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    zone = np.full(len(rows), offset_s, dtype=np.int64)
    if fmt.zone is not None:
        sign = at(fmt.zone)
        ok &= (sign == ord("+")) | (sign == ord("-"))
        zh, zm = number(fmt.zone + 1, 2), number(fmt.zone + 3, 2)
        ok &= (zh <= 14) & (zm <= 59)
        zone = np.where(sign == ord("-"), -1, 1) * (zh * 3600 + zm * 60)
    # Days from the civil date (proleptic Gregorian), then seconds, less the written offset.
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - zone
    out[rows[ok]] = seconds[ok] * NS
    taken[rows[ok]] = True
    return out, taken
