"""Load rule files into a RuleSet, reporting every problem in every file at once with its place.

Parsing walks the YAML node tree (not plain dicts) so that each problem carries
``path:line:column``. Each matcher kind declares the keys it accepts; an unknown key is
an error listing the valid ones — a silently ignored key could make a rule match everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2
import yaml
from yaml.constructor import SafeConstructor

from ..errors import Location, RuleError, RuleLoadError
from ..records import LOGS, OBJECTS, STREAMS
from . import limits
from . import model as m
from .condition import ConditionError, compile_condition, wildcard_regex

# Fields a rule may name, per source. ICP rules name checks, not fields.
SOURCE_FIELDS: dict[str, set[str]] = {
    "objects": set(OBJECTS),
    "logs": set(LOGS),
    "streams": set(STREAMS),
    "icp": set(),
}
MAP_FIELDS = {"labels"}  # fields holding JSON objects, addressable as labels.<name>
CHECKS = ("unfiled_domain_serving", "filing_limited", "licence_missing",
          "entity_mismatch", "declared_filing_mismatch")

RULE_KEYS = ("id", "title", "description", "clause", "law", "category", "severity", "source", "selections", "condition",
             "subject", "match", "unless", "aggregate", "check", "params", "tests", "enabled",
             "author", "references")
REQUIRED_RULE_KEYS = ("id", "title", "clause", "category", "severity", "source")
ID_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
WINDOW_RE = re.compile(r"^(\d+)([smhd])$")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Problems:
    """Collects RuleErrors for one load; a parse step that fails returns None and carries on."""

    def __init__(self) -> None:
        self.items: list[RuleError] = []

    def add(self, path: str, node: yaml.Node | None, message: str, hint: str | None = None,
            rule_id: str | None = None) -> None:
        loc = Location(path, node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else Location(path)
        self.items.append(RuleError(message, location=loc, hint=hint, rule_id=rule_id))


_constructor = SafeConstructor()
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # the error is reported with its location; keep RE2's own log off stderr


def _value(node: yaml.Node) -> Any:
    return _constructor.construct_object(node, deep=True)


@dataclass
class _Ctx:
    path: str
    problems: _Problems
    rule_id: str | None
    sources: tuple[str, ...]

    def error(self, node: yaml.Node | None, message: str, hint: str | None = None) -> None:
        self.problems.add(self.path, node, message, hint, self.rule_id)


def _mapping(ctx: _Ctx, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    if not isinstance(node, yaml.MappingNode):
        ctx.error(node, f"{what} must be a mapping")
        return None
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for k, v in node.value:
        key = str(_value(k))
        if key in out:
            ctx.error(k, f"key {key!r} given twice in {what}")
        out[key] = (k, v)
    return out


def _check_keys(ctx: _Ctx, items: dict[str, tuple[yaml.Node, yaml.Node]], valid: Iterable[str], what: str) -> None:
    valid = list(valid)
    for key, (knode, _) in items.items():
        if key not in valid:
            ctx.error(knode, f"unknown key {key!r} in {what}", hint=f"valid keys: {', '.join(valid)}")


def _str_list(ctx: _Ctx, node: yaml.Node, what: str) -> tuple[str, ...] | None:
    value = _value(node)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) and str(v).strip() for v in value):
        ctx.error(node, f"{what} must be a non-empty list of strings")
        return None
    return tuple(str(v) for v in value)


def _check_field(ctx: _Ctx, node: yaml.Node, name: str) -> bool:
    base = name.split(".", 1)[0]
    known = set().union(*(SOURCE_FIELDS.get(s, set()) for s in ctx.sources))
    if "." in name and base not in MAP_FIELDS:
        ctx.error(node, f"field {name!r}: only {', '.join(sorted(MAP_FIELDS))} can be addressed with a dot")
        return False
    if base not in known:
        ctx.error(node, f"unknown field {name!r} for source {'/'.join(ctx.sources)}",
                  hint=f"valid fields: {', '.join(sorted(known))}")
        return False
    return True


def _fields(ctx: _Ctx, items: dict[str, tuple[yaml.Node, yaml.Node]], kind: str) -> tuple[str, ...] | None:
    if "fields" not in items:
        ctx.error(next(iter(items.values()))[0], f"{kind} needs 'fields': the text fields to search")
        return None
    fields = _str_list(ctx, items["fields"][1], "fields")
    if fields is None:
        return None
    fnode = items["fields"][1]
    nodes = fnode.value if isinstance(fnode, yaml.SequenceNode) else [fnode] * len(fields)
    ok = all([_check_field(ctx, n, f) for n, f in zip(nodes, fields)])
    return fields if ok else None


def _normalize_flag(ctx: _Ctx, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> bool:
    if "normalize" not in items:
        return True
    v = _value(items["normalize"][1])
    if not isinstance(v, bool):
        ctx.error(items["normalize"][1], "normalize must be true or false")
        return True
    return v


def _read_list_file(ctx: _Ctx, node: yaml.Node, rel: str) -> tuple[str, list[str]] | None:
    path = os.path.normpath(os.path.join(os.path.dirname(ctx.path), rel))
    if (why := limits.outside_roots(path)) is not None:
        ctx.error(node, why, hint="keep lexicons and hash lists under the rules folder, or name their folder "
                                  "in the config's rule_list_dirs")
        return None
    try:
        if os.path.getsize(path) > limits.MAX_FILE_BYTES:
            ctx.error(node, f"{rel} is larger than {limits.MAX_FILE_BYTES >> 20} MB", hint="split it into several files")
            return None
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        ctx.error(node, f"file not found: {rel} (looked at {path})", hint="paths are relative to the rule file")
        return None
    except OSError as exc:
        ctx.error(node, f"cannot read {rel}: {exc.strerror or exc}", hint="let this user read it (check its permissions)")
        return None
    except UnicodeDecodeError as exc:
        ctx.error(node, f"{rel} is not UTF-8 ({exc.reason} at byte {exc.start})")
        return None
    words = [ln.strip() for ln in text.splitlines()]
    return path, [w for w in words if w and not w.startswith("#")]


# --- matcher parsers: each declares its keys -------------------------------------------------

Parser = Callable[[_Ctx, yaml.Node, dict[str, tuple[yaml.Node, yaml.Node]]], "m.Matcher | None"]


def _empty_after_normalizing(ctx: _Ctx, node: yaml.Node, words: tuple[str, ...], flag: bool) -> bool:
    from ..normalize import normalize_many

    keys = normalize_many(words) if flag else words
    empty = [w for w, key in zip(words, keys) if not key.strip()]
    if empty:
        ctx.error(node, f"keyword {empty[0]!r} is empty once normalized (only separators or zero-width characters)",
                  hint="remove it, or set normalize: false to match it literally")
    return bool(empty)


def _p_keywords(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
    words = _str_list(ctx, items["keywords"][1], "keywords")
    fields = _fields(ctx, items, "keywords")
    if words is None or fields is None:
        return None
    flag = _normalize_flag(ctx, items)
    if _empty_after_normalizing(ctx, items["keywords"][1], words, flag):
        return None
    return m.Keywords(words, fields, flag, "inline")


def _p_keywords_file(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
    vnode = items["keywords_file"][1]
    rel = _value(vnode)
    fields = _fields(ctx, items, "keywords_file")
    if not isinstance(rel, str):
        ctx.error(vnode, "keywords_file must be a path")
        return None
    loaded = _read_list_file(ctx, vnode, rel)
    if loaded is None or fields is None:
        return None
    path, words = loaded
    if not words:
        ctx.error(vnode, f"{rel} holds no keywords", hint="one keyword a line; '#' starts a comment")
        return None
    flag = _normalize_flag(ctx, items)
    if _empty_after_normalizing(ctx, vnode, tuple(words), flag):
        return None
    return m.Keywords(tuple(words), fields, flag, path)


def _p_regex(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
    vnode = items["regex"][1]
    pattern = _value(vnode)
    fields = _fields(ctx, items, "regex")
    if not isinstance(pattern, str) or not pattern:
        ctx.error(vnode, "regex must be a non-empty string")
        return None
    try:
        re2.compile(pattern, _RE2_QUIET)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        ctx.error(vnode, f"not a valid RE2 regular expression: {reason}",
                  hint="RE2 has no look-around or back-references; see https://github.com/google/re2/wiki/Syntax")
        return None
    return m.Regex(pattern, fields) if fields else None


def _p_hash_list(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
    vnode = items["hash_list"][1]
    rel = _value(vnode)
    if "field" not in items:
        ctx.error(vnode, "hash_list needs 'field': etag or md5")
        return None
    fnode = items["field"][1]
    fld = _value(fnode)
    if fld not in ("etag", "md5"):
        ctx.error(fnode, f"hash_list field must be etag or md5, not {fld!r}")
        return None
    if not _check_field(ctx, fnode, fld):
        return None
    if not isinstance(rel, str):
        ctx.error(vnode, "hash_list must be a path to a file of hashes, one a line")
        return None
    loaded = _read_list_file(ctx, vnode, rel)
    if loaded is None:
        return None
    path, hashes = loaded
    bad = [h for h in hashes if not re.fullmatch(r"[0-9A-Za-z_\-]{16,128}", h.strip('"'))]
    if bad:
        ctx.error(vnode, f"{rel}: {len(bad)} line(s) are not hashes, first {bad[0]!r}")
        return None
    return m.HashList(path, fld, frozenset(h.strip('"').lower() for h in hashes))


def _p_field(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
    fnode = items["field"][1]
    name = _value(fnode)
    if "matches" in items:  # case-insensitive wildcards over the whole value: an anchored RE2 regex
        extra = [k for k in items if k in m.FIELD_OPS]
        if extra:
            ctx.error(node, f"matches cannot be combined with {extra[0]}")
            return None
        globs = _str_list(ctx, items["matches"][1], "matches")
        if globs is None or not isinstance(name, str) or not _check_field(ctx, fnode, name):
            return None
        return m.Regex(wildcard_regex(list(globs)), (name,))
    ops = [k for k in items if k in m.FIELD_OPS]
    if len(ops) != 1:
        ctx.error(node, f"a field condition needs exactly one operator, found {len(ops)}",
                  hint=f"operators: {', '.join(m.FIELD_OPS)}")
        return None
    if not isinstance(name, str) or not _check_field(ctx, fnode, name):
        return None
    op = ops[0]
    vnode = items[op][1]
    value = _value(vnode)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            ctx.error(vnode, f"{op} takes a non-empty list")
            return None
        value = tuple(value)
    elif op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.error(vnode, f"{op} takes a number, not {value!r}")
            return None
    elif op == "exists":
        if not isinstance(value, bool):
            ctx.error(vnode, "exists takes true or false")
            return None
    elif op == "cidr":
        import ipaddress
        nets = value if isinstance(value, list) else [value]
        try:
            value = tuple(str(ipaddress.ip_network(str(n), strict=False)) for n in nets)
        except ValueError as exc:
            ctx.error(vnode, f"not a CIDR block: {exc}")
            return None
    elif op in ("contains", "startswith", "endswith"):
        if not isinstance(value, str):
            ctx.error(vnode, f"{op} takes a string")
            return None
    return m.FieldCondition(name, op, value)


def _p_bool(kind: str) -> Parser:
    def parse(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]]) -> m.Matcher | None:
        vnode = items[kind][1]
        if kind == "not":
            child = parse_matcher(ctx, vnode)
            return m.Not(child) if child is not None else None
        if not isinstance(vnode, yaml.SequenceNode) or not vnode.value:
            ctx.error(vnode, f"{kind} takes a non-empty list of matchers")
            return None
        children = [parse_matcher(ctx, c) for c in vnode.value]
        if any(c is None for c in children):
            return None
        kids = tuple(c for c in children if c is not None)
        return m.AnyOf(kids) if kind == "any" else m.AllOf(kids)

    return parse


# kind key → (accepted keys, parser). Adding a matcher kind is one entry here plus its evaluator.
MATCHER_KINDS: dict[str, tuple[tuple[str, ...], Parser]] = {
    "keywords": (("keywords", "fields", "normalize"), _p_keywords),
    "keywords_file": (("keywords_file", "fields", "normalize"), _p_keywords_file),
    "regex": (("regex", "fields"), _p_regex),
    "hash_list": (("hash_list", "field"), _p_hash_list),
    "field": (("field", *m.FIELD_OPS, "matches"), _p_field),
    "any": (("any",), _p_bool("any")),
    "all": (("all",), _p_bool("all")),
    "not": (("not",), _p_bool("not")),
}


def _kind_of(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]],
             allowed: Iterable[str]) -> str | None:
    allowed = list(allowed)
    # 'field' is also a key of hash_list; the more specific kind wins.
    kinds = [k for k in allowed if k in items and not (k == "field" and "hash_list" in items)]
    if not kinds:
        unknown = [k for k in items if k not in allowed]
        if unknown:
            ctx.error(items[unknown[0]][0], f"unknown matcher key {unknown[0]!r}",
                      hint=f"a matcher is one of: {', '.join(allowed)}")
            return None
    if len(kinds) != 1:
        found = "none" if not kinds else ", ".join(kinds)
        ctx.error(node, f"a matcher needs exactly one of {', '.join(allowed)} (found {found})")
        return None
    return kinds[0]


def parse_matcher(ctx: _Ctx, node: yaml.Node) -> m.Matcher | None:
    items = _mapping(ctx, node, "a matcher")
    if items is None:
        return None
    kind = _kind_of(ctx, node, items, MATCHER_KINDS)
    if kind is None:
        return None
    keys, parser = MATCHER_KINDS[kind]
    _check_keys(ctx, items, keys, f"a {kind} matcher")
    return parser(ctx, node, items)


def _parse_unless(ctx: _Ctx, node: yaml.Node) -> tuple[tuple[str, ...], tuple[m.Matcher, ...]]:
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, "unless takes a list of exceptions (allow_words, or matchers)")
        return (), ()
    allow: list[str] = []
    others: list[m.Matcher] = []
    for item in node.value:
        items = _mapping(ctx, item, "an exception")
        if items is None:
            continue
        if "allow_words" in items:
            _check_keys(ctx, items, ("allow_words",), "allow_words")
            words = _str_list(ctx, items["allow_words"][1], "allow_words")
            allow.extend(words or ())
            continue
        parsed = parse_matcher(ctx, item)
        if parsed is not None:
            others.append(parsed)
    return tuple(allow), tuple(others)


def _parse_selections(ctx: _Ctx, node: yaml.Node, items: dict[str, tuple[yaml.Node, yaml.Node]],
                      match: m.Matcher | None) -> m.Matcher | None:
    """``selections`` + ``condition``: named matchers combined by an expression (see rules/condition.py)."""
    if match is not None or "match" in items:
        ctx.error(items["match"][0], "give either match or selections + condition, not both")
        return None
    if "selections" not in items or "condition" not in items:
        ctx.error(node, "selections and condition go together")
        return None
    sel = _mapping(ctx, items["selections"][1], "selections")
    if sel is None or not sel:
        ctx.error(items["selections"][1], "selections is a mapping of name: matcher")
        return None
    parsed = {name: parse_matcher(ctx, vnode) for name, (_, vnode) in sel.items()}
    if any(v is None for v in parsed.values()):
        return None
    cnode = items["condition"][1]
    text = _value(cnode)
    if not isinstance(text, str) or not text.strip():
        ctx.error(cnode, "condition is an expression over the selection names, e.g. \"a and not b\"")
        return None
    try:
        return compile_condition(text, {k: v for k, v in parsed.items() if v is not None})
    except ConditionError as exc:
        ctx.error(cnode, f"condition: {exc}", hint="operators: and, or, not, ( ), 1 of NAME*, all of them")
        return None


def _parse_aggregate(ctx: _Ctx, node: yaml.Node) -> m.Aggregate | None:
    items = _mapping(ctx, node, "aggregate")
    if items is None:
        return None
    _check_keys(ctx, items, ("group_by", "window", "count_gte", "distinct", "sum", "baseline_factor"), "aggregate")
    factor = _value(items["baseline_factor"][1]) if "baseline_factor" in items else None
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1):
        ctx.error(items["baseline_factor"][1], "baseline_factor takes a number above 1 (e.g. 10: ten times the usual)")
        return None
    if ctx.sources != ("logs",):
        ctx.error(node, "aggregate rules need source: logs")
        return None
    group_by = _str_list(ctx, items["group_by"][1], "group_by") if "group_by" in items else None
    if group_by is None:
        ctx.error(node, "aggregate needs group_by: the fields that form a group")
        return None
    for g in group_by:
        _check_field(ctx, items["group_by"][1], g)
    wnode = items.get("window", (None, None))[1]
    wmatch = WINDOW_RE.match(str(_value(wnode))) if wnode is not None else None
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
        v = _value(vnode)
        if not isinstance(v, int) or v < 1:
            ctx.error(vnode, "count_gte takes a positive whole number")
            return None
        return m.Aggregate(group_by, window, count_gte=v, baseline_factor=factor) if window else None
    sub = _mapping(ctx, vnode, kind)
    if sub is None:
        return None
    _check_keys(ctx, sub, ("field", "gte"), kind)
    if "field" not in sub or "gte" not in sub:
        ctx.error(vnode, f"{kind} needs field and gte")
        return None
    fld = _value(sub["field"][1])
    gte = _value(sub["gte"][1])
    if isinstance(gte, str):
        try:
            gte = float(gte)   # YAML 1.1 reads 1e11 as a string
        except ValueError:
            pass
    if not isinstance(fld, str) or not _check_field(ctx, sub["field"][1], fld):
        return None
    if isinstance(gte, bool) or not isinstance(gte, (int, float)):
        ctx.error(sub["gte"][1], "gte takes a number")
        return None
    if not window:
        return None
    if kind == "distinct":
        return m.Aggregate(group_by, window, distinct_field=fld, distinct_gte=int(gte), baseline_factor=factor)
    return m.Aggregate(group_by, window, sum_field=fld, sum_gte=float(gte), baseline_factor=factor)


def _parse_tests(ctx: _Ctx, node: yaml.Node, aggregate: bool) -> tuple[m.RuleTest, ...]:
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, "tests takes a list of {record, expect}")
        return ()
    out = []
    known = set().union(*(SOURCE_FIELDS.get(s, set()) for s in ctx.sources))
    for tnode in node.value:
        items = _mapping(ctx, tnode, "a test")
        if items is None:
            continue
        _check_keys(ctx, items, ("record", "records", "expect", "name", "repeat"), "a test")
        expect = _value(items["expect"][1]) if "expect" in items else None
        if expect not in ("match", "no_match"):
            ctx.error(items.get("expect", (tnode, tnode))[1], "expect must be match or no_match")
            continue
        if "record" in items:
            recs = [_value(items["record"][1])]
        elif "records" in items:
            recs = _value(items["records"][1])
        else:
            ctx.error(tnode, "a test needs record (or records, for aggregate rules)")
            continue
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            ctx.error(tnode, "record must be a mapping of field: value (records: a list of them)")
            continue
        if "repeat" in items:
            repeated = _repeat(ctx, items["repeat"][1], recs)
            if repeated is None:
                continue
            recs = repeated
        bad = sorted({str(k) for r in recs for k in r if str(k) not in known})
        if bad:
            ctx.error(tnode, f"test record has unknown field(s) {', '.join(bad)}",
                      hint=f"valid fields: {', '.join(sorted(known))}")
            continue
        out.append(m.RuleTest(tuple(recs), expect == "match", tnode.start_mark.line + 1))
    if not aggregate and out and not (any(t.expect for t in out) and any(not t.expect for t in out)):
        ctx.error(node, "tests need at least one match and one no_match case")
    return tuple(out)


def _repeat(ctx: _Ctx, node: yaml.Node, recs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Expand ``repeat: {times: N, every: 1s}``: N copies of the records, ``ts`` moved on by ``every``
    each time and ``{i}`` in string values replaced by the copy's number (for aggregate-rule tests)."""
    spec = _value(node)
    if not isinstance(spec, dict) or not isinstance(spec.get("times"), int) or spec["times"] < 1 \
            or set(spec) - {"times", "every"}:
        ctx.error(node, "repeat takes {times: N, every: DURATION} (e.g. {times: 60, every: 1s})")
        return None
    every = WINDOW_RE.match(str(spec.get("every", "0s")))
    if every is None:
        ctx.error(node, "repeat.every is a number and a unit s, m, h or d")
        return None
    step = int(every.group(1)) * WINDOW_UNITS[every.group(2)]
    import pandas as pd

    out = []
    for i in range(spec["times"]):
        for rec in recs:
            copy = {k: (v.replace("{i}", str(i)) if isinstance(v, str) else v) for k, v in rec.items()}
            if "ts" in copy:
                copy["ts"] = (pd.Timestamp(str(copy["ts"])) + pd.Timedelta(seconds=i * step)).isoformat()
            out.append(copy)
    return out


def _content_hash(rule_node: yaml.Node, extra_files: Iterable[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(_value(rule_node), sort_keys=True, ensure_ascii=False, default=str).encode())
    for path in sorted(set(extra_files)):
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def _parse_rule(problems: _Problems, path: str, node: yaml.Node) -> m.Rule | None:
    ctx = _Ctx(path, problems, None, ())
    items = _mapping(ctx, node, "a rule")
    if items is None:
        return None
    if "id" in items:
        rid = _value(items["id"][1])
        ctx.rule_id = str(rid)
        if not isinstance(rid, str) or not ID_RE.match(rid):
            ctx.error(items["id"][1], f"rule id {rid!r} must be dotted lower-case (e.g. objects.gambling.promotion)")
    before = len(problems.items)
    _check_keys(ctx, items, RULE_KEYS, "a rule")
    for key in REQUIRED_RULE_KEYS:
        if key not in items:
            ctx.error(node, f"rule is missing {key!r}")
    v = {k: _value(vn) for k, (_, vn) in items.items() if k not in ("match", "unless", "tests", "aggregate")}
    if "source" not in v:
        return None   # the fields a matcher may name depend on the source: nothing more to check
    # everything else present is checked too, so that one lint run lists every problem
    sources = v["source"] if isinstance(v["source"], list) else [v["source"]]
    bad_sources = [s for s in sources if s not in m.SOURCES]
    if bad_sources or not sources:
        ctx.error(items["source"][1], f"unknown source {bad_sources[0] if bad_sources else ''!r}",
                  hint=f"valid sources: {', '.join(m.SOURCES)}")
        return None
    ctx.sources = tuple(sources)
    if "severity" in v and v["severity"] not in m.SEVERITIES:
        ctx.error(items["severity"][1], f"unknown severity {v['severity']!r}", hint=f"valid: {', '.join(m.SEVERITIES)}")
    if "clause" in v and not re.fullmatch(r"\d+(\.\d+)*", str(v["clause"])):
        ctx.error(items["clause"][1], f"clause {v['clause']!r} must be a clause number of the terms, e.g. \"3.1.3.5.4\"")
    match = parse_matcher(ctx, items["match"][1]) if "match" in items else None
    if "selections" in items or "condition" in items:
        match = _parse_selections(ctx, node, items, match)
    allow, unless = _parse_unless(ctx, items["unless"][1]) if "unless" in items else ((), ())
    aggregate = _parse_aggregate(ctx, items["aggregate"][1]) if "aggregate" in items else None
    check = v.get("check")
    if check is not None:
        if "icp" not in sources:
            ctx.error(items["check"][1], "check rules need source: icp")
        elif check not in CHECKS:
            ctx.error(items["check"][1], f"unknown check {check!r}", hint=f"valid checks: {', '.join(CHECKS)}")
    elif "icp" in sources:
        ctx.error(node, "icp rules name a check", hint=f"valid checks: {', '.join(CHECKS)}")
    if check in CHECKS or str(v.get("category", "")).startswith("site_"):
        from ..licensing.checks import params_problems  # imported here: licensing builds on the rule model

        pnode = items["params"][1] if "params" in items else node
        for message, hint in params_problems(check, str(v["category"]), v.get("params")):
            ctx.error(pnode, message, hint=hint)
    if "match" not in items and "selections" not in items and "aggregate" not in items and check is None:
        ctx.error(node, "rule needs match (or aggregate, or check)")
    subject = v.get("subject")
    if subject is not None:
        _check_field(ctx, items["subject"][1], str(subject))
    tests = _parse_tests(ctx, items["tests"][1], aggregate is not None) if "tests" in items else ()
    if len(problems.items) > before:
        return None
    files = [mm.origin for mm in (m.walk(match) if match else []) if isinstance(mm, m.Keywords) and mm.origin != "inline"]
    files += [mm.path for mm in (m.walk(match) if match else []) if isinstance(mm, m.HashList)]
    return m.Rule(
        id=v["id"], title=str(v["title"]), clause=str(v["clause"]), category=str(v["category"]),
        severity=v["severity"], sources=tuple(sources), match=match, path=path,
        line=node.start_mark.line + 1, content_hash=_content_hash(node, files),
        law=v.get("law"), description=v.get("description"), subject=subject, allow_words=allow,
        unless=unless, aggregate=aggregate, check=check, params=dict(v.get("params") or {}),
        tests=tests, enabled=bool(v.get("enabled", True)),
    )


def _rule_id(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == "id" and isinstance(v, yaml.ScalarNode):
                return str(v.value)
    return None


def rule_files(root: str) -> list[str]:
    """A rule file, or every *.yaml / *.yml below a folder, sorted."""
    if os.path.isfile(root):
        return [root]
    if not os.path.isdir(root):
        raise RuleLoadError([RuleError("no such rule file or folder", location=Location(root),
                                       hint="set rules: in the config or pass a path")])
    return sorted(str(p) for p in Path(root).rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_configured_rules(settings: Any) -> m.RuleSet:
    """The rules a config names: its rules folder and the Sigma rules under ``sigma.folders``."""
    return load_rules(settings.rules_dir, settings.rule_list_paths, sigma_folders=settings.sigma_folders,
                      sigma=settings.sigma)


def _under(path: str, folders: Iterable[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == (f := os.path.realpath(folder)) or real.startswith(f.rstrip(os.sep) + os.sep)
               for folder in folders)


def load_rules(root: str, list_dirs: Iterable[str] = (), *, sigma_folders: Iterable[str] = (),
               sigma: Any = None) -> m.RuleSet:
    """Load every rule file under ``root`` (and, given ``sigma`` settings, every Sigma rule under
    ``sigma_folders``); raise RuleLoadError listing every problem found.

    Lexicons and hash lists are read only from under ``root`` or one of ``list_dirs``."""
    with limits.list_roots(root, tuple(list_dirs)):
        return _load_rules(root, sigma_folders, sigma)


def _load_rules(root: str, sigma_folders: Iterable[str], sigma: Any) -> m.RuleSet:
    problems = _Problems()
    rules: list[m.Rule] = []
    first_seen: dict[str, str] = {}
    sigma_folders = tuple(sigma_folders) if sigma is not None else ()
    for path in rule_files(root):
        if _under(path, sigma_folders):
            continue   # read below as Sigma
        ctx = _Ctx(path, problems, None, ())
        try:
            if os.path.getsize(path) > limits.MAX_FILE_BYTES:
                ctx.error(None, f"larger than {limits.MAX_FILE_BYTES >> 20} MB", hint="split it into several files")
                continue
            text = Path(path).read_text(encoding="utf-8")
            if (bound := limits.check_yaml(path, text)) is not None:   # before anything is expanded
                problems.items.append(bound)
                continue
            doc = yaml.compose(text)
        except UnicodeDecodeError as exc:
            ctx.error(None, f"not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        except OSError as exc:
            ctx.error(None, f"cannot read the rule file: {exc.strerror or exc}",
                      hint="let this user read it (check its permissions), or move it out of the rules folder")
            continue
        except yaml.YAMLError as exc:
            if _sigma_outside(ctx, text, sigma_folders):
                continue
            mark = getattr(exc, "problem_mark", None)
            loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
            problems.items.append(RuleError(f"not valid YAML: {getattr(exc, 'problem', exc)}", location=loc,
                                            hint="fix the YAML syntax (indentation, quotes, colons)"))
            continue
        if doc is None:
            continue
        if _sigma_outside(ctx, text, sigma_folders):
            continue
        top = _mapping(ctx, doc, "a rule file")
        if top is None:
            continue
        _check_keys(ctx, top, ("rules",), "a rule file")
        if "rules" not in top:
            ctx.error(doc, "a rule file holds a list under 'rules:'")
            continue
        seq = top["rules"][1]
        if not isinstance(seq, yaml.SequenceNode):
            ctx.error(seq, "'rules:' must be a list of rules")
            continue
        for rnode in seq.value:
            rid = _rule_id(rnode)
            if rid is not None and rid in first_seen:
                problems.add(path, rnode, f"duplicate rule id {rid!r}, first defined at {first_seen[rid]}",
                             hint="rule ids must be unique across all rule files", rule_id=rid)
            elif rid is not None:
                first_seen[rid] = f"{path}:{rnode.start_mark.line + 1}"
            rule = _parse_rule(problems, path, rnode)
            if rule is not None:
                rules.append(rule)
    skipped: list[Any] = []
    notes: list[str] = []
    if sigma is not None:
        from .sigma import load_sigma   # imported here: the Sigma package builds on this module's model

        loaded = load_sigma(sigma_folders, sigma, taken=set(first_seen))
        problems.items.extend(loaded.problems)
        if sigma.unsupported == "error":
            problems.items.extend(RuleError(f"unsupported: {s.reason}", location=Location(s.path, s.line),
                                            hint="set sigma.unsupported: skip to run the other rules",
                                            rule_id=s.rule_id) for s in loaded.skipped)
        rules.extend(loaded.rules)
        skipped, notes = loaded.skipped, loaded.notes
    if problems.items:
        raise RuleLoadError(problems.items)
    digest = hashlib.sha256("".join(f"{r.id}={r.content_hash};" for r in rules).encode()).hexdigest()
    return m.RuleSet(tuple(rules), digest, tuple(skipped), tuple(notes))


def _sigma_outside(ctx: _Ctx, text: str, sigma_folders: tuple[str, ...]) -> bool:
    """A Sigma document among the project's own rule files: say where it belongs (True if it is one)."""
    from .sigma import is_sigma

    try:
        first = next((d for d in yaml.compose_all(text) if d is not None), None)
    except yaml.YAMLError:
        return False
    if not is_sigma(first):
        return False
    where = ", ".join(sigma_folders) if sigma_folders else "the folders in sigma.folders"
    ctx.error(first, "this is a Sigma rule (detection + logsource): it is read only under sigma.folders",
              hint=f"move it under {where}, or add its folder to sigma.folders in the config")
    return True
