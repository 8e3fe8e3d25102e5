"""Splitting a log file into its data lines: physical lines found in its bytes, and the lines that
cannot be data (over-long, blank, not UTF-8) rejected with their reason; see ``logs_common`` for
the line accounting every reader keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..utf8 import invalid_utf8
from .base import Stored, byte_positions, gunzip, read_stored

MAX_LINE_BYTES = 64 * 1024
_UTF8_BLOCK = 1 << 16     # lines per block when looking for invalid UTF-8

Reject = tuple[int, str]  # (index into the file's lines, reason)
# First bytes of a line that may hold only white space: ASCII spaces, and the lead bytes of the
# Unicode ones (U+0085, U+00A0: C2; U+1680: E1; U+2000.., U+2028, U+202F, U+205F: E2; U+3000: E3).
_SPACE_LEAD = np.zeros(256, dtype=bool)
_SPACE_LEAD[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 0xC2, 0xE1, 0xE2, 0xE3]] = True


@dataclass(frozen=True)
class Lines:
    """The data lines of one file that are valid UTF-8 text, in file order.

    ``view`` holds each line with its terminator, zero-copy over ``data``; ``text`` (the lines
    without it) is a copy, made only for the parsers that ask for it.
    """

    path: str
    view: pa.LargeStringArray
    line_no: np.ndarray                      # 1-based physical line number of each element
    rejected: tuple[tuple[int, str, bytes], ...]  # (line number, reason, raw bytes) found while splitting
    rows_read: int                           # data lines: len(view) + len(rejected)
    data: Stored = b""                       # the file's (decompressed) bytes, or the file mapped
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # byte offset of each line
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))    # newline and one CR excluded

    @cached_property
    def text(self) -> pa.LargeStringArray:
        return pc.utf8_rtrim(self.view, characters="\r\n")

    def __len__(self) -> int:
        return len(self.view)

    def raw(self, i: int) -> bytes:
        return self.data[int(self.starts[i]):int(self.ends[i])].rstrip(b"\r\n")


def take_ascending(arr: pa.Array, rows: np.ndarray) -> pa.Array:
    """``arr.take(rows)`` for ascending ``rows``: the runs of consecutive rows are copied whole
    (a few bad lines leave a few long runs, which a gather row by row copies many times slower)."""
    if len(rows) == 0:
        return arr.slice(0, 0).take(pa.array([], type=pa.int64()))
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    if len(breaks) > 256:
        return arr.take(pa.array(rows))
    firsts = rows[np.concatenate([[0], breaks])]
    lasts = rows[np.concatenate([breaks - 1, [len(rows) - 1]])]
    pieces = [arr.slice(int(a), int(b - a + 1)) for a, b in zip(firsts, lasts)]
    return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)


def _line_bounds(data: Stored) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline and a preceding CR excluded) of every physical line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = byte_positions(buf, 10)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), newlines + 1])
    ends = np.concatenate([newlines, np.array([len(data)], dtype=np.int64)])
    if starts[-1] == len(data):  # the file ends with a newline: no unterminated last line
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13) if len(buf) else ends > starts
    return starts, ends - has_cr.astype(np.int64)


def read_lines(path: str, *, data: Stored | None = None, directive_prefix: bytes | None = None
               ) -> tuple[Lines, list[tuple[int, str]]]:
    """Split a file into data lines; reject over-long, blank and non-UTF-8 lines.

    ``data``, when given, is the file's bytes as stored (gzip or not), already read by the caller
    (ingest hashes them): the file is then not read again. Lines starting with
    ``directive_prefix`` are directives, not data lines; they are returned as
    ``(line number, text)`` pairs for the formats whose header they carry.
    """
    data = gunzip(path, read_stored(path) if data is None else data)
    starts, ends = _line_bounds(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    lengths = ends - starts
    directive = np.zeros(len(starts), dtype=bool)
    if directive_prefix is not None and len(starts):
        nonempty = lengths > 0
        directive[nonempty] = buf[starts[nonempty]] == directive_prefix[0]
    too_long = lengths > MAX_LINE_BYTES
    blank = lengths == 0
    rejected: list[tuple[int, str, bytes]] = []
    for i in np.flatnonzero(too_long):
        rejected.append((int(i) + 1, f"line longer than {MAX_LINE_BYTES} bytes ({int(lengths[i])})",
                         data[starts[i]:ends[i]]))
    for i in np.flatnonzero(blank):
        rejected.append((int(i) + 1, "blank line", b""))
    directives = [(int(i) + 1, data[starts[i]:ends[i]].decode("utf-8", "replace"))
                  for i in np.flatnonzero(directive)]

    # Each line viewed with its terminator: zero-copy over the file's bytes.
    offsets = np.concatenate([starts, np.array([len(data)], dtype=np.int64)])
    binary: pa.Array = pa.Array.from_buffers(pa.large_binary(), len(starts),
                                             [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    drop = too_long | blank | directive
    # The usual file is all UTF-8: one validating cast over every line, with no copy. Otherwise
    # the lines that are not are found by bisection, over the same zero-copy array.
    for bad in invalid_utf8(binary):
        if not drop[bad]:   # an over-long line or a directive keeps its own reason
            rejected.append((bad + 1, "invalid UTF-8", data[starts[bad]:ends[bad]]))
            drop[bad] = True
    # Whitespace-only lines carry no data either. Such a line starts with a byte that begins a
    # space (ASCII, or the lead byte of a Unicode one): only the few lines that do are tested.
    maybe = np.flatnonzero(~drop & _SPACE_LEAD[buf[np.minimum(starts, max(len(buf) - 1, 0))]]) if len(buf) \
        else np.zeros(0, dtype=np.int64)
    if len(maybe):
        text = binary.take(pa.array(maybe)).cast(pa.large_string())
        for j in maybe[indices(pc.utf8_is_space(text))]:
            rejected.append((int(j) + 1, "blank line", data[starts[j]:ends[j]]))
            drop[j] = True
    keep = np.flatnonzero(~drop)
    if len(keep) != len(starts):   # one copy of the lines kept, and only when some are not
        binary = take_ascending(binary, keep)
    # Every line kept is valid UTF-8 (checked above): its bytes are viewed as text, not cast again.
    view = pa.Array.from_buffers(pa.large_string(), len(binary), binary.buffers(), offset=binary.offset)
    rejected.sort()
    lines = Lines(path=path, view=view, line_no=keep + 1, rejected=tuple(rejected),
                  rows_read=len(view) + len(rejected), data=data, starts=starts[keep], ends=ends[keep])
    return lines, directives



def indices(mask: pa.Array | np.ndarray) -> np.ndarray:
    """Positions where a boolean array is true (nulls count as false)."""
    if isinstance(mask, np.ndarray):
        return np.flatnonzero(mask)
    return np.flatnonzero(np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool))
