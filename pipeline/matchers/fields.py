"""Field conditions: ``field:`` with one operator (``equals``, ``in``, ``gte``, ``cidr`` ...), or
``matches:`` (case-insensitive ``*`` / ``?`` wildcards over the whole value, Sigma style).

Evaluated by the engine in ``evaluate.py`` (``_condition``: one vectorized operation per field);
``matches`` becomes an anchored RE2 ``Regex`` and runs as one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import yaml

from .base import Items, MatcherKind, ParseContext, check_field, register, str_list, value
from .regex import Regex

FIELD_OPS = ("equals", "in", "not_in", "contains", "startswith", "endswith",
             "gt", "gte", "lt", "lte", "cidr", "exists")


@dataclass(frozen=True)
class FieldCondition:
    """``field`` compared with ``op`` to ``value``; ``field`` may be dotted into a map (labels.pulp)."""

    field: str
    op: str
    value: Any


def _operand(ctx: ParseContext, op: str, vnode: yaml.Node) -> tuple[bool, Any]:
    """(valid, the operand as the engine takes it)."""
    got = value(vnode)
    if op in ("in", "not_in"):
        if not isinstance(got, list) or not got:
            ctx.error(vnode, f"{op} takes a non-empty list")
            return False, None
        return True, tuple(got)
    if op in ("gt", "gte", "lt", "lte"):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            ctx.error(vnode, f"{op} takes a number, not {got!r}")
            return False, None
    elif op == "exists":
        if not isinstance(got, bool):
            ctx.error(vnode, "exists takes true or false")
            return False, None
    elif op == "cidr":
        nets = got if isinstance(got, list) else [got]
        try:
            return True, tuple(str(ipaddress.ip_network(str(n), strict=False)) for n in nets)
        except ValueError as exc:
            ctx.error(vnode, f"not a CIDR block: {exc}")
            return False, None
    elif op in ("contains", "startswith", "endswith"):
        if not isinstance(got, str):
            ctx.error(vnode, f"{op} takes a string")
            return False, None
    return True, got


def parse_field(ctx: ParseContext, node: yaml.Node, items: Items) -> FieldCondition | Regex | None:
    fnode = items["field"][1]
    name = value(fnode)
    if "matches" in items:  # case-insensitive wildcards over the whole value: an anchored RE2 regex
        from ..rules.condition import wildcard_regex   # condition builds on the rule model, which imports this

        extra = [k for k in items if k in FIELD_OPS]
        if extra:
            ctx.error(node, f"matches cannot be combined with {extra[0]}")
            return None
        globs = str_list(ctx, items["matches"][1], "matches")
        if globs is None or not isinstance(name, str) or not check_field(ctx, fnode, name):
            return None
        return Regex(wildcard_regex(list(globs)), (name,))
    ops = [k for k in items if k in FIELD_OPS]
    if len(ops) != 1:
        ctx.error(node, f"a field condition needs exactly one operator, found {len(ops)}",
                  hint=f"operators: {', '.join(FIELD_OPS)}")
        return None
    if not isinstance(name, str) or not check_field(ctx, fnode, name):
        return None
    ok, operand = _operand(ctx, ops[0], items[ops[0]][1])
    return FieldCondition(name, ops[0], operand) if ok else None


register(MatcherKind(
    name="field", keys=("field", *FIELD_OPS, "matches"), parse=parse_field, types=(FieldCondition,),
    example="{field: labels.pulp, gte: 0.9}",
))
