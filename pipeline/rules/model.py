"""The rule model: frozen dataclasses for rules and every kind of matcher.

Loading (with locations and every problem reported at once) is in ``loader``; evaluation
over a partition is in ``pipeline.matchers.evaluate``. Objects here are small and picklable:
the runner sends a RuleSet to workers, which compile it once and cache it by ``RuleSet.digest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("objects", "logs", "icp", "streams")
FIELD_OPS = ("equals", "in", "not_in", "contains", "startswith", "endswith",
             "gt", "gte", "lt", "lte", "cidr", "exists")


@dataclass(frozen=True)
class Keywords:
    """Keyword search (``keywords`` or ``keywords_file``) over text fields."""

    words: tuple[str, ...]
    fields: tuple[str, ...]
    normalize: bool = True
    origin: str = ""          # "inline" or the lexicon file's path, for evidence and lint


@dataclass(frozen=True)
class Regex:
    """An RE2 regular expression searched in text fields."""

    pattern: str
    fields: tuple[str, ...]
    decoded: bool = True      # False: search the fields as logged, never URL-decoded (Sigma rules)
    label: str = ""           # what evidence names instead of the pattern (a Sigma rule's own value)


@dataclass(frozen=True)
class HashList:
    """Exact match of a hash field (etag / md5) against a block list file."""

    path: str
    field: str
    hashes: frozenset[str]


@dataclass(frozen=True)
class FieldCondition:
    """``field`` compared with ``op`` to ``value``; ``field`` may be dotted into a map (labels.pulp)."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class AllowWords:
    """Only inside ``unless``: keyword hits lying wholly inside one of these phrases are suppressed."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Matcher, ...]


@dataclass(frozen=True)
class AllOf:
    children: tuple[Matcher, ...]


@dataclass(frozen=True)
class Not:
    child: Matcher


Matcher = Union[Keywords, Regex, HashList, FieldCondition, AnyOf, AllOf, Not]


@dataclass(frozen=True)
class Aggregate:
    """A condition over groups of matching log records within tumbling time windows."""

    group_by: tuple[str, ...]
    window_seconds: int
    count_gte: int | None = None
    distinct_field: str | None = None
    distinct_gte: int | None = None
    sum_field: str | None = None
    sum_gte: float | None = None
    # Also require the window to reach this many times the group's own median window (spikes).
    baseline_factor: float | None = None


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
