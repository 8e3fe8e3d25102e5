"""The pyahocorasick keyword backend: one automaton over UTF-8 bytes, whole batch at once.

pyahocorasick's wheels are its unicode build, whose trie nodes find a child by a linear scan:
CJK patterns give the root thousands of children. Spelling text and patterns as UTF-8 bytes
decoded as latin-1 keeps every node at most 256 children and gives identical hits.
Normalization, boundaries and offsets are shared with the other byte backends (``keyword_bytes``).
"""

from __future__ import annotations

import codecs

import ahocorasick

from .keyword_bytes import ByteHits, ByteScanBackend, hit_array
from .keyword_engine import BACKENDS

__all__ = ["AhoCorasickBackend"]


def _latin1(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


@BACKENDS.register("pyahocorasick")
class AhoCorasickBackend(ByteScanBackend):
    name = "pyahocorasick"

    def _compile(self, keys: list[bytes]) -> None:
        self._automaton = ahocorasick.Automaton()
        for gid, key in enumerate(keys):
            self._automaton.add_word(key.decode("latin-1"), gid)
        self._automaton.make_automaton()

    def bare_scan(self, utf8: bytes) -> object:
        """The automaton alone over a buffer, for benchmarks."""
        return list(self._automaton.iter(utf8.decode("latin-1")))

    def _scan(self, utf8: bytes | memoryview) -> ByteHits | None:
        found = list(self._automaton.iter(codecs.latin_1_decode(utf8)[0]))
        if not found:
            return None
        arr = hit_array(found, 2)
        gid = arr[:, 1]
        end_b = arr[:, 0] + 1
        return gid, end_b - self._key_bytes[gid], end_b
