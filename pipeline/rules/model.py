"""The rule model: frozen dataclasses for rules, and every kind of matcher re-exported from its module.

Each matcher kind lives in its own module under ``pipeline.matchers`` (its dataclass, keys, parse);
this module re-exports them so that ``m.Keywords`` and the rest stay where callers look for them.
Loading (with locations and every problem reported at once) is in ``loader``; evaluation over a
partition is in ``pipeline.matchers.evaluate``. Objects here are small and picklable: the runner
sends a RuleSet to workers, which compile it once and cache it by ``RuleSet.digest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from ..matchers.aggregate_rule import Aggregate
from ..matchers.fields import FIELD_OPS, FieldCondition
from ..matchers.hash_list import HashList
from ..matchers.keywords import AllowWords, Keywords
from ..matchers.logic import AllOf, AnyOf, Not
from ..matchers.regex import Regex

__all__ = ["SEVERITIES", "SOURCES", "FIELD_OPS", "Keywords", "AllowWords", "Regex", "HashList", "FieldCondition",
           "AnyOf", "AllOf", "Not", "Matcher", "Aggregate", "RuleTest", "Rule", "RuleSet", "walk"]

SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("objects", "logs", "icp", "streams")

# The built-in kinds; a kind registered from another module builds its own class, which the engine
# evaluates through the kind's evaluate hook.
Matcher = Union[Keywords, Regex, HashList, FieldCondition, AnyOf, AllOf, Not]


@dataclass(frozen=True)
class RuleTest:
    """An inline test: one record (record rules) or several (aggregate rules) and the expected verdict."""

    records: tuple[dict[str, Any], ...]
    expect: bool
    line: int


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    clause: str
    category: str
    severity: str
    sources: tuple[str, ...]
    match: Matcher | None
    path: str
    line: int
    content_hash: str                      # SHA-256 of the rule's own YAML text, canonicalised
    law: str | None = None
    description: str | None = None
    subject: str | None = None             # log rules: the field that names the case subject
    allow_words: tuple[str, ...] = ()
    unless: tuple[Matcher, ...] = ()       # record-level exceptions (field conditions, etc.)
    aggregate: Aggregate | None = None
    check: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tests: tuple[RuleTest, ...] = ()
    enabled: bool = True
    # What a converted rule keeps of its origin (Sigma: id, level, status, tags, references, author,
    # falsepositives, the file and field mapping), shown by `rules show` and in evidence.
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    digest: str                            # hash over every rule's content hash: the cache key on workers
    skipped: tuple[Any, ...] = ()          # Sigma rules that cannot run (sigma.Skipped: id, place, reason)
    notes: tuple[str, ...] = ()            # things lint says once, not errors (e.g. unmapped Sigma fields)

    def for_source(self, source: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if source in r.sources and r.enabled)

    def by_id(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def walk(matcher: Matcher) -> list[Matcher]:
    """Every matcher in a tree, parents before children."""
    out: list[Matcher] = [matcher]
    if isinstance(matcher, (AnyOf, AllOf)):
        for c in matcher.children:
            out.extend(walk(c))
    elif isinstance(matcher, Not):
        out.extend(walk(matcher.child))
    return out
