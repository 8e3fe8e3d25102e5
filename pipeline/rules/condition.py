"""Named selections combined by a condition expression, and case-insensitive wildcards (Sigma style).

``selections: {name: matcher, ...}`` with ``condition: "sel_a and not (sel_b or 1 of filter_*)"``
compiles into the same any / all / not tree as ``match:``. Operators: ``not`` binds tightest, then
``and``, then ``or``; parentheses group; ``1 of PATTERN`` / ``all of PATTERN`` combine every selection
whose name matches PATTERN (``*`` wildcard, or ``them`` for all selections).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from . import model as m

TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_*]*|\*|1|\S)")


class ConditionError(ValueError):
    """The condition cannot be read; the message says where and why."""


def compile_condition(text: str, selections: Mapping[str, m.Matcher]) -> m.Matcher:
    tokens = [t for t in TOKEN.findall(text) if t]
    parser = _Parser(tokens, selections)
    tree = parser.parse_or()
    if parser.pos != len(tokens):
        raise ConditionError(f"unexpected {tokens[parser.pos]!r} at token {parser.pos + 1}")
    return tree


class _Parser:
    def __init__(self, tokens: list[str], selections: Mapping[str, m.Matcher]):
        self.tokens = tokens
        self.pos = 0
        self.selections = selections

    def _peek(self) -> str | None:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        if self.pos >= len(self.tokens):
            raise ConditionError("the condition ends too early")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse_or(self) -> m.Matcher:
        parts = [self.parse_and()]
        while self._peek() == "or":
            self._take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else m.AnyOf(tuple(parts))

    def parse_and(self) -> m.Matcher:
        parts = [self.parse_not()]
        while self._peek() == "and":
            self._take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else m.AllOf(tuple(parts))

    def parse_not(self) -> m.Matcher:
        if self._peek() == "not":
            self._take()
            return m.Not(self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> m.Matcher:
        tok = self._take()
        low = tok.lower()
        if tok == "(":
            inner = self.parse_or()
            if self._peek() != ")":
                raise ConditionError("a '(' is not closed")
            self._take()
            return inner
        if low in ("1", "all") and self._peek() == "of":
            self._take()
            pattern = self._take()
            names = sorted(self.selections) if pattern.lower() == "them" else \
                sorted(n for n in self.selections if fnmatch.fnmatchcase(n, pattern))
            if not names:
                raise ConditionError(f"no selection matches {pattern!r}")
            kids = tuple(self.selections[n] for n in names)
            if len(kids) == 1:
                return kids[0]
            return m.AnyOf(kids) if low == "1" else m.AllOf(kids)
        if tok in self.selections:
            return self.selections[tok]
        if low in ("and", "or", "of", ")"):
            raise ConditionError(f"unexpected {tok!r}")
        raise ConditionError(f"unknown selection {tok!r} (selections: {', '.join(sorted(self.selections))})")


def wildcard_regex(patterns: list[str]) -> str:
    """Case-insensitive whole-value match of ``*`` / ``?`` wildcards, as one RE2 expression."""
    alternatives = []
    for p in patterns:
        parts = []
        for ch in p:
            parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        alternatives.append("".join(parts))
    return "(?is)^(?:" + "|".join(alternatives) + ")$"
