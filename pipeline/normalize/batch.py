"""Normalization of a whole batch of rows at once, with the map back to the original.

The rows go to the compiled kernel (``kernel``) as one UTF-8 buffer and its row offsets (an
Arrow string column's own buffer, without a Python object per row), and come back as one
normalized UTF-8 buffer that the byte-level matchers scan directly, with the original position
of every output byte.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .table import FoldTable, load_table


@dataclass(frozen=True)
class NormalizedBatch:
    """The normalized text of many rows as UTF-8, "\\n" before each row and after the last one,
    and where each byte came from.

    Original positions index the joined original ``SEP row0 SEP row1 ... SEP``: one
    pseudo-character SEP in front of every row and one at the end, characters counted as
    Python counts them.
    """

    utf8: np.ndarray         # uint8: the normalized text; "\\n" (10) exactly at row separators
    origin: np.ndarray       # int32 or int64 per byte: 2 × the original position of the character it
    #                          belongs to, + 1 if that character is a letter or digit that does not
    #                          come from a CJK character (it blocks a Latin / digit keyword's boundary)
    row_seps: np.ndarray     # int64 (rows + 1): original position of the separator before each row

    def orig(self, at: np.ndarray) -> np.ndarray:
        """The original position of the characters at bytes ``at``."""
        return self.origin[at].astype(np.int64) >> 1

    def blocks(self, at: np.ndarray) -> np.ndarray:
        """Whether the characters at bytes ``at`` block a Latin / digit keyword's boundary."""
        return (self.origin[at] & 1) != 0

    @property
    def n_rows(self) -> int:
        return len(self.row_seps) - 1

    def char_orig(self) -> np.ndarray:
        """The original position of each normalized character (for tests; a scan maps only hits)."""
        return self.orig(np.flatnonzero((self.utf8 & 0xC0) != 0x80))

    def text(self) -> str:
        """All rows' normalized text, "\\n"-separated, with a leading and a trailing "\\n"."""
        return codecs.utf_8_decode(self.utf8.data, "surrogatepass", True)[0]

    def rows(self) -> list[str]:
        return self.text()[1:-1].split("\n") if self.n_rows else []


def normalize_batch(rows: Sequence[str] | pa.Array | pa.ChunkedArray,
                    table: FoldTable | None = None) -> NormalizedBatch:
    """Normalize every row in one pass: a list of ``str`` (callers turn missing values into "")
    or an Arrow string array (nulls count as "")."""
    from . import kernel   # numba takes a third of a second to import: only where text is folded

    table = table or load_table()
    data, offsets = arrow_utf8(rows) if isinstance(rows, (pa.Array, pa.ChunkedArray)) else _list_utf8(rows)
    # the output is about as long as the input; it grows when rows expand
    size = len(data) + len(offsets) + 64
    origin_type = np.int32 if 2 * (len(data) + len(offsets)) < 2**31 else np.int64
    out, origin = np.empty(size, np.uint8), np.empty(size, origin_type)
    row_seps = np.empty(len(offsets), np.int64)
    r = used = pos = 0
    while True:
        r, used, pos = kernel.fold_rows(data, offsets, table.kernel_cls, table.enc, table.multi_cp,
                                        table.multi_offsets, table.multi_data, table.multi_enc,
                                        table.max_growth,
                                        out, origin, row_seps, r, used, pos)
        if r == len(offsets) - 1:
            break
        size = max(len(out) + len(out) // 2, used + int(offsets[r + 1] - offsets[r]) * table.max_growth + 4)
        out, origin = (np.concatenate((a, np.empty(size - len(a), a.dtype))) for a in (out, origin))
    return NormalizedBatch(utf8=out[:used], origin=origin[:used], row_seps=row_seps)


def arrow_utf8(rows: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow string column's UTF-8 data (zero-copy) and row offsets."""
    arr = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar("", arr.type))
    buffers = arr.buffers()
    if len(arr) == 0 or buffers[2] is None:
        return np.zeros(0, np.uint8), np.zeros(len(arr) + 1, np.int64)
    offset_type = np.int32 if pa.types.is_string(arr.type) else np.int64
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8)
    data.flags.writeable = False   # as bytes are: the kernel is then compiled for one input type
    return data, offsets.astype(np.int64)


def _list_utf8(rows: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A list of ``str`` as one UTF-8 buffer (lone surrogates passed through) and row offsets."""
    data = "".join(rows).encode("utf-8", "surrogatepass")
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    if lengths.sum() != len(data):   # not all ASCII: count each row's bytes
        lengths = np.fromiter((len(r.encode("utf-8", "surrogatepass")) for r in rows), dtype=np.int64,
                              count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return np.frombuffer(data, dtype=np.uint8), offsets


def join_rows_utf8(rows: Sequence[str] | pa.Array | pa.ChunkedArray) -> tuple[bytes, np.ndarray]:
    """``"\n" + row0 + "\n" + row1 + ... + "\n"`` as UTF-8 (lone surrogates passed through) and
    the character positions of those "\n" separators, for the literal (not normalized) search.
    ``rows`` is a list of ``str`` or an Arrow string array (nulls count as ""), whose UTF-8 is
    used as it is, never decoded."""
    if isinstance(rows, (pa.Array, pa.ChunkedArray)):
        utf8, lengths = _join_arrow_utf8(rows)
        joined = b"\n" + utf8
    else:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        joined = ("\n" + "\n".join(rows) + "\n" if len(rows) else "\n").encode("utf-8", "surrogatepass")
    seps = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=seps[1:])
    return joined, seps


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


def normalize(text: str) -> str:
    """The normalization applied alike to keyword patterns and to scanned text (see package doc)."""
    return normalize_batch([text]).text()[1:-1]


def normalize_many(texts: Sequence[str]) -> list[str]:
    """``normalize`` of each text, in one batch: a lexicon of 10k words takes milliseconds, not
    the third of a second that one call per word costs."""
    return normalize_batch(list(texts)).rows()
