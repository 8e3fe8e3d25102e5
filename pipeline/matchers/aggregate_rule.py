"""A rule's ``aggregate:`` (source ``logs``): its model, keys and parse.

Not a matcher under ``match:`` but a condition over the groups of rows ``match`` selects; evaluation
(partials per bucket, windows, episodes) is in ``aggregate.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from .base import ParseContext, check_field, check_keys, mapping, str_list, value

AGGREGATE_KEYS = ("group_by", "window", "count_gte", "distinct", "sum", "baseline_factor")
THRESHOLD_KEYS = ("field", "gte")   # of distinct: and sum:
WINDOW_RE = re.compile(r"^(\d+)([smhd])$")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def parse_aggregate(ctx: ParseContext, node: yaml.Node) -> Aggregate | None:
    items = mapping(ctx, node, "aggregate")
    if items is None:
        return None
    check_keys(ctx, items, AGGREGATE_KEYS, "aggregate")
    factor = value(items["baseline_factor"][1]) if "baseline_factor" in items else None
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        ctx.error(items["baseline_factor"][1], "baseline_factor takes a number above 1 (e.g. 10: ten times the usual)")
        return None
    if ctx.sources != ("logs",):
        ctx.error(node, "aggregate rules need source: logs")
        return None
    group_by = str_list(ctx, items["group_by"][1], "group_by") if "group_by" in items else None
    if group_by is None:
        ctx.error(node, "aggregate needs group_by: the fields that form a group")
        return None
    for g in group_by:
        check_field(ctx, items["group_by"][1], g)
    wnode = items.get("window", (None, None))[1]
    wmatch = WINDOW_RE.match(str(value(wnode))) if wnode is not None else None
    window = 0   # 0: not given right; reported, and the rest is still checked
    if wmatch is None:
        ctx.error(wnode or node, "aggregate needs window: a number and a unit s, m, h or d (e.g. 1m)")
    else:
        window = int(wmatch.group(1)) * WINDOW_UNITS[wmatch.group(2)]
    conds = [k for k in ("count_gte", "distinct", "sum") if k in items]
    if len(conds) != 1:
        ctx.error(node, "aggregate needs exactly one of count_gte, distinct, sum")
        return None
    kind = conds[0]
    vnode = items[kind][1]
    if kind == "count_gte":
        count = value(vnode)
        if not isinstance(count, int) or count < 1:
            ctx.error(vnode, "count_gte takes a positive whole number")
            return None
        return Aggregate(group_by, window, count_gte=count, baseline_factor=factor) if window else None
    sub = mapping(ctx, vnode, kind)
    if sub is None:
        return None
    check_keys(ctx, sub, THRESHOLD_KEYS, kind)
    if "field" not in sub or "gte" not in sub:
        ctx.error(vnode, f"{kind} needs field and gte")
        return None
    fld = value(sub["field"][1])
    gte = value(sub["gte"][1])
    if isinstance(gte, str):
        try:
            gte = float(gte)   # YAML 1.1 reads 1e11 as a string
        except ValueError:
            pass
    if not isinstance(fld, str) or not check_field(ctx, sub["field"][1], fld):
        return None
    if isinstance(gte, bool) or not isinstance(gte, (int, float)):
        ctx.error(sub["gte"][1], "gte takes a number")
        return None
    if not window:
        return None
    if kind == "distinct":
        return Aggregate(group_by, window, distinct_field=fld, distinct_gte=int(gte), baseline_factor=factor)
    return Aggregate(group_by, window, sum_field=fld, sum_gte=float(gte), baseline_factor=factor)
