"""Cutting the strict lines of a layout into fields by byte position, straight from the file's bytes.

A strict line (quoted fields hold no quote, fields are separated by one space) is fully described
by where its quotes and spaces are. Those positions are found with numpy a block of lines at a
time; each field then becomes one column built by a single ``take`` over the file's buffer, with
no per-line split lists and no intermediate copies of the lines. Lines that are not strict are
left to the layout's slower tiers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .logs_common import Lines

_BLOCK_LINES = 1 << 16   # lines per scan: keeps the position arrays small and reused
_SPACE, _QUOTE = 32, 34


@dataclass(frozen=True)
class Token:
    """One slot of an unquoted part: a field (index into the layout's fields, ``half`` 0/1 for the
    two halves of a bracketed time) or an empty slot that must stay empty."""

    field: int | None
    half: int = 0


@dataclass(frozen=True)
class Plan:
    """Where every field of a layout lies in a strict line, in quote-delimited parts.

    ``parts[k]`` lists the tokens of unquoted part ``k`` (even ``k``); ``quoted[k]`` the field
    between quote ``k - 1`` and quote ``k`` (odd ``k``).
    """

    quotes: int
    parts: dict[int, tuple[Token, ...]]
    quoted: dict[int, int]


def plan(kinds: list[str]) -> Plan:
    """The plan of a layout whose fields have these kinds (``quoted``, ``clftime`` or a token)."""
    template: list[str] = []
    for i, kind in enumerate(kinds):
        if kind == "quoted":
            template.append(f'"{i}"')
        elif kind == "clftime":
            template.append(f"a{i} b{i}")
        else:
            template.append(f"a{i}")
    pieces = " ".join(template).split('"')
    parts: dict[int, tuple[Token, ...]] = {}
    quoted: dict[int, int] = {}
    for k, piece in enumerate(pieces):
        if k % 2:
            quoted[k] = int(piece)
            continue
        parts[k] = tuple(Token(None) if not tok else Token(int(tok[1:]), 0 if tok[0] == "a" else 1)
                         for tok in piece.split(" "))
    return Plan(quotes=len(pieces) - 1, parts=parts, quoted=quoted)


def _positions(buf: np.ndarray, byte: int) -> np.ndarray:
    return np.flatnonzero(buf == byte)


def _block(buf: np.ndarray, base: int, starts: np.ndarray, ends: np.ndarray, p: Plan, n_fields: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Field spans of the lines ``[starts, ends)`` (absolute offsets; ``buf`` begins at ``base``).

    Returns (ok, field starts, field ends), the spans of shape (fields, lines); spans of lines that
    are not strict are empty and placed at the line's start, so they never break the ordering.
    """
    n = len(starts)
    quotes = _positions(buf, _QUOTE) + base
    spaces = _positions(buf, _SPACE) + base
    q_first = np.searchsorted(quotes, starts)
    ok = np.searchsorted(quotes, ends) - q_first == p.quotes
    fs = np.repeat(starts[None, :], n_fields, axis=0)
    fe = fs.copy()
    if not ok.any():
        return ok, fs, fe
    q_at = [quotes[np.minimum(q_first + j, len(quotes) - 1)] for j in range(p.quotes)]
    for k, tokens in p.parts.items():
        lo = starts if k == 0 else q_at[k - 1] + 1
        hi = ends if k == p.quotes else q_at[k]
        s_lo = np.searchsorted(spaces, lo)
        ok &= np.searchsorted(spaces, hi) - s_lo == len(tokens) - 1
        last = len(spaces) - 1
        for j, tok in enumerate(tokens):
            t_start = lo if j == 0 else spaces[np.clip(s_lo + j - 1, 0, last)] + 1
            t_end = hi if j == len(tokens) - 1 else spaces[np.clip(s_lo + j, 0, last)]
            if tok.field is None:
                ok &= t_start == t_end
            else:
                if tok.half == 0:
                    fs[tok.field] = t_start
                fe[tok.field] = t_end
    for k, index in p.quoted.items():
        fs[index] = q_at[k - 1] + 1
        fe[index] = q_at[k]
    bad = ~ok
    fs[:, bad] = starts[bad]
    fe[:, bad] = starts[bad]
    return ok, fs, fe


def spans(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> pa.LargeStringArray:
    """The byte ranges ``[starts[i], ends[i])`` of ``data`` as strings, in one copy.

    Requires ``starts[i] <= ends[i] <= starts[i + 1]``: the ranges, interleaved with the gaps
    between them, are the elements of one array over the buffer, and every other one is taken.
    """
    n = len(starts)
    offsets = np.empty(2 * n + 1, dtype=np.int64)
    offsets[0:2 * n:2] = starts
    offsets[1:2 * n:2] = ends
    offsets[2 * n] = ends[-1] if n else 0
    both = pa.Array.from_buffers(pa.large_string(), 2 * n, [None, pa.py_buffer(offsets), data])
    return both.take(pa.array(np.arange(0, 2 * n, 2, dtype=np.int64)))


def cut(lines: Lines, kinds: list[str], strict: dict[int, str]) -> tuple[np.ndarray, list[pa.Array]]:
    """Every field of every line as a string column, and which lines are strict.

    ``strict`` maps a field index to the anchored pattern its text must match (what the layout's
    strict regex demands of it); quoted fields need none, their quotes already bound them.
    """
    p = plan(kinds)
    buf = np.frombuffer(lines.data, dtype=np.uint8)
    n = len(lines)
    ok = np.zeros(n, dtype=bool)
    fs = np.zeros((len(kinds), n), dtype=np.int64)
    fe = np.zeros((len(kinds), n), dtype=np.int64)
    for a in range(0, n, _BLOCK_LINES):
        b = min(a + _BLOCK_LINES, n)
        lo, hi = int(lines.starts[a]), int(lines.ends[b - 1])
        ok[a:b], fs[:, a:b], fe[:, a:b] = _block(buf[lo:hi], lo, lines.starts[a:b], lines.ends[a:b], p, len(kinds))
    data = pa.py_buffer(lines.data)
    columns = [spans(data, fs[i], fe[i]) for i in range(len(kinds))]
    for i, pattern in strict.items():
        if ok.any():
            ok &= np.asarray(pc.match_substring_regex(columns[i], pattern).to_numpy(zero_copy_only=False),
                             dtype=bool)
    return ok, columns
