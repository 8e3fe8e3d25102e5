"""The ahocorasick-rs keyword backend: a Rust Aho-Corasick DFA over UTF-8 bytes, whole batch at once.

About three times pyahocorasick's speed on CJK text, and it releases the GIL while scanning.
Normalization, boundaries and offsets are shared with the other byte backends (``keyword_bytes``).
Its automata cannot be pickled: each worker process builds its own.
"""

from __future__ import annotations

import ahocorasick_rs

from .keyword_bytes import ByteHits, ByteScanBackend, hit_array
from .keyword_engine import BACKENDS

# A DFA scans ~1.5x faster than the contiguous NFA but weighs ~2.5 KB per key (10k keys: 27 MB,
# 35 ms to build; 50k: 117 MB) against the NFA's ~0.3 KB, in every worker process: beyond this
# many keys the NFA is used.
DFA_MAX_KEYS = 20_000


@BACKENDS.register("ahocorasick-rs")
class RustAhoCorasickBackend(ByteScanBackend):
    name = "ahocorasick-rs"

    def _compile(self, keys: list[bytes]) -> None:
        kind = ahocorasick_rs.Implementation
        # overlapping search needs the standard match kind (every key that ends here)
        self._automaton = ahocorasick_rs.BytesAhoCorasick(
            keys, matchkind=ahocorasick_rs.MATCHKIND_STANDARD,
            implementation=kind.DFA if len(keys) <= DFA_MAX_KEYS else kind.ContiguousNFA)

    def bare_scan(self, utf8: bytes) -> object:
        """The automaton alone over a buffer, for benchmarks."""
        return self._automaton.find_matches_as_indexes(utf8, overlapping=True)

    def _scan(self, utf8: bytes | memoryview) -> ByteHits | None:
        found = self._automaton.find_matches_as_indexes(utf8, overlapping=True)
        if not found:
            return None
        arr = hit_array(found, 3)
        return arr[:, 0], arr[:, 1], arr[:, 2]
