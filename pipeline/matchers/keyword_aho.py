"""The fast keyword backend: one pyahocorasick automaton over UTF-8 bytes, whole batch at once.

pyahocorasick's wheels are its unicode build, whose trie nodes find a child by a linear scan:
CJK patterns give the root thousands of children. Spelling text and patterns as UTF-8 bytes
decoded as latin-1 keeps every node at most 256 children and gives identical hits (UTF-8 is
self-synchronizing, so a pattern never matches from the middle of a character).
The automaton is never pickled: build a backend inside the worker process and reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick
import numpy as np
import pandas as pd

from ..normalize.batch import join_rows, normalize_batch
from ..normalize.table import CJK, WORD, load_table
from .keyword_engine import BACKENDS, KeywordHits, TextColumn, as_text_column, group_patterns


def _latin1(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


class _ByteToChar:
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


@BACKENDS.register("pyahocorasick")
class AhoCorasickBackend:
    name = "pyahocorasick"

    def __init__(self, patterns: Sequence[str], *, normalize: bool = True) -> None:
        self.normalize = normalize
        self.n_patterns = len(patterns)
        groups = group_patterns(patterns, normalize=normalize)
        self._check_start = groups.check_start
        self._check_end = groups.check_end
        self._key_bytes = np.array([len(k.encode("utf-8", "surrogatepass")) for k in groups.keys], dtype=np.int64)
        sizes = np.array([len(m) for m in groups.members], dtype=np.int64)
        self._member_offsets = np.concatenate(([0], np.cumsum(sizes)))
        self._members = np.array([i for m in groups.members for i in m], dtype=np.int32)
        self._automaton = ahocorasick.Automaton()
        for gid, key in enumerate(groups.keys):
            self._automaton.add_word(_latin1(key), gid)
        if groups.keys:
            self._automaton.make_automaton()
        self._table = load_table()

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("keyword backends are built inside each worker process, never pickled")

    def find(self, texts: pd.Series | Sequence[str | None]) -> KeywordHits:
        rows = as_text_column(texts)
        if len(rows) == 0 or self._automaton.kind != ahocorasick.AHOCORASICK:
            return KeywordHits.empty()
        if self.normalize:
            return self._find_normalized(rows)
        return self._find_raw(rows)

    def _scan(self, hay: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(key id, start byte, end byte) of every occurrence of every key."""
        found = list(self._automaton.iter(hay))
        if not found:
            return None
        arr = np.array(found, dtype=np.int64)
        gid = arr[:, 1]
        end_b = arr[:, 0] + 1
        return gid, end_b - self._key_bytes[gid], end_b

    def _expand(self, gid: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """One hit per pattern a key stands for."""
        counts = self._member_offsets[gid + 1] - self._member_offsets[gid]
        firsts = np.repeat(self._member_offsets[gid], counts)
        ramp = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        return (self._members[firsts + ramp], *(np.repeat(c, counts) for c in cols))

    def _find_normalized(self, rows: TextColumn) -> KeywordHits:
        batch = normalize_batch(rows, self._table)
        utf8 = batch.text().encode("utf-8", "surrogatepass")
        scanned = self._scan(utf8.decode("latin-1"))
        if scanned is None:
            return KeywordHits.empty()
        gid, start_b, end_b = scanned
        to_char = _ByteToChar(utf8)
        ks = to_char(start_b)   # first normalized character of the hit
        ke = to_char(end_b)     # one past its last
        codes, ocls, cls = batch.codes, batch.orig_cls, self._table.cls

        def blocks(k: np.ndarray) -> np.ndarray:
            # a letter / digit that does not come from a CJK character of the original
            return ((cls[codes[k]] & WORD) != 0) & ((ocls[batch.to_orig(k)] & CJK) == 0)

        ok = np.ones(len(gid), dtype=bool)
        cs = self._check_start[gid]
        ok[cs] &= ~blocks(ks[cs] - 1)
        ce = self._check_end[gid]
        ok[ce] &= ~blocks(ke[ce])
        gid, ks, ke = gid[ok], ks[ok], ke[ok]
        o_start = batch.to_orig(ks)
        o_last = batch.to_orig(ke - 1)
        row = np.searchsorted(batch.row_seps, o_start, side="right") - 1
        inside = o_last < batch.row_seps[row + 1]
        gid, row, o_start, o_last = gid[inside], row[inside], o_start[inside], o_last[inside]
        base = batch.row_seps[row] + 1
        pattern, row, start, end = self._expand(gid, row, o_start - base, o_last + 1 - base)
        return KeywordHits.build(row, pattern, start, end)

    def _find_raw(self, rows: TextColumn) -> KeywordHits:
        joined, seps = join_rows(rows)
        utf8 = joined.encode("utf-8", "surrogatepass")
        scanned = self._scan(utf8.decode("latin-1"))
        if scanned is None:
            return KeywordHits.empty()
        gid, start_b, end_b = scanned
        to_char = _ByteToChar(utf8)
        cs = to_char(start_b)
        ce = to_char(end_b)
        row = np.searchsorted(seps, cs, side="right") - 1
        row = np.minimum(row, len(seps) - 2)
        inside = (cs > seps[row]) & (ce <= seps[row + 1])
        gid, row, cs, ce = gid[inside], row[inside], cs[inside], ce[inside]   # patterns may contain "\n"
        base = seps[row] + 1
        pattern, row, start, end = self._expand(gid, row, cs - base, ce - base)
        return KeywordHits.build(row, pattern, start, end)
