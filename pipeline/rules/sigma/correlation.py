"""Sigma 2 correlations → aggregate rules over the rules they reference.

``event_count`` (records of the referenced rules per group and window), ``value_count`` (distinct
values of a field) and ``value_sum`` (the sum of a field) become ``Aggregate`` rules over windows of
``timespan``. A condition ``gte N`` / ``gt N`` is supported (the aggregate model tests reaching a
threshold); ``temporal`` and the other types and operators are reported as unsupported, with why.
"""

from __future__ import annotations

from typing import Any

import yaml

from ...config import SigmaSettings
from .. import model as m
from .detection import DetectionError, UnsupportedError, py
from .load import content_hash, logsource_entry, window_seconds
from .mapping import FieldMapping

SUPPORTED_TYPES = ("event_count", "value_count", "value_sum")
_ORDER = ("the aggregate model counts records and distinct values in a window; it does not keep which of the "
          "referenced rules each record matched")
WHY_NOT = {"temporal": _ORDER + ", which 'all of them within the timespan' needs",
           "temporal_ordered": _ORDER + " nor in what order",
           "value_avg": "averages are not computed by aggregates",
           "value_percentile": "percentiles are not computed by aggregates",
           "value_median": "medians are not computed by aggregates"}


def convert_correlation(path: str, node: yaml.MappingNode, text: str, rid: str, meta: dict[str, Any],
                        named: dict[str, m.Rule], settings: SigmaSettings) -> tuple[m.Rule, list[m.Rule]]:
    """The aggregate rule for one correlation document, and the rules it references."""
    corr = meta.get("correlation")
    cnode = next(vn for kn, vn in node.value if py(kn) == "correlation")
    if not isinstance(corr, dict):
        raise DetectionError("correlation must be a mapping", cnode)
    kind = corr.get("type")
    if kind not in SUPPORTED_TYPES:
        why = WHY_NOT.get(str(kind), "not a correlation type this engine knows")
        raise UnsupportedError(f"correlation type {kind!r} is not supported: {why} (supported: "
                               f"{', '.join(SUPPORTED_TYPES)})", _child(cnode, "type"))
    refs = _refs(corr)
    if not refs:
        raise DetectionError("correlation.rules names the rules it correlates", cnode)
    missing = [r for r in refs if r not in named]
    if missing:
        raise UnsupportedError(f"correlation references {', '.join(map(str, missing))}, which did not load "
                               "(not found, or unsupported)", cnode)
    referenced = [named[r] for r in refs]
    window = window_seconds(corr.get("timespan"))
    if window is None:
        raise DetectionError(f"correlation.timespan {corr.get('timespan')!r} must be a number and a unit "
                             "s, m, h, d or w", cnode)
    mapping = FieldMapping.of(logsource_entry(settings, referenced[0].meta.get("sigma", {}).get("logsource")))
    group = corr.get("group-by") or []
    group = [group] if isinstance(group, str) else group
    if not group:
        # a case is about a subject: counting every record together would have none to name
        raise UnsupportedError("a correlation without group-by is not supported: a case names its subject "
                               "(group by c-ip, for example)", cnode)
    group_by = tuple(_field(mapping, str(g), cnode) for g in group)
    cond = corr.get("condition")
    if not isinstance(cond, dict):
        raise DetectionError("correlation.condition is a mapping such as {gte: 10}", cnode)
    ops = {k: v for k, v in cond.items() if k != "field"}
    op, n = next(iter(ops.items())) if len(ops) == 1 else ("", None)
    if op not in ("gte", "gt") or isinstance(n, bool) or not isinstance(n, int):
        raise UnsupportedError(f"correlation condition {cond!r}: only gte / gt with a whole number is supported "
                               "(the aggregate model tests reaching a threshold)", _child(cnode, "condition"))
    threshold = int(n) + (1 if op == "gt" else 0)   # counts and the sums of whole-number fields are whole
    if kind == "event_count":
        agg = m.Aggregate(group_by, window, count_gte=threshold)
    else:
        if "field" not in cond:
            raise DetectionError(f"a {kind} condition names its field", _child(cnode, "condition"))
        counted = _field(mapping, str(cond["field"]), cnode)
        agg = (m.Aggregate(group_by, window, distinct_field=counted, distinct_gte=threshold) if kind == "value_count"
               else m.Aggregate(group_by, window, sum_field=counted, sum_gte=float(threshold)))
    matches = tuple(r.match for r in referenced if r.match is not None)
    match = matches[0] if len(matches) == 1 else m.AnyOf(matches)
    level = str(meta.get("level") or "")
    first = referenced[0]
    subject = first.subject if first.subject in group_by else group_by[0]   # a case's subject is a group field
    return m.Rule(
        id=rid, title=str(meta.get("title") or rid), clause=first.clause, category=first.category,
        severity=settings.level_severity.get(level.lower(), first.severity), sources=("logs",), match=match,
        path=path, line=node.start_mark.line + 1, content_hash=content_hash(
            text, node, {"aggregate": repr(agg), "rules": [r.content_hash for r in referenced]}),
        description=None if meta.get("description") is None else str(meta["description"]).strip(),
        subject=subject, aggregate=agg,
        meta={"sigma": {**{k: meta[k] for k in ("id", "name", "title", "status", "level", "author", "references",
                                                 "falsepositives", "tags") if k in meta},
                        "correlation": corr, "references_rules": [r.id for r in referenced]}},
    ), referenced


def referenced_rules(meta: dict[str, Any], named: dict[str, m.Rule]) -> list[m.Rule]:
    """The loaded rules a correlation names (for one that cannot run: they still open no cases)."""
    corr = meta.get("correlation")
    return [named[r] for r in _refs(corr) if r in named] if isinstance(corr, dict) else []


def _child(node: yaml.MappingNode, key: str) -> yaml.Node:
    return next((vn for kn, vn in node.value if py(kn) == key), node) if isinstance(node, yaml.MappingNode) else node


def _refs(corr: dict[str, Any]) -> list[str]:
    refs = corr.get("rules")
    refs = [refs] if isinstance(refs, str) else refs
    return [str(r) for r in refs] if isinstance(refs, list) else []


def _field(mapping: FieldMapping, name: str, where: yaml.Node) -> str:
    """The one canonical column a correlation groups or counts by: an aggregate cannot switch
    columns per log format, so a field mapped differently by some format is unsupported here."""
    target = mapping.base.get(name)
    if not target:
        raise UnsupportedError(f"correlation field {name!r} has no canonical field in the mapping", where)
    differs = sorted(f"{fmt}: {mp.get(name)}" for fmt, mp in mapping.formats.items() if mp.get(name) != target)
    if differs:
        raise UnsupportedError(f"correlation field {name!r} maps to {target} but to other fields for some log "
                               f"formats ({', '.join(differs)}); an aggregate groups and counts one field", where)
    return target
