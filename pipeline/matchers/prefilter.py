"""A prefilter that hands an automaton only the stretches of a buffer where some key may occur.

pyahocorasick spends most of a scan on bytes where nothing matches: every byte walks fail links
and scans the children of trie nodes one by one. Before it runs, a compiled pass looks at every
position of the buffer for the first bytes of some key. A key's class is the longest of
``PREFIX_LENGTHS`` that fits it; there is a hashed table per class length ``q``, whose slots say
whether the ``q`` bytes hashed there begin a key of class ``q`` (EXACT) or of a longer class
(LONGER). A position is looked up level by level, shortest prefix first, going on while a longer
key may begin there: one or two look-ups for most positions. A position that no level marks
EXACT starts no key. The stretches that may hold one (from a candidate position to the end of the
longest key that could start there) are copied, merged where they overlap, into a smaller buffer
for the automaton. Every occurrence of every key starts at a candidate position and lies inside
its stretch, so nothing is missed (hashing only adds false candidates); hits are mapped back to
the buffer's own offsets, and a hit across the join of two stretches (possible only for keys
holding the joining byte) is dropped.

On CJK metadata with thousands of keys, a two-character prefix is rare enough that the automaton
sees a fraction of the bytes (3% on benchmarks/scan_objects.py, 5-20% on the sample with the
starter rules). When the stretches would cover most of the buffer (a lexicon of single common
characters), the whole buffer is scanned instead; a long buffer is judged on its first megabyte
first, so that the pass is seldom made in vain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

# The prefix lengths a key may contribute (its longest that fits); at most 8, one 64-bit word.
PREFIX_LENGTHS = (1, 2, 3, 4, 6, 8)
_HASH = np.uint64(0x9E3779B97F4A7C15)   # Fibonacci hashing: the top bits of the product
JOIN = 0x0A   # between two stretches: "\n", the row separator, which normalized keys never hold
# Scan the whole buffer when the stretches would cover more than this share of it.
MAX_COVER = 0.7
# A buffer more than four times this long is first cut in its first SAMPLE bytes: if they already
# pass MAX_COVER, the buffer is scanned whole without cutting the rest.
SAMPLE = 1 << 20


# The two bits of a table slot at level q: the hashed q bytes begin a key of class q (whose
# longest prefix length is q), or a key of a longer class, to be looked up at the next level.
EXACT, LONGER = 1, 2


def _class_of(length: int) -> int:
    return max(n for n in PREFIX_LENGTHS if n <= length)


@dataclass(frozen=True)
class Prefilter:
    """The hashed prefix tables of a set of keys, by class, shortest prefix first."""

    shifts: np.ndarray      # uint64 per class: 8 × (8 - q), taking a class's q bytes off the top of 8
    spans: np.ndarray       # int64 per class: the longest key of the class, in bytes (0: none)
    shift: int              # 64 - log2(slots per table)
    tables: np.ndarray      # uint8 (classes, slots / 4): 2 bits a slot, EXACT | LONGER
    firsts: np.ndarray      # bool (256): the bytes some key starts with; no other position is hashed

    @classmethod
    def build(cls, keys: Sequence[bytes], bits: int | None = None) -> Prefilter:
        """The prefix tables of ``keys`` (non-empty byte strings)."""
        # about 128 slots per key: false candidates stay rare (10k keys: 2M slots, 512 KB a table)
        bits = bits or int(np.clip(np.ceil(np.log2(max(len(keys), 1) * 128)), 16, 24))
        classes = [_class_of(len(key)) for key in keys]   # once a key, not once a key and level
        lengths = sorted(set(classes))
        tables = np.zeros((len(lengths), (1 << bits) // 4), dtype=np.uint8)
        shift = 64 - bits
        spans = np.zeros(len(lengths), dtype=np.int64)
        for c, q in enumerate(lengths):
            for kind, members in ((EXACT, [key for key, k in zip(keys, classes) if k == q]),
                                  (LONGER, [key for key, k in zip(keys, classes) if k > q])):
                if not members:
                    continue
                words = np.array([int.from_bytes(key[:q], "big") for key in members], dtype=np.uint64)
                at = ((words * _HASH) >> np.uint64(shift)).astype(np.int64)
                np.bitwise_or.at(tables[c], at >> 2, (np.uint8(kind) << ((at & 3) * 2).astype(np.uint8)))
                if kind == EXACT:
                    spans[c] = max(map(len, members))
        return cls(shifts=np.array([8 * (8 - q) for q in lengths], dtype=np.uint64),
                   spans=spans, shift=shift, tables=tables,
                   firsts=np.isin(np.arange(256), np.array([key[0] for key in keys], dtype=np.int64)))

    def cut(self, data: np.ndarray, max_cover: float | None = None) -> Stretches | None:
        """The stretches of ``data`` (uint8) that may hold a key, or None when, packed, they
        would pass ``max_cover`` (default ``MAX_COVER``) × its length: scanning it whole is
        then cheaper."""
        max_cover = MAX_COVER if max_cover is None else max_cover
        if len(data) > 4 * SAMPLE and self.cut(data[:SAMPLE], max_cover) is None:
            return None   # judged on a sample: the whole pass would most likely be wasted
        limit = int(max_cover * len(data)) + 1
        out = np.empty(limit + 2, dtype=np.uint8)
        starts, ends, at = (np.empty(len(data) // 64 + 16, dtype=np.int64) for _ in range(3))
        p = o = k = until = 0
        while True:
            p, o, k, until = _cut(data, self.firsts, self.shifts, self.spans, np.uint64(self.shift), self.tables,
                                  limit, out, starts, ends, at, p, o, k, until)
            if o > limit:
                return None
            if p == len(data):
                return Stretches(out[:o], starts[:k], ends[:k], at[:k])
            starts, ends, at = (np.concatenate((a, np.empty(len(a), a.dtype))) for a in (starts, ends, at))


@dataclass(frozen=True)
class Stretches:
    """Stretches ``starts[i]:ends[i]`` of a buffer, packed one after the other with ``JOIN``
    between them; ``at[i]`` is where stretch ``i`` begins in ``packed``."""

    packed: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    at: np.ndarray

    def locate(self, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hits ``packed[start:end]`` as offsets of the original buffer, and which of them lie
        inside one stretch (the others are to be dropped)."""
        i = np.searchsorted(self.at, start, side="right") - 1
        shift = self.starts[i] - self.at[i]
        inside = end + shift <= self.ends[i]
        return start + shift, inside


@njit(cache=True, nogil=True)
def _cut(data: np.ndarray, firsts: np.ndarray, shifts: np.ndarray, spans: np.ndarray, shift: np.uint64,
         tables: np.ndarray, limit: int, out: np.ndarray, starts: np.ndarray, ends: np.ndarray, at: np.ndarray,
         p: int, o: int, k: int, until: int) -> tuple[int, int, int, int]:
    """Find the candidate positions from ``p`` on, merge their reaches into stretches
    (``starts``/``ends``, ``k`` so far) and pack the stretches' bytes into ``out`` (``o`` so far)
    with ``JOIN`` after each. ``until`` is the end of the open stretch (none is open while
    p >= until).

    Returns (p, o, k, until): p == len(data) when done; o > limit when the packed stretches
    would pass ``limit`` bytes; otherwise the stretch arrays are full: grow them and call again.
    """
    n = len(data)
    window = np.uint64(0)   # the 8 bytes from p on, big-endian, zeros past the end
    for e in range(p, p + 7):
        window <<= np.uint64(8)
        if e < n:
            window |= np.uint64(data[e])
    while p < n:
        nxt = p + 7
        window <<= np.uint64(8)
        if nxt < n:
            window |= np.uint64(data[nxt])
        reach = 0
        if firsts[data[p]]:
            # level by level, shortest prefix first, while a longer key may begin here
            for c in range(len(shifts)):
                h = np.int64(((window >> shifts[c]) * _HASH) >> shift)
                slot = (tables[c, h >> 2] >> ((h & 3) << 1)) & 3
                if slot & EXACT:
                    reach = p + spans[c]   # classes are longer level by level
                if not slot & LONGER:
                    break
        if reach > 0:
            if p >= until:   # a new stretch
                if k == len(starts):
                    return p, o, k, until
                if k > 0:
                    out[o] = JOIN
                    o += 1
                starts[k] = p
                at[k] = o
                k += 1
            until = max(until, min(reach, n))
            ends[k - 1] = until
        if p < until:
            if o >= limit:
                return p, limit + 1, k, until
            out[o] = data[p]
            o += 1
        p += 1
    if k > 0:
        out[o] = JOIN
        o += 1
    return p, o, k, until
