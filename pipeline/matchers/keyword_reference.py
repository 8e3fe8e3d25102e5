"""The reference keyword backend: per-row normalization and ``str.find`` loops.

Slow and plain on purpose; the fast backends are tested against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..normalize import normalize_with_offsets
from ..normalize.table import CJK, WORD, load_table
from .keyword_engine import BACKENDS, KeywordHits, as_rows, group_patterns


def _occurrences(text: str, key: str) -> list[int]:
    found = []
    i = text.find(key)
    while i != -1:
        found.append(i)
        i = text.find(key, i + 1)
    return found


@BACKENDS.register("reference")
class ReferenceBackend:
    name = "reference"

    def __init__(self, patterns: Sequence[str], *, normalize: bool = True) -> None:
        self.normalize = normalize
        self._groups = group_patterns(patterns, normalize=normalize)
        self._table = load_table()

    def find(self, texts: pd.Series | Sequence[str | None]) -> KeywordHits:
        hits: list[tuple[int, int, int, int]] = []
        for r, text in enumerate(as_rows(texts)):
            if self.normalize:
                hits.extend(self._find_normalized(r, text))
            else:
                for g, key in enumerate(self._groups.keys):
                    for i in _occurrences(text, key):
                        hits.extend((r, p, i, i + len(key)) for p in self._groups.members[g])
        if not hits:
            return KeywordHits.empty()
        row, pattern, start, end = zip(*hits)
        return KeywordHits.build(row, pattern, start, end)  # type: ignore[arg-type]

    def _find_normalized(self, r: int, text: str) -> list[tuple[int, int, int, int]]:
        norm, offsets = normalize_with_offsets(text, self._table)

        def blocks(k: int) -> bool:
            if k < 0 or k >= len(norm):
                return False
            return bool(self._table.flags(norm[k]) & WORD) and not self._table.flags(text[offsets[k]]) & CJK

        out: list[tuple[int, int, int, int]] = []
        for g, key in enumerate(self._groups.keys):
            for i in _occurrences(norm, key):
                j = i + len(key)
                if self._groups.check_start[g] and blocks(i - 1):
                    continue
                if self._groups.check_end[g] and blocks(j):
                    continue
                out.extend((r, p, offsets[i], offsets[j - 1] + 1) for p in self._groups.members[g])
        return out
