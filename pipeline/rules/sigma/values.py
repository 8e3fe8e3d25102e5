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
             "cidr", "gt", "gte", "lt", "lte", "base64", "base64offset"}
KNOWN_UNSUPPORTED = {"windash", "wide", "utf16", "utf16le", "utf16be", "expand", "fieldref",
                     "minute", "hour", "day", "week", "month", "year", "neq"}


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
        if "base64" in mods:
            parts_list = [literal(base64.b64encode(text.encode()).decode())]
        elif "base64offset" in mods:
            parts_list = [literal(v) for v in base64offset(text.encode())]
        else:
            parts_list = [parse(text)]
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
