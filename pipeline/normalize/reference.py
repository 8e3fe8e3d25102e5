"""Pure-Python, one-row-at-a-time normalization: slow and plain, the yardstick for ``batch``.

Both read the same folding table; this one applies the rules character by character as they
are written in the package documentation, so a disagreement points at a vectorization bug.
"""

from __future__ import annotations

from collections.abc import Iterable

from .table import CJK, DEL, LETTER, SEP, WORD, FoldTable, load_table


def normalize_with_offsets(text: str, table: FoldTable | None = None) -> tuple[str, list[int]]:
    """The normalized text and, for each of its characters, the index of the original character."""
    table = table or load_table()
    # characters that fold to nothing are invisible to every later rule
    visible = [i for i, ch in enumerate(text) if not table.flags(ch) & DEL]
    flags = [table.flags(text[i]) for i in visible]
    folded = [table.fold_char(text[i]) for i in visible]
    n = len(visible)

    def flag_at(j: int) -> int:
        return flags[j] if 0 <= j < n else 0

    dropped = [False] * n
    # separators between two CJK characters: 赌 * 场 → 赌场
    j = 0
    while j < n:
        if flags[j] & SEP:
            k = j
            while k < n and flags[k] & SEP:
                k += 1
            if flag_at(j - 1) & CJK and flag_at(k) & CJK:
                for m in range(j, k):
                    dropped[m] = True
            j = k
        else:
            j += 1

    # spelled-out Latin words: L s L s L (s the same single separator, L a lone letter)
    def lone_letter(j: int) -> bool:
        return bool(flag_at(j) & LETTER) and not flag_at(j - 1) & WORD and not flag_at(j + 1) & WORD

    j = 0
    while j < n:
        if lone_letter(j):
            seps: list[int] = []
            while (j + 2 < n and flags[j + 1] & SEP and lone_letter(j + 2)
                   and (not seps or folded[j + 1] == folded[seps[0]])):
                seps.append(j + 1)
                j += 2
            if len(seps) >= 2:
                for m in seps:
                    dropped[m] = True
            if not seps:
                j += 1
        else:
            j += 1

    out: list[str] = []
    offsets: list[int] = []
    for j in range(n):
        if not dropped[j]:
            out.append(folded[j])
            offsets.extend([visible[j]] * len(folded[j]))
    return "".join(out), offsets


def normalize_reference(text: str) -> str:
    return normalize_with_offsets(text)[0]


def blank_once_normalized(words: Iterable[str], table: FoldTable | None = None) -> list[bool]:
    """For each word, whether its normalization is empty or only whitespace, without normalizing it.

    That is so exactly when each of its characters folds to nothing or to whitespace: the context
    rules delete only separators lying between two characters that stay, and a character that
    is not a separator folds to something that is not whitespace. Checking it per distinct
    character spares loading the compiled kernel (numba's start-up costs a second) just to
    validate a lexicon.
    """
    table = table or load_table()
    blank: dict[str, bool] = {}

    def char_blank(ch: str) -> bool:
        if ch not in blank:
            blank[ch] = not table.fold_char(ch).strip()
        return blank[ch]

    return [all(map(char_blank, word)) for word in words]
