"""A prefilter that hands an automaton only the stretches of a buffer where some key may occur.

pyahocorasick spends most of a scan on bytes where nothing matches: every byte walks fail links
and scans the children of trie nodes one by one. Before it runs, a compiled pass looks at every
position of the buffer for the first bytes of some key. A key's class is the longest of
``PREFIX_LENGTHS`` that fits it; there is a hashed table per class length ``q``, whose slots say
whether the ``q`` bytes hashed there begin a key of class ``q`` (EXACT) or of a longer class
(LONGER). Keys are looked up by two walks, one over the classes shorter than ``WALK_SPLIT``
bytes and one over the others: each goes level by level, shortest prefix first, on while a
longer key of its classes may begin there (one or two look-ups for most positions). A position
that no level marks EXACT starts no key. The stretches that may hold one (from a candidate
position to the end of the longest key that could start there) are copied, merged where they
overlap, into a smaller buffer for the automaton. Every occurrence of every key starts at a
candidate position and lies inside its stretch, so nothing is missed (hashing only adds false
candidates); hits are mapped back to the buffer's own offsets, and a hit across the join of two
stretches (possible only for keys holding the joining byte) is dropped.

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


# Keys of a class this long or longer are looked up by a walk of their own, starting at this
# level; shorter keys by another. On CJK text nearly every character begins some long key's first
# three or four bytes (one character), so one walk from the shortest level paid those levels'
# look-ups at almost every character for nothing: the pass took 14 ns a byte on the 10,000 words
# of benchmarks/scan_end_to_end.py, and 10 with the two walks and FIRST_SLOTS.
WALK_SPLIT = 6
# Slots a table has per prefix it holds (rounded up to a power of two): false candidates stay
# rare. The first level of a walk is looked up at every position a key's first byte begins, the
# others only where it said LONGER: its table is kept small enough to stay in the cache, and its
# false LONGER cost a look-up further, not a stretch.
SLOTS = 128
FIRST_SLOTS = 16

# The two bits of a table slot at level q: the hashed q bytes begin a key of class q (whose
# longest prefix length is q), or a key of a longer class, to be looked up at the next level.
EXACT, LONGER = 1, 2
_ONE, _TWO, _THREE = np.uint64(1), np.uint64(2), np.uint64(3)


def _class_of(length: int) -> int:
    return max(n for n in PREFIX_LENGTHS if n <= length)


@dataclass(frozen=True)
class Prefilter:
    """The hashed prefix tables of a set of keys, by class, shortest prefix first."""

    shifts: np.ndarray       # uint64 per level: 8 × (8 - q), taking a class's q bytes off the top of 8
    spans: np.ndarray        # int64 per level: the longest key of the class, in bytes (0: none)
    hash_shifts: np.ndarray  # uint64 per level: 64 - log2(slots of its table)
    offsets: np.ndarray      # int64 per level: where its table begins in ``tables``
    tables: np.ndarray       # uint8, the levels' tables one after the other: 2 bits a slot, EXACT | LONGER
    walks: np.ndarray        # int64: walk w looks up levels walks[w] to walks[w + 1] - 1
    firsts: np.ndarray      # bool (256): the bytes some key starts with; no other position is hashed

    @classmethod
    def build(cls, keys: Sequence[bytes], bits: int | None = None) -> Prefilter:
        """The prefix tables of ``keys`` (non-empty byte strings); ``bits``: log2 of every table's
        slots (default: about 128 slots per prefix the table holds)."""
        classes = [_class_of(len(key)) for key in keys]   # once a key, not once a key and level
        lengths = sorted(set(classes))
        walks = [[q for q in lengths if q < WALK_SPLIT], [q for q in lengths if q >= WALK_SPLIT]]
        walks = [w for w in walks if w]
        levels = [q for w in walks for q in w]
        tables, offsets, hash_shifts = [], [0], []
        spans = np.zeros(len(levels), dtype=np.int64)
        for c, q in enumerate(levels):
            walk = next(w for w in walks if q in w)
            exact = [key for key, k in zip(keys, classes) if k == q]
            longer = [key for key, k in zip(keys, classes) if k > q and k in walk]
            prefixes = {key[:q] for key in exact + longer}
            # false candidates stay rare (10k keys: 2M slots, 512 KB a table); a level holding few
            # prefixes gets a table small enough to stay in the cache
            per = FIRST_SLOTS if q == walk[0] else SLOTS
            size = bits or int(np.clip(np.ceil(np.log2(max(len(prefixes), 1) * per)), 10, 24))
            table = np.zeros((1 << size) // 4 or 1, dtype=np.uint8)
            for kind, members in ((EXACT, exact), (LONGER, longer)):
                if not members:
                    continue
                words = np.array([int.from_bytes(key[:q], "big") for key in members], dtype=np.uint64)
                at = ((words * _HASH) >> np.uint64(64 - size)).astype(np.int64)
                np.bitwise_or.at(table, at >> 2, (np.uint8(kind) << ((at & 3) * 2).astype(np.uint8)))
            if exact:
                spans[c] = max(map(len, exact))
            tables.append(table)
            offsets.append(offsets[-1] + len(table))
            hash_shifts.append(64 - size)
        bounds = np.cumsum([0] + [len(w) for w in walks])
        return cls(shifts=np.array([8 * (8 - q) for q in levels], dtype=np.uint64),
                   spans=spans, hash_shifts=np.array(hash_shifts, dtype=np.uint64),
                   offsets=np.array(offsets[:-1], dtype=np.int64),
                   tables=np.concatenate(tables) if tables else np.zeros(1, dtype=np.uint8),
                   walks=np.array(bounds, dtype=np.int64),
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
            p, o, k, until = _cut(data, self.firsts, self.shifts, self.spans, self.hash_shifts, self.offsets,
                                  self.tables, self.walks, limit, out, starts, ends, at, p, o, k, until)
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
def _cut(data: np.ndarray, firsts: np.ndarray, shifts: np.ndarray, spans: np.ndarray, hash_shifts: np.ndarray,
         offsets: np.ndarray, tables: np.ndarray, walks: np.ndarray, limit: int, out: np.ndarray,
         starts: np.ndarray, ends: np.ndarray, at: np.ndarray, p: int, o: int, k: int,
         until: int) -> tuple[int, int, int, int]:
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
            # each walk level by level, shortest prefix first, while a longer key may begin here
            for w in range(len(walks) - 1):
                for c in range(walks[w], walks[w + 1]):
                    h = ((window >> shifts[c]) * _HASH) >> hash_shifts[c]   # unsigned: no negative-index check
                    slot = (tables[np.uint64(offsets[c]) + (h >> _TWO)] >> ((h & _THREE) << _ONE)) & _THREE
                    if slot & EXACT:
                        reach = max(reach, p + spans[c])
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
