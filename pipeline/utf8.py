"""Finding the values of a binary Arrow array that are not UTF-8 text."""

from __future__ import annotations

import pyarrow as pa


def invalid_utf8(arr: pa.Array, first: int = 0) -> list[int]:
    """Indices (plus ``first``) of the elements of a binary array that are not UTF-8, by bisecting
    failed casts.

    A cast validates a whole block in C; only blocks that fail are split, so a clean array costs
    one pass and each bad value costs a handful of small casts.
    """
    try:
        arr.cast(pa.large_string())
        return []
    except pa.ArrowInvalid:
        if len(arr) == 1:
            return [first]
    half = len(arr) // 2
    return invalid_utf8(arr.slice(0, half), first) + invalid_utf8(arr.slice(half), first + half)
