"""Cutting the strict lines of a layout into fields by byte position, straight from the file's bytes.

A strict line (quoted fields hold no quote, fields are separated by one space) is fully described
by where its quotes and spaces are. Those positions are found with numpy a block of lines at a
time; each field then becomes one column built by a single ``take`` over the file's buffer, with
no per-line split lists and no intermediate copies of the lines. Lines that are not strict are
left to the layout's slower tiers.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .logs_common import Lines, _every_other, _from_interleaved, spans  # noqa: F401  (spans: re-exported)

_BLOCK_LINES = 1 << 13   # lines per scan (~1.5 MB of text): its temporaries stay small, cached and reused
_SPACE, _QUOTE = 32, 34
_OTHER_SPACE = (b"\t", b"\f", b"\r")  # RE2's \s is [\t\n\f\r ]


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
    tail: bool = False   # more fields may follow the layout's own, after a space (read past)


def plan(kinds: list[str], *, tail: bool = False) -> Plan:
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
    return Plan(quotes=len(pieces) - 1, parts=parts, quoted=quoted, tail=tail)


def _block(buf: np.ndarray, base: int, starts: np.ndarray, ends: np.ndarray, p: Plan, n_fields: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Field spans of the lines ``[starts, ends)`` (absolute offsets; ``buf`` begins at ``base``).

    Returns (ok, field starts, field ends), the spans of shape (fields, lines); spans of lines that
    are not strict are empty and placed at the line's start, so they never break the ordering.
    """
    lo_line = starts - base
    hi_line = ends - base
    # Quotes and spaces in one sorted list: between two quotes of a strict line lie only spaces,
    # so the k-th space of a part is found by index arithmetic, not by a search per token.
    delim = np.flatnonzero((buf == _SPACE) | (buf == _QUOTE))
    q_idx = np.flatnonzero(buf[delim] == _QUOTE)      # where each quote sits in ``delim``
    quotes = delim[q_idx]
    # A sentinel past the block keeps every index below valid; searches never count it.
    delim = np.append(delim, len(buf))
    last_d = len(delim) - 1
    q_first = np.searchsorted(quotes, lo_line)
    in_line = np.searchsorted(quotes, hi_line) - q_first
    # With a tail, the quotes past the layout's own belong to the fields read past.
    ok = in_line >= p.quotes if p.tail else in_line == p.quotes
    fs = np.repeat(lo_line[None, :], n_fields, axis=0)
    fe = fs.copy()
    if not ok.any():
        return ok, fs + base, fe + base
    q_at = [np.minimum(q_first + j, len(quotes) - 1) for j in range(p.quotes)]  # index into ``quotes``
    for k, tokens in p.parts.items():
        if k == 0:
            lo, first = lo_line, np.searchsorted(delim, lo_line)
        else:
            lo, first = quotes[q_at[k - 1]] + 1, q_idx[q_at[k - 1]] + 1
        if k == p.quotes:
            hi, stop = hi_line, np.searchsorted(delim, hi_line)
        else:
            hi, stop = quotes[q_at[k]], q_idx[q_at[k]]
        if k == p.quotes and p.tail:
            # The layout's last tokens are followed by the line's end or by a space and the tail:
            # every delimiter up to the one after them must be a space.
            have, last = stop - first, len(tokens) - 1
            ok &= have >= last
            for j in range(last):   # between the layout's tokens: spaces, not quotes
                ok &= buf[np.minimum(delim[np.minimum(first + j, last_d)], len(buf) - 1)] == _SPACE
            after = delim[np.minimum(first + last, last_d)]   # the delimiter opening the tail, if any
            ok &= (have == last) | (buf[np.minimum(after, len(buf) - 1)] == _SPACE)
            hi = np.where(have > last, after, hi_line)
        else:
            ok &= stop - first == len(tokens) - 1
        for j, tok in enumerate(tokens):
            t_start = lo if j == 0 else delim[np.minimum(first + (j - 1), last_d)] + 1
            t_end = hi if j == len(tokens) - 1 else delim[np.minimum(first + j, last_d)]
            if tok.field is None:
                ok &= t_start == t_end
            else:
                if tok.half == 0:
                    fs[tok.field] = t_start
                fe[tok.field] = t_end
    for k, index in p.quoted.items():
        fs[index] = quotes[q_at[k - 1]] + 1
        fe[index] = quotes[q_at[k]]
    bad = ~ok
    fs[:, bad] = lo_line[bad]
    fe[:, bad] = lo_line[bad]
    fs += base
    fe += base
    return ok, fs, fe


def cut(lines: Lines, kinds: list[str], strict: dict[int, str], *, keep: Collection[int] | None = None,
        tail: bool = False) -> tuple[np.ndarray, list[pa.Array | None]]:
    """Every field of every line as a string column, and which lines are strict.

    ``strict`` maps a field index to the anchored pattern its text must match (what the layout's
    strict regex demands of it); quoted fields need none, their quotes already bound them.
    ``keep`` names the fields whose columns the caller wants (all when None); the others are None.
    """
    p = plan(kinds, tail=tail)
    buf = np.frombuffer(lines.data, dtype=np.uint8)
    n = len(lines)
    ok = np.zeros(n, dtype=bool)
    # Spans are kept relative to their line, in the narrowest type that holds a line's length:
    # fresh memory costs the kernel a page zeroed per page touched, and this is the largest
    # temporary of a parse (the absolute offsets are rebuilt per field in one reused buffer).
    longest = int((lines.ends - lines.starts).max()) if n else 0
    rel = np.uint16 if longest < (1 << 16) else np.int32
    rel_start = np.empty((len(kinds), n), dtype=rel)
    rel_end = np.empty((len(kinds), n), dtype=rel)
    for a in range(0, n, _BLOCK_LINES):
        b = min(a + _BLOCK_LINES, n)
        lo, hi = int(lines.starts[a]), int(lines.ends[b - 1])
        line_start = lines.starts[a:b]
        ok[a:b], fs, fe = _block(buf[lo:hi], lo, line_start, lines.ends[a:b], p, len(kinds))
        np.subtract(fs, line_start, out=rel_start[:, a:b], casting="unsafe")
        np.subtract(fe, line_start, out=rel_end[:, a:b], casting="unsafe")
    # A bare token must hold no quote and no whitespace. Cutting already keeps quotes, spaces and
    # newlines out of it; in a file without any other byte RE2's \s matches, "not empty" is the
    # whole test, read off the offsets rather than by a regex over the column.
    bare_is_plain = all(lines.data.find(byte) < 0 for byte in _OTHER_SPACE)
    data = pa.py_buffer(lines.data)
    every_other = _every_other(n)
    offsets = np.empty(2 * n + 1, dtype=np.int64)   # reused: each take copies out of it
    columns: list[pa.Array | None] = []
    for i in range(len(kinds)):
        check = strict.get(i)
        if check is not None and bare_is_plain and kinds[i] == "tok":
            ok &= rel_end[i] > rel_start[i]
            check = None
        column = None
        if check is not None or keep is None or i in keep:
            np.add(lines.starts, rel_start[i], out=offsets[0:2 * n:2])
            np.add(lines.starts, rel_end[i], out=offsets[1:2 * n:2])
            offsets[2 * n] = offsets[2 * n - 1] if n else 0
            column = _from_interleaved(data, offsets, every_other)
        if check is not None and column is not None and ok.any():
            ok &= np.asarray(pc.match_substring_regex(column, check).to_numpy(zero_copy_only=False), dtype=bool)
        columns.append(column if keep is None or i in keep else None)
    return ok, columns
