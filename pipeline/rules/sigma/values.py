"""Sigma values and modifiers → RE2 expressions, as the Sigma specification and pySigma define them.

A Sigma string is literal text with two wildcards, ``*`` (any run of characters) and ``?`` (any one
character); a backslash escapes ``*``, ``?`` and itself, and before any other character it is a
plain backslash (``C:\\Windows`` needs no doubling). Matching is case-insensitive unless ``cased``;
``re`` values are RE2 expressions searched case-sensitively (flags ``i``, ``m``, ``s`` as
sub-modifiers). Values are compared with the field as logged: nothing is URL-decoded.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

MULTI = object()    # the wildcard *
SINGLE = object()   # the wildcard ?
Part = object       # a str, MULTI or SINGLE

# Modifiers the engine implements; the rest of the specification's are reported as unsupported.
SUPPORTED = {"contains", "startswith", "endswith", "all", "re", "i", "m", "s", "cased", "exists",
             "cidr", "gt", "gte", "lt", "lte", "base64", "base64offset", "windash"}
KNOWN_UNSUPPORTED = {"wide", "utf16", "utf16le", "utf16be", "expand", "fieldref",
                     "minute", "hour", "day", "week", "month", "year", "neq"}
# windash: a dash or slash that starts a word (pySigma's \B[-/]\b, within each literal piece) may be
# written as any of these; at most three in one value, as pySigma allows.
DASHES = ("-", "/", "\u2013", "\u2014", "\u2015")
WINDASH_RE = re.compile(r"\B[-/]\b")
WINDASH_MAX = 3


class Unsupported(ValueError):
    """A feature of the specification this engine does not run; the message names it."""


def parse(text: str) -> list[object]:
    """A Sigma string as literal pieces and wildcards (pySigma's SigmaString parsing)."""
    out: list[object] = []
    acc: list[str] = []
    escaped = False
    for c in text:
        if escaped:
            if c not in "*?\\":
                acc.append("\\")   # a backslash before an ordinary character is a plain backslash
            acc.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in "*?":
            if acc:
                out.append("".join(acc))
                acc = []
            out.append(MULTI if c == "*" else SINGLE)
        else:
            acc.append(c)
    if escaped:
        acc.append("\\")
    if acc:
        out.append("".join(acc))
    return out


def literal(text: str) -> list[object]:
    """Text to be matched as it is (base64 output, numbers): no wildcards."""
    return [text] if text else []


@dataclass(frozen=True)
class Pattern:
    """One value to match: parts anchored at the start and end unless they begin / end with ``*``."""

    parts: tuple[object, ...]
    cased: bool = False

    def regex_body(self) -> str:
        parts = list(self.parts)
        head = bool(parts) and parts[0] is MULTI
        tail = bool(parts) and parts[-1] is MULTI
        while parts and parts[0] is MULTI:
            parts.pop(0)
        while parts and parts[-1] is MULTI:
            parts.pop()
        body = "".join(".*" if p is MULTI else "." if p is SINGLE else re.escape(str(p)) for p in parts)
        return ("" if head else "^") + body + ("" if tail else "$")


def with_modifiers(value: object, mods: list[str]) -> list[Pattern]:
    """The patterns one scalar value stands for under the string modifiers (base64offset gives 3)."""
    cased = "cased" in mods
    if isinstance(value, bool):
        raw = "true" if value else "false"
        parts_list = [literal(raw)]
    elif isinstance(value, (int, float)):
        parts_list = [literal(str(value))]   # a number: its decimal text, no wildcards
    else:
        text = str(value)
        variants = windash(parse(text)) if "windash" in mods else [parse(text)]
        if "base64" in mods or "base64offset" in mods:
            if "windash" not in mods:
                plain = [text]   # base64 encodes the value as written, wildcards and escapes included
            elif all(isinstance(p, str) for parts in variants for p in parts):
                plain = ["".join(str(p) for p in parts) for parts in variants]
            else:
                raise Unsupported("windash with base64 over a value with wildcards")
            if "base64" in mods:
                parts_list = [literal(base64.b64encode(t.encode()).decode()) for t in plain]
            else:
                parts_list = [literal(v) for t in plain for v in base64offset(t.encode())]
        else:
            parts_list = variants
    out = []
    for parts in parts_list:
        parts = list(parts)
        if "contains" in mods or "endswith" in mods:
            if not parts or parts[0] is not MULTI:
                parts.insert(0, MULTI)
        if "contains" in mods or "startswith" in mods:
            if not parts or parts[-1] is not MULTI:
                parts.append(MULTI)
        out.append(Pattern(tuple(parts), cased))
    return out


def windash(parts: list[object]) -> list[list[object]]:
    """Every spelling of ``parts`` with each word-starting dash or slash as any of DASHES."""
    pieces: list[object] = []
    slots = 0
    for p in parts:
        if not isinstance(p, str):
            pieces.append(p)
            continue
        at = 0
        for mt in WINDASH_RE.finditer(p):
            pieces += [p[at:mt.start()], None] if mt.start() > at else [None]
            slots += 1
            at = mt.end()
        if at < len(p):
            pieces.append(p[at:])
    if slots > WINDASH_MAX:
        raise Unsupported(f"windash expands at most {WINDASH_MAX} dashes in one value (this one has {slots}); "
                          "split the value")
    out: list[list[object]] = [[]]
    for piece in pieces:
        choices = DASHES if piece is None else (piece,)
        out = [acc + [c] for acc in out for c in choices]
    return [_merge_text(v) for v in out]


def _merge_text(parts: list[object]) -> list[object]:
    """Adjacent literal pieces as one (so anchoring and escaping see one literal)."""
    out: list[object] = []
    for p in parts:
        if isinstance(p, str) and out and isinstance(out[-1], str):
            out[-1] = str(out[-1]) + p
        else:
            out.append(p)
    return out


def base64offset(value: bytes) -> list[str]:
    """The three base64 forms of ``value`` at offsets 0, 1 and 2 of a larger encoded text (pySigma's)."""
    starts, ends = (0, 2, 3), (None, -3, -2)
    return [base64.b64encode(i * b" " + value).decode()[starts[i]:ends[(len(value) + i) % 3]] for i in range(3)]


def alternation(patterns: list[Pattern]) -> str:
    """One RE2 expression matching any of ``patterns`` (all of one casing)."""
    flags = "(?s)" if patterns and patterns[0].cased else "(?is)"
    bodies = sorted({p.regex_body() for p in patterns})
    return flags + (bodies[0] if len(bodies) == 1 else "(?:" + "|".join(bodies) + ")")


def regex_value(value: object, mods: list[str]) -> str:
    """A ``re`` value with its flag sub-modifiers, as RE2 syntax."""
    if not isinstance(value, str):
        raise Unsupported("re takes a string")
    flags = "".join(f for f in ("i", "m", "s") if f in mods)
    return f"(?{flags}){value}" if flags else value
