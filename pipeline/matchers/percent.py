"""URL percent-decoding of many values at once, as ``urllib.parse.unquote(v, errors="replace")``
decodes each: the escapes are found and replaced over the values' joined bytes with numpy."""

from __future__ import annotations

from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..normalize.batch import arrow_utf8
from ..utf8 import invalid_utf8

_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_PERCENT = ord("%")


def holds_percent(values: pa.Array) -> np.ndarray:
    """Whether each of ``values`` (strings; a null holds nothing) has a "%", found by one pass over
    their joined bytes ("%" is ASCII, so it is never part of another character's UTF-8 bytes):
    several times faster than a substring search value by value."""
    data, offsets = arrow_utf8(values)
    found = np.zeros(len(offsets) - 1, dtype=bool)
    at = np.flatnonzero(data[offsets[0]: offsets[-1]] == _PERCENT) + offsets[0]
    found[np.searchsorted(offsets, at, side="right") - 1] = True
    return found


def unquote_many(values: pa.Array) -> pa.Array:
    """Each of ``values`` (strings, no nulls) URL-decoded, in the same order and type.

    An escape ``%XX`` (two hex digits, inside one value) becomes its byte. A value whose escapes
    all decode to ASCII bytes is valid UTF-8 as it was, so its bytes are its text; a value with an
    escape of a byte >= 0x80 may decode to invalid UTF-8, whose replacement characters ``unquote``
    places run by run, so such values, when they are not valid UTF-8, are decoded by ``unquote`` itself."""
    arr = values.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    at = np.flatnonzero(data[offsets[0]: offsets[-1]] == _PERCENT) + offsets[0]
    row = np.searchsorted(offsets, at, side="right") - 1
    inside = at + 2 < offsets[row + 1]
    at, row = at[inside], row[inside]
    high, low = _HEX[data[at + 1]], _HEX[data[at + 2]]
    valid = (high >= 0) & (low >= 0)
    at, row, byte = at[valid], row[valid], (high[valid] * 16 + low[valid]).astype(np.uint8)
    out = data.copy()
    out[at] = byte
    dropped = np.zeros(len(data), dtype=bool)
    dropped[at + 1] = dropped[at + 2] = True
    removed = 2 * np.searchsorted(at, offsets)   # two bytes fewer per escape before each value
    as_bytes = pa.Array.from_buffers(pa.large_binary(), len(arr),
                                     [None, pa.py_buffer(offsets - removed), pa.py_buffer(out[~dropped])])
    decoded = as_bytes.view(pa.large_string())
    wide = np.unique(row[byte >= 0x80])
    if len(wide):
        # Decoded bytes that are valid UTF-8 are what ``unquote`` gives too: an escaped run begins
        # and ends where a character does, since the text around it is whole characters. Only
        # the others need its replacement characters.
        wide = wide[invalid_utf8(as_bytes.take(pa.array(wide)))]
    if len(wide):
        by_python = _unquote_each(values.take(pa.array(wide)).to_pylist())
        mask = np.zeros(len(arr), dtype=bool)
        mask[wide] = True
        decoded = pc.replace_with_mask(decoded, pa.array(mask), pa.array(by_python, type=pa.large_string()))
    return decoded.cast(values.type)


def _unquote_each(values: list[str]) -> list[str]:
    """``unquote`` of each value, in one call over the values joined where none holds a newline:
    "\\n" is no hex digit and ends any UTF-8 sequence, so each value decodes as alone."""
    if not any("\n" in v for v in values):
        parts = unquote("\n".join(values), errors="replace").split("\n")
        if len(parts) == len(values):
            return parts
    return [unquote(v, errors="replace") for v in values]
