"""What every byte-level keyword backend shares: one scan of a whole batch as UTF-8 bytes, and the
mapping of byte hits back to rows and original character offsets, with the boundary rules.

A backend only says how to compile the distinct keys (UTF-8 bytes) and how to find every
occurrence, overlapping ones included, of every key in a buffer (``ByteScanBackend._compile`` /
``_scan``). UTF-8 is self-synchronizing, so a key never matches from the middle of a character.
"""

from __future__ import annotations

import abc

import itertools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..normalize.batch import join_rows_utf8, normalize_batch
from ..normalize.table import load_table

if TYPE_CHECKING:
    from .keyword_engine import TextColumn
    from .prefilter import Prefilter

# (key id, start byte, end byte) of every occurrence, int64 arrays of equal length
ByteHits = tuple[np.ndarray, np.ndarray, np.ndarray]

# Seconds this process has spent normalizing text for the automata (the scan reports its stages).
NORMALIZE_SECONDS = [0.0]


def hit_array(found: Sequence[tuple[int, ...]], width: int) -> np.ndarray:
    """A list of equal-length int tuples as an int64 array of ``width`` columns; flattening the
    tuples first is twice as fast as ``np.array`` on the list."""
    flat = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=width * len(found))
    return flat.reshape(-1, width)


class ByteToChar:
    """Maps byte offsets of a UTF-8 buffer to character offsets.

    Counts continuation bytes with popcounts over 64-byte words, so that building it costs a
    few passes over the bytes and no per-character array; each query costs a look-up.
    """

    def __init__(self, utf8: bytes) -> None:
        raw = np.frombuffer(utf8, dtype=np.uint8)
        cont = np.zeros((len(raw) + 64) // 64 * 64, dtype=bool)
        np.equal(raw & 0xC0, 0x80, out=cont[: len(raw)])
        self._words = np.packbits(cont, bitorder="little").view("<u8")
        self._before = np.concatenate(([0], np.cumsum(np.bitwise_count(self._words), dtype=np.int64)))

    def __call__(self, b: np.ndarray) -> np.ndarray:
        w = b >> 6
        mask = (np.uint64(1) << (b & 63).astype(np.uint64)) - np.uint64(1)
        return b - self._before[w] - np.bitwise_count(self._words[w] & mask).astype(np.int64)


class ByteScanBackend(abc.ABC):
    """Base of the byte-level backends; subclasses implement ``_compile`` and ``_scan``.

    Never pickled: the compiled matcher is built inside each worker process and reused there
    (pyahocorasick leaks on every pickle, ahocorasick-rs cannot be pickled at all).
    """

    name: str = ""
    # Whether scans go through the prefilter (``prefilter``). On benchmarks/scan_objects.py it
    # makes pyahocorasick's scan 2.5x faster and ahocorasick-rs's 1.15x.
    prefiltered: bool = True

    def __init__(self, patterns: Sequence[str], *, normalize: bool = True) -> None:
        self.normalize = normalize
        self.n_patterns = len(patterns)
        groups = group_patterns(patterns, normalize=normalize)
        self._check_start = groups.check_start
        self._check_end = groups.check_end
        keys = [k.encode("utf-8", "surrogatepass") for k in groups.keys]
        self._key_bytes = np.array([len(k) for k in keys], dtype=np.int64)
        sizes = np.array([len(m) for m in groups.members], dtype=np.int64)
        self._member_offsets = np.concatenate(([0], np.cumsum(sizes)))
        self._members = np.array([i for m in groups.members for i in m], dtype=np.int32)
        self._single = bool((sizes == 1).all())
        self._table = load_table()
        self._ready = bool(keys)
        # the stretches filter in front of the automaton; None scans whole buffers
        self.prefilter: Prefilter | None = None
        if keys:
            self._compile(keys)
            if self.prefiltered:
                from .prefilter import Prefilter   # numba: only where a scan will run

                self.prefilter = Prefilter.build(keys)

    @abc.abstractmethod
    def _compile(self, keys: list[bytes]) -> None:
        """Build the matcher for the distinct keys; key id = index in ``keys``."""

    @abc.abstractmethod
    def _scan(self, utf8: bytes | memoryview) -> ByteHits | None:
        """Every occurrence of every key in ``utf8`` (bytes or a view of them), overlapping ones
        included; None if none."""

    def _scan_buffer(self, data: np.ndarray) -> ByteHits | None:
        """``_scan`` over a whole buffer (uint8), through the prefilter if the backend uses one:
        the automaton then reads only the stretches where a key may start, and the hits are
        mapped back to the buffer's offsets."""
        stretches = self.prefilter.cut(data) if self.prefilter is not None else None
        if stretches is None:
            return self._scan(data.data)
        scanned = self._scan(stretches.packed.data)
        if scanned is None:
            return None
        gid, start_b, end_b = scanned
        start, inside = stretches.locate(start_b, end_b)
        if not inside.any():
            return None
        start = start[inside]
        return gid[inside], start, start + (end_b[inside] - start_b[inside])

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("keyword backends are built inside each worker process, never pickled")

    def find(self, texts: pd.Series | Sequence[str | None]) -> KeywordHits:
        rows = as_text_column(texts)
        if len(rows) == 0 or not self._ready:
            return KeywordHits.empty()
        if self.normalize:
            return self._find_normalized(rows)
        return self._find_raw(rows)

    def _expand(self, gid: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """One hit per pattern a key stands for."""
        if self._single:
            return (self._members[gid], *cols)
        counts = self._member_offsets[gid + 1] - self._member_offsets[gid]
        firsts = np.repeat(self._member_offsets[gid], counts)
        ramp = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        return (self._members[firsts + ramp], *(np.repeat(c, counts) for c in cols))

    def _find_normalized(self, rows: TextColumn) -> KeywordHits:
        began = time.perf_counter()
        batch = normalize_batch(rows, self._table)
        NORMALIZE_SECONDS[0] += time.perf_counter() - began
        scanned = self._scan_buffer(batch.utf8)
        if scanned is None:
            return KeywordHits.empty()
        gid, start_b, end_b = scanned
        # a hit never starts at byte 0 nor ends at the last byte: both are row separators
        ok = np.ones(len(gid), dtype=bool)
        cs = self._check_start[gid]
        if cs.any():
            ok[cs] &= ~batch.blocks(start_b[cs] - 1)
        ce = self._check_end[gid]
        if ce.any():
            ok[ce] &= ~batch.blocks(end_b[ce])
        gid, start_b, end_b = gid[ok], start_b[ok], end_b[ok]
        o_start = batch.orig(start_b)
        o_last = batch.orig(end_b - 1)
        row = np.searchsorted(batch.row_seps, o_start, side="right") - 1
        inside = o_last < batch.row_seps[row + 1]
        gid, row, o_start, o_last = gid[inside], row[inside], o_start[inside], o_last[inside]
        base = batch.row_seps[row] + 1
        pattern, row, start, end = self._expand(gid, row, o_start - base, o_last + 1 - base)
        return KeywordHits.build(row, pattern, start, end)

    def _find_raw(self, rows: TextColumn) -> KeywordHits:
        utf8, seps = join_rows_utf8(rows)
        scanned = self._scan_buffer(np.frombuffer(utf8, dtype=np.uint8))
        if scanned is None:
            return KeywordHits.empty()
        gid, start_b, end_b = scanned
        to_char = ByteToChar(utf8)
        cs = to_char(start_b)
        ce = to_char(end_b)
        row = np.searchsorted(seps, cs, side="right") - 1
        row = np.minimum(row, len(seps) - 2)
        inside = (cs > seps[row]) & (ce <= seps[row + 1])
        gid, row, cs, ce = gid[inside], row[inside], cs[inside], ce[inside]   # patterns may contain "\n"
        base = seps[row] + 1
        pattern, row, start, end = self._expand(gid, row, cs - base, ce - base)
        return KeywordHits.build(row, pattern, start, end)


# Imported last: keyword_engine imports the backends, which subclass ByteScanBackend, so this
# module must have defined it before keyword_engine runs, whichever module is imported first.
from .keyword_engine import KeywordHits, as_text_column, group_patterns  # noqa: E402
