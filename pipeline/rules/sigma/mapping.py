"""Sigma field → canonical log column, per logsource and per log format.

A logsource entry's ``fields`` hold for every format; its ``formats`` say, per log format, what
differs for the records read in that format. A rule whose fields map alike in every format is one
matcher tree, as before. Otherwise its tree is converted once per distinct mapping and each copy is
guarded by the records' ``log_format`` (the format the scan read them as): records of no listed
format, or of no known format at all (the retained store does not keep it), take the default copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ...config import SIGMA_FIELDS, SIGMA_FORMATS, SigmaLogsource
from .. import model as m

LOG_FORMAT = "log_format"   # the column the scan adds to log records when some rule reads it

Mapping = dict[str, str | None]


@dataclass(frozen=True)
class FieldMapping:
    base: Mapping                       # every format
    formats: dict[str, Mapping]         # log format → its full mapping, for formats that change something

    @classmethod
    def of(cls, entry: SigmaLogsource | None) -> FieldMapping:
        base = {**SIGMA_FIELDS, **(entry.fields if entry else {})}
        given = entry.formats if entry else {}
        # an entry's formats are merged over the defaults, format by format, as its fields are
        formats = {fmt: {**base, **SIGMA_FORMATS.get(fmt, {}), **given.get(fmt, {})}
                   for fmt in sorted({*SIGMA_FORMATS, *given})}
        return cls(base, {fmt: mp for fmt, mp in formats.items() if mp != base})

    def groups(self, used: Iterable[str]) -> list[tuple[tuple[str, ...], Mapping]]:
        """Formats whose mapping of the ``used`` Sigma fields differs from the base, grouped by that mapping."""
        used = sorted(set(used))
        plain = [self.base.get(f, "\0unmapped") for f in used]
        out: dict[tuple[str | None, ...], list[str]] = {}
        for fmt, mp in sorted(self.formats.items()):
            key = tuple(mp.get(f, "\0unmapped") for f in used)
            if list(key) != plain:
                out.setdefault(key, []).append(fmt)
        return [(tuple(fmts), self.formats[fmts[0]]) for fmts in out.values()]


def per_format(mapping: FieldMapping, convert: Callable[[Mapping], tuple[m.Matcher, dict[str, str]]]
               ) -> tuple[m.Matcher, dict[str, str], dict[str, dict[str, str]]]:
    """The rule's matcher over every format, the columns it reads by default, and per format where
    they differ. ``convert`` turns a mapping into (matcher, Sigma field → column read)."""
    tree, used = convert(mapping.base)
    groups = mapping.groups(used)
    if not groups:
        return tree, used, {}
    special = tuple(f for fmts, _ in groups for f in fmts)
    # ``Not`` wraps each guard: it adds no evidence item, so evidence names only the rule's values
    branches: list[m.Matcher] = [m.AllOf((m.Not(m.FieldCondition(LOG_FORMAT, "in", special)), tree))]
    by_format: dict[str, dict[str, str]] = {}
    for fmts, mp in groups:
        t, u = convert(mp)
        guard = m.Not(m.Not(m.FieldCondition(LOG_FORMAT, "in", fmts)))   # a missing format: not these
        branches.append(m.AllOf((guard, t)))
        by_format.update({f: u for f in fmts})
    return m.AnyOf(tuple(branches)), used, by_format


def reads_log_format(rules: Iterable[m.Rule]) -> bool:
    """Whether some rule's matchers read the records' log format (the scan then adds the column)."""
    return any(isinstance(mt, m.FieldCondition) and mt.field == LOG_FORMAT
               for rule in rules if rule.match is not None for mt in m.walk(rule.match))
