"""What a compiled plan knows of a regular expression: the literals it is made of or cannot match without.

A Sigma value becomes an RE2 expression of a known shape (``pipeline.rules.sigma.values``): an
alternation of bodies, each escaped literal text joined by ``.*`` / ``.``, anchored with ``^`` / ``$``
unless it began or ended with ``*``. Such a body that is one literal (contains, startswith, endswith,
equals) is decided from the literal's occurrences in the case-folded field and their positions,
without RE2. Any other expression yields the literals one of which every match contains (its gate):
RE2 then confirms only the rows where a gate literal occurs.

Case-folding is ASCII lower-casing plus the two characters outside ASCII that RE2's ``(?i)`` folds
onto ASCII letters (KELVIN SIGN onto k, LATIN SMALL LETTER LONG S onto s), so an ASCII literal folded
is in a folded text exactly when RE2 finds it there case-insensitively.
"""

from __future__ import annotations

import re._parser as sre   # the standard library's own regex parser: the gate of a general expression
import warnings
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

_FOLDED_OUTSIDE_ASCII = (("\u212a", "k"), ("\u017f", "s"))
_SPECIAL = set(".^$*+?()[]{}|\\")


def fold(text: str) -> str:
    """A literal as the folded text holds it."""
    out = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    for odd, plain in _FOLDED_OUTSIDE_ASCII:
        out = out.replace(odd, plain)
    return out


def fold_column(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A text column folded as ``fold`` folds literals (nulls stay null), in Arrow."""
    out = pc.ascii_lower(arr)
    for odd, plain in _FOLDED_OUTSIDE_ASCII:
        out = pc.replace_substring(out, odd, plain)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


@dataclass(frozen=True)
class Alt:
    """One literal with where it must sit: anywhere (contains), at the start, at the end, or both (equals)."""

    literal: str      # folded
    start: bool
    end: bool


@dataclass(frozen=True)
class Analysis:
    """``exact``: the expression is the alternation of these (decided without RE2); else ``gate``: the
    folded literals one of which every match contains (None: no such set, RE2 reads every row)."""

    exact: tuple[Alt, ...] | None
    gate: tuple[str, ...] | None


def analyze(pattern: str) -> Analysis:
    shaped = _sigma_shape(pattern)
    if shaped is not None:
        icase, bodies = shaped
        alts: list[Alt] = []
        gates: list[str] = []
        for start, parts, end in bodies:
            lits = [p for p in parts if not isinstance(p, _Wild)]
            if icase and len(parts) == 1 and lits and lits[0].isascii():
                alts.append(Alt(fold(lits[0]), start, end))
                gates.append(fold(lits[0]))
                continue
            pieces = [x for lit in lits for x in (_ascii_runs(lit) if icase else [lit])]
            if not pieces:
                return Analysis(None, None)
            gates.append(fold(max(pieces, key=len)))
        if len(alts) == len(bodies):
            return Analysis(tuple(alts), tuple(sorted(set(gates))))
        return Analysis(None, tuple(sorted(set(gates))))
    return Analysis(None, _general_gate(pattern))


# -- the Sigma shape -------------------------------------------------------------------------------

class _Wild(str):
    """A wildcard among a body's parts (a str subclass only to keep the parts' type simple)."""


MULTI, SINGLE = _Wild(".*"), _Wild(".")


def _sigma_shape(pattern: str) -> tuple[bool, list[tuple[bool, list[str], bool]]] | None:
    """(case-insensitive, [(anchored at start, parts, anchored at end)]) if ``pattern`` is of the shape
    ``values.alternation`` writes; parts are literal text, ``MULTI`` or ``SINGLE``. None otherwise."""
    for prefix, icase in (("(?is)", True), ("(?s)", False)):
        if pattern.startswith(prefix):
            body = pattern[len(prefix):]
            break
    else:
        return None
    if body.startswith("(?:") and body.endswith(")") and not body.endswith("\\)"):
        inner = body[3:-1]
        alts = _split_alternatives(inner)
        if alts is None or len(alts) < 2:
            return None
    else:
        alts = [body]
    out = []
    for alt in alts:
        parsed = _body(alt)
        if parsed is None:
            return None
        out.append(parsed)
    return icase, out


def _split_alternatives(text: str) -> list[str] | None:
    alts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c in "()[]":
            return None       # a group or a class: not a plain alternation
        if c == "|":
            alts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    alts.append("".join(cur))
    return alts


def _body(alt: str) -> tuple[bool, list[str], bool] | None:
    start = alt.startswith("^")
    i = 1 if start else 0
    end = False
    parts: list[str] = []
    acc: list[str] = []

    def flush() -> None:
        if acc:
            parts.append("".join(acc))
            acc.clear()

    while i < len(alt):
        c = alt[i]
        if c == "\\":
            if i + 1 >= len(alt) or alt[i + 1].isalnum() or alt[i + 1] == "_":
                return None   # \d, \b, \x41 ...: an escape that is not one literal character
            acc.append(alt[i + 1])
            i += 2
        elif c == "." and alt[i + 1:i + 2] == "*":
            flush()
            parts.append(MULTI)
            i += 2
        elif c == ".":
            if alt[i + 1:i + 2] in ("+", "?", "{"):
                return None
            flush()
            parts.append(SINGLE)
            i += 1
        elif c == "$" and i == len(alt) - 1:
            end = True
            i += 1
        elif c in _SPECIAL:
            return None
        else:
            acc.append(c)
            i += 1
    flush()
    if not parts:
        return None           # an empty body matches every row: RE2 decides it
    return start, parts, end


def _ascii_runs(text: str) -> list[str]:
    runs, cur = [], []
    for c in text:
        if c.isascii():
            cur.append(c)
        elif cur:
            runs.append("".join(cur))
            cur = []
    if cur:
        runs.append("".join(cur))
    return runs


# -- any other expression -------------------------------------------------------------------------

def _general_gate(pattern: str) -> tuple[str, ...] | None:
    """Folded literals one of which every match of ``pattern`` contains, read from the standard
    library's parse; None where Python's syntax may read the RE2 expression otherwise."""
    if "[:" in pattern or "\\p" in pattern or "\\P" in pattern or "\\Q" in pattern or "\\x{" in pattern:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = sre.parse(pattern)
    except (re_error_types()) :
        return None
    icase = bool(parsed.state.flags & sre.SRE_FLAG_IGNORECASE)
    req = _required(list(parsed), icase)
    if req is None or not all(req):
        return None
    return tuple(sorted({fold(x) for x in req}))


def re_error_types() -> tuple[type[BaseException], ...]:
    import re
    return (re.error, Warning, ValueError, RecursionError, OverflowError)


def _score(req: list[str]) -> tuple[int, int]:
    return (min(len(x) for x in req), -len(req))


def _required(items: list, icase: bool) -> list[str] | None:
    """Literals one of which a match of the sequence ``items`` contains (the best such set found)."""
    best: list[str] | None = None
    run: list[str] = []

    def consider(req: list[str] | None) -> None:
        nonlocal best
        if req and all(req) and (best is None or _score(req) > _score(best)):
            best = req

    def end_run() -> None:
        if run:
            consider(["".join(run)])
            run.clear()

    for op, av in items:
        if op is sre.LITERAL and not (icase and av > 127):
            run.append(chr(av))
            continue
        end_run()
        if op is sre.SUBPATTERN:
            _group, add, remove, sub = av
            sub_icase = (icase or bool(add & sre.SRE_FLAG_IGNORECASE)) and not bool(remove & sre.SRE_FLAG_IGNORECASE)
            consider(_required(list(sub), sub_icase))
        elif op is sre.BRANCH:
            alts = [_required(list(b), icase) for b in av[1]]
            if all(a is not None for a in alts):
                consider(sorted({x for a in alts for x in a}))   # type: ignore[union-attr]
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            lo, _hi, sub = av
            if lo >= 1:
                consider(_required(list(sub), icase))
        elif op is sre.ATOMIC_GROUP:
            consider(_required(list(av), icase))
    end_run()
    return best
