"""A Sigma ``detection:`` block → one matcher tree of the rule model.

Selections are maps (every field must match: ``AllOf``), lists of maps (any map: ``AnyOf``) or
lists of keywords (any keyword, searched in the raw line). A field's list of values is ``AnyOf``
unless ``|all``. ``null`` means the field is absent (NULL); a Sigma field the mapping does not know,
or maps to null, is NULL on every record, so a negated condition over it holds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2
import yaml
from yaml.constructor import SafeConstructor

from .. import model as m
from ..condition import ConditionError, compile_condition
from . import values as v

RAW = "raw"                 # the record's raw line (see pipeline.sources.logs_common.RAW)
NULL_PREFIX = "sigma-null:"  # a column no record has: the field of a Sigma field no format carries
_constructor = SafeConstructor()
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False


def py(node: yaml.Node) -> Any:
    return _constructor.construct_object(node, deep=True)


class DetectionError(ValueError):
    """The detection cannot be read (an error whatever ``sigma.unsupported`` says)."""

    def __init__(self, message: str, node: yaml.Node | None):
        super().__init__(message)
        self.node = node


class UnsupportedError(ValueError):
    """The detection uses a feature the engine does not run (skipped or an error, by config)."""

    def __init__(self, message: str, node: yaml.Node | None):
        super().__init__(message)
        self.node = node


@dataclass
class Converter:
    fields: Mapping[str, str | None]     # Sigma field → canonical field (None: no format has it)
    label: str                           # names the rule in evidence: "<uuid> (level <level>)"
    notes: list[tuple[yaml.Node, str]] = field(default_factory=list)   # (where, what): not errors
    used: dict[str, str] = field(default_factory=dict)                   # Sigma field → column read

    def column(self, name: str, node: yaml.Node) -> str:
        target = self.fields.get(name, "") if name in self.fields else None
        if name not in self.fields:
            self.notes.append((node, f"field {name!r} is not in the field mapping: it is NULL on every record"))
            col = NULL_PREFIX + name.replace(".", "_")
        elif target is None:
            col = NULL_PREFIX + name.replace(".", "_")
        else:
            col = str(target)
        self.used[name] = col if not col.startswith(NULL_PREFIX) else "NULL"
        return col

    # -- detection -----------------------------------------------------------------------------

    def detection(self, node: yaml.Node) -> m.Matcher:
        if not isinstance(node, yaml.MappingNode):
            raise DetectionError("detection must be a mapping of selections and a condition", node)
        selections: dict[str, m.Matcher] = {}
        cond_node = None
        for knode, vnode in node.value:
            key = str(py(knode))
            if key == "condition":
                cond_node = vnode
            elif key == "timeframe":
                raise UnsupportedError("detection.timeframe (Sigma 1 aggregation) is not supported: "
                                       "write a correlation rule", knode)
            else:
                selections[key] = self.selection(vnode)
        if cond_node is None:
            raise DetectionError("detection has no condition", node)
        conds = py(cond_node)
        conds = conds if isinstance(conds, list) else [conds]
        trees = []
        for text in conds:
            if not isinstance(text, str) or not text.strip():
                raise DetectionError("condition must be an expression over the selection names", cond_node)
            if "|" in text:
                raise UnsupportedError("aggregation in the condition ('| count() ...') is not supported: "
                                       "write a correlation rule", cond_node)
            try:
                trees.append(compile_condition(text, selections))
            except ConditionError as exc:
                raise DetectionError(f"condition: {exc}", cond_node) from None
        return trees[0] if len(trees) == 1 else m.AnyOf(tuple(trees))

    def selection(self, node: yaml.Node) -> m.Matcher:
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node)
        if isinstance(node, yaml.SequenceNode):
            if not node.value:
                raise DetectionError("a selection list is empty", node)
            if all(isinstance(n, yaml.MappingNode) for n in node.value):
                return _any([self.mapping(n) for n in node.value])
            if any(isinstance(n, yaml.MappingNode) for n in node.value):
                raise DetectionError("a selection list mixes maps and keywords", node)
            return self.values(RAW, "keywords", [], node.value, node, keyword=True)
        return self.values(RAW, "keywords", [], [node], node, keyword=True)

    def mapping(self, node: yaml.MappingNode) -> m.Matcher:
        parts = []
        for knode, vnode in node.value:
            key = str(py(knode))
            name, *mods = key.split("|")
            for mod in mods:
                if mod not in v.SUPPORTED:
                    known = mod in v.KNOWN_UNSUPPORTED
                    raise UnsupportedError(f"modifier {mod!r} ({key}) is {'not supported' if known else 'unknown'}",
                                           knode)
            items = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
            if not items:
                raise DetectionError(f"{key} has an empty list of values", vnode)
            if name == "":
                parts.append(self.values(RAW, key or "keywords", mods, items, knode, keyword=True))
            else:
                parts.append(self.values(self.column(name, knode), key, mods, items, knode))
        if not parts:
            raise DetectionError("a selection map is empty", node)
        return _all(parts)

    def values(self, col: str, key: str, mods: list[str], items: list[yaml.Node], where: yaml.Node,
               keyword: bool = False) -> m.Matcher:
        """A field's (or the raw line's) values under the modifiers."""
        vals = [py(n) for n in items]
        for val, n in zip(vals, items):
            if isinstance(val, (list, dict)):
                raise DetectionError(f"{key}: a value must be a string, a number or null", n)
        label = f"{self.label} {key}"
        if "exists" in mods:
            if len(vals) != 1 or not isinstance(vals[0], bool):
                raise DetectionError(f"{key} takes true or false", where)
            return m.FieldCondition(col, "exists", vals[0])
        leaves: list[m.Matcher] = []
        nulls = [x for x in vals if x is None]
        vals = [x for x in vals if x is not None]
        if nulls:
            if keyword:
                raise DetectionError("a keyword cannot be null", where)
            leaves.append(m.FieldCondition(col, "exists", False))
        if "all" in mods and nulls:
            raise DetectionError(f"{key}: all with null", where)
        if "re" in mods:
            leaves += [self._re(col, x, mods, label, where) for x in vals]
            return _combine(leaves, "all" in mods)
        if "cidr" in mods:
            try:
                nets = tuple(str(ipaddress.ip_network(str(x), strict=False)) for x in vals)
            except ValueError as exc:
                raise DetectionError(f"{key}: not a CIDR block: {exc}", where) from None
            if "all" in mods:
                leaves += [m.FieldCondition(col, "cidr", (n,)) for n in nets]
            else:
                leaves.append(m.FieldCondition(col, "cidr", nets))
            return _combine(leaves, "all" in mods)
        ops = [x for x in ("gt", "gte", "lt", "lte") if x in mods]
        if ops:
            if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in vals):
                raise DetectionError(f"{key} takes numbers", where)
            leaves += [m.FieldCondition(col, ops[0], x) for x in vals]
            return _combine(leaves, "all" in mods)
        smods = mods + (["contains"] if keyword and not ({"startswith", "endswith"} & set(mods)) else [])
        try:
            if "all" in mods:
                for x in vals:
                    leaves.append(self._regex(col, v.with_modifiers(x, smods), f"{label}: {x}"))
                return _combine(leaves, True)
            if vals:
                patterns = [p for x in vals for p in v.with_modifiers(x, smods)]
                leaves.append(self._regex(col, patterns, label))
        except v.Unsupported as exc:
            raise UnsupportedError(f"{key}: {exc}", where) from None
        return _combine(leaves, False)

    def _regex(self, col: str, patterns: list[v.Pattern], label: str) -> m.Matcher:
        return m.Regex(v.alternation(patterns), (col,), decoded=False, label=label)

    def _re(self, col: str, value: object, mods: list[str], label: str, where: yaml.Node) -> m.Matcher:
        try:
            pattern = v.regex_value(value, mods)
        except v.Unsupported as exc:
            raise DetectionError(str(exc), where) from None
        try:
            re2.compile(pattern, _RE2_QUIET)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise DetectionError(f"|re value {value!r} is not a valid RE2 expression: {reason}", where) from None
        return m.Regex(pattern, (col,), decoded=False, label=f"{label}: {value}")


def _any(parts: list[m.Matcher]) -> m.Matcher:
    return parts[0] if len(parts) == 1 else m.AnyOf(tuple(parts))


def _all(parts: list[m.Matcher]) -> m.Matcher:
    return parts[0] if len(parts) == 1 else m.AllOf(tuple(parts))


def _combine(parts: list[m.Matcher], every: bool) -> m.Matcher:
    return _all(parts) if every else _any(parts)

