"""Sigma 2 correlations → aggregate rules over the rules they reference.

``event_count`` (records of the referenced rules per group and window) and ``value_count``
(distinct values of a field) become ``Aggregate`` rules; their windows are the project's tumbling
windows of ``timespan``. A condition ``gte N`` / ``gt N`` is supported (the aggregate model counts
up to a threshold); ``temporal`` and the other types and operators are reported as unsupported.
"""

from __future__ import annotations

from typing import Any

import yaml

from ...config import SIGMA_FIELDS, SigmaSettings
from .. import model as m
from .detection import DetectionError, UnsupportedError, py
from .load import content_hash, logsource_entry, window_seconds

SUPPORTED_TYPES = ("event_count", "value_count")


def convert_correlation(path: str, node: yaml.MappingNode, text: str, rid: str, meta: dict[str, Any],
                        named: dict[str, m.Rule], settings: SigmaSettings) -> tuple[m.Rule, list[m.Rule]]:
    """The aggregate rule for one correlation document, and the rules it references."""
    corr = meta.get("correlation")
    cnode = next(vn for kn, vn in node.value if py(kn) == "correlation")
    if not isinstance(corr, dict):
        raise DetectionError("correlation must be a mapping", cnode)
    kind = corr.get("type")
    if kind not in SUPPORTED_TYPES:
        raise UnsupportedError(f"correlation type {kind!r} is not supported (supported: {', '.join(SUPPORTED_TYPES)})",
                               cnode)
    refs = corr.get("rules")
    refs = [refs] if isinstance(refs, str) else refs
    if not isinstance(refs, list) or not refs:
        raise DetectionError("correlation.rules names the rules it correlates", cnode)
    missing = [r for r in refs if str(r) not in named]
    if missing:
        raise UnsupportedError(f"correlation references {', '.join(map(str, missing))}, which did not load "
                               "(not found, or unsupported)", cnode)
    referenced = [named[str(r)] for r in refs]
    window = window_seconds(corr.get("timespan"))
    if window is None:
        raise DetectionError(f"correlation.timespan {corr.get('timespan')!r} must be a number and a unit "
                             "s, m, h, d or w", cnode)
    entry = logsource_entry(settings, referenced[0].meta.get("sigma", {}).get("logsource"))
    fields = {**SIGMA_FIELDS, **(entry.fields if entry else {})}
    group = corr.get("group-by") or []
    group = [group] if isinstance(group, str) else group
    group_by = tuple(_field(fields, str(g), cnode) for g in group)
    cond = corr.get("condition")
    if not isinstance(cond, dict):
        raise DetectionError("correlation.condition is a mapping such as {gte: 10}", cnode)
    ops = {k: v for k, v in cond.items() if k != "field"}
    if len(ops) != 1 or next(iter(ops)) not in ("gte", "gt") or not isinstance(next(iter(ops.values())), int):
        raise UnsupportedError(f"correlation condition {cond!r}: only gte / gt with a whole number is supported",
                               cnode)
    op, n = next(iter(ops.items()))
    threshold = int(n) + (1 if op == "gt" else 0)
    if kind == "event_count":
        agg = m.Aggregate(group_by or ("client_ip",), window, count_gte=threshold)
    else:
        if "field" not in cond:
            raise DetectionError("a value_count condition names its field", cnode)
        agg = m.Aggregate(group_by or ("client_ip",), window, distinct_field=_field(fields, str(cond["field"]), cnode),
                          distinct_gte=threshold)
    matches = tuple(r.match for r in referenced if r.match is not None)
    match = matches[0] if len(matches) == 1 else m.AnyOf(matches)
    level = str(meta.get("level") or "")
    first = referenced[0]
    subject = group_by[0] if group_by else first.subject
    return m.Rule(
        id=rid, title=str(meta.get("title") or rid), clause=first.clause, category=first.category,
        severity=settings.level_severity.get(level.lower(), first.severity), sources=("logs",), match=match,
        path=path, line=node.start_mark.line + 1, content_hash=content_hash(text, node, fields),
        description=None if meta.get("description") is None else str(meta["description"]).strip(),
        subject=subject, aggregate=agg,
        meta={"sigma": {**{k: meta[k] for k in ("id", "name", "title", "status", "level", "author", "references",
                                                 "falsepositives", "tags") if k in meta},
                        "correlation": corr, "references_rules": [r.id for r in referenced]}},
    ), referenced


def _field(fields: dict[str, str | None], name: str, where: yaml.Node) -> str:
    target = fields.get(name)
    if not target:
        raise UnsupportedError(f"correlation field {name!r} has no canonical field in the mapping", where)
    return target
