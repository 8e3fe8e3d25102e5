"""Load rule files into a RuleSet, reporting every problem in every file at once with its place.

Parsing walks the YAML node tree (not plain dicts) so that each problem carries
``path:line:column``. This module reads rule files and the keys of a rule; each matcher kind
(``pipeline/matchers/<kind>.py``) declares and parses its own keys, found through the registry in
``pipeline.matchers.base``. An unknown key is an error listing the valid ones — a silently ignored
key could make a rule match everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..errors import Location, RuleError, RuleLoadError
from ..matchers.aggregate_rule import WINDOW_RE, WINDOW_UNITS, parse_aggregate
from ..matchers.base import (MAP_FIELDS, SOURCE_FIELDS, Items, ParseContext, Problems, check_field, check_keys,
                             list_files, mapping, parse_matcher, str_list, value)
from . import limits
from . import model as m
from .condition import ConditionError, compile_condition

__all__ = ["SOURCE_FIELDS", "MAP_FIELDS", "CHECKS", "RULE_KEYS", "REQUIRED_RULE_KEYS", "parse_matcher",
           "rule_files", "load_configured_rules", "load_rules", "WINDOW_RE", "WINDOW_UNITS"]

CHECKS = ("unfiled_domain_serving", "filing_limited", "licence_missing",
          "entity_mismatch", "declared_filing_mismatch")

RULE_KEYS = ("id", "title", "description", "clause", "law", "category", "severity", "source", "selections", "condition",
             "subject", "match", "unless", "aggregate", "check", "params", "tests", "enabled",
             "author", "references")
REQUIRED_RULE_KEYS = ("id", "title", "clause", "category", "severity", "source")
ID_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")

# the names this module used before the matcher kinds moved out
_Ctx = ParseContext
_Problems = Problems


def _parse_unless(ctx: ParseContext, node: yaml.Node) -> tuple[tuple[str, ...], tuple[m.Matcher, ...]]:
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, "unless takes a list of exceptions (allow_words, or matchers)")
        return (), ()
    allow: list[str] = []
    others: list[m.Matcher] = []
    for item in node.value:
        items = mapping(ctx, item, "an exception")
        if items is None:
            continue
        if "allow_words" in items:
            check_keys(ctx, items, ("allow_words",), "allow_words")
            words = str_list(ctx, items["allow_words"][1], "allow_words")
            allow.extend(words or ())
            continue
        parsed = parse_matcher(ctx, item)
        if parsed is not None:
            others.append(parsed)
    return tuple(allow), tuple(others)


def _parse_selections(ctx: ParseContext, node: yaml.Node, items: Items,
                      match: m.Matcher | None) -> m.Matcher | None:
    """``selections`` + ``condition``: named matchers combined by an expression (see rules/condition.py)."""
    if match is not None or "match" in items:
        ctx.error(items["match"][0], "give either match or selections + condition, not both")
        return None
    if "selections" not in items or "condition" not in items:
        ctx.error(node, "selections and condition go together")
        return None
    sel = mapping(ctx, items["selections"][1], "selections")
    if sel is None or not sel:
        ctx.error(items["selections"][1], "selections is a mapping of name: matcher")
        return None
    parsed = {name: parse_matcher(ctx, vnode) for name, (_, vnode) in sel.items()}
    if any(v is None for v in parsed.values()):
        return None
    cnode = items["condition"][1]
    text = value(cnode)
    if not isinstance(text, str) or not text.strip():
        ctx.error(cnode, "condition is an expression over the selection names, e.g. \"a and not b\"")
        return None
    try:
        return compile_condition(text, {k: v for k, v in parsed.items() if v is not None})
    except ConditionError as exc:
        ctx.error(cnode, f"condition: {exc}", hint="operators: and, or, not, ( ), 1 of NAME*, all of them")
        return None


def _parse_tests(ctx: ParseContext, node: yaml.Node, aggregate: bool) -> tuple[m.RuleTest, ...]:
    if not isinstance(node, yaml.SequenceNode):
        ctx.error(node, "tests takes a list of {record, expect}")
        return ()
    out = []
    known = set().union(*(SOURCE_FIELDS.get(s, set()) for s in ctx.sources))
    for tnode in node.value:
        items = mapping(ctx, tnode, "a test")
        if items is None:
            continue
        check_keys(ctx, items, ("record", "records", "expect", "name", "repeat"), "a test")
        expect = value(items["expect"][1]) if "expect" in items else None
        if expect not in ("match", "no_match"):
            ctx.error(items.get("expect", (tnode, tnode))[1], "expect must be match or no_match")
            continue
        if "record" in items:
            recs = [value(items["record"][1])]
        elif "records" in items:
            recs = value(items["records"][1])
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


def _repeat(ctx: ParseContext, node: yaml.Node, recs: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Expand ``repeat: {times: N, every: 1s}``: N copies of the records, ``ts`` moved on by ``every``
    each time and ``{i}`` in string values replaced by the copy's number (for aggregate-rule tests)."""
    spec = value(node)
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
    h.update(json.dumps(value(rule_node), sort_keys=True, ensure_ascii=False, default=str).encode())
    for path in sorted(set(extra_files)):
        h.update(Path(path).read_bytes())
    return h.hexdigest()


# libyaml's parser, when PyYAML was built with it, composes rule files ten times faster; its nodes carry
# the same tags and (line, column) marks. A file it rejects is parsed again in Python, whose error
# messages the problems quote.
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)


def _compose(text: str) -> yaml.Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text)


def _parse_rule(problems: Problems, path: str, node: yaml.Node) -> m.Rule | None:
    ctx = ParseContext(path, problems, None, ())
    items = mapping(ctx, node, "a rule")
    if items is None:
        return None
    if "id" in items:
        rid = value(items["id"][1])
        ctx.rule_id = str(rid)
        if not isinstance(rid, str) or not ID_RE.match(rid):
            ctx.error(items["id"][1], f"rule id {rid!r} must be dotted lower-case (e.g. objects.gambling.promotion)")
    before = len(problems.items)
    check_keys(ctx, items, RULE_KEYS, "a rule")
    for key in REQUIRED_RULE_KEYS:
        if key not in items:
            ctx.error(node, f"rule is missing {key!r}")
    v = {k: value(vn) for k, (_, vn) in items.items() if k not in ("match", "unless", "tests", "aggregate")}
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
    aggregate = parse_aggregate(ctx, items["aggregate"][1]) if "aggregate" in items else None
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
        for message, hint in params_problems(check, str(v.get("category", "")), v.get("params")):
            ctx.error(pnode, message, hint=hint)
    if "match" not in items and "selections" not in items and "aggregate" not in items and check is None:
        ctx.error(node, "rule needs match (or aggregate, or check)")
    subject = v.get("subject")
    if subject is not None:
        check_field(ctx, items["subject"][1], str(subject))
    tests = _parse_tests(ctx, items["tests"][1], aggregate is not None) if "tests" in items else ()
    if len(problems.items) > before:
        return None
    files = list_files(match) if match else []   # lexicons and hash lists: a changed list is a changed rule
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
    problems = Problems()
    rules: list[m.Rule] = []
    first_seen: dict[str, str] = {}
    sigma_folders = tuple(sigma_folders) if sigma is not None else ()
    for path in rule_files(root):
        if _under(path, sigma_folders):
            continue   # read below as Sigma
        ctx = ParseContext(path, problems, None, ())
        try:
            if os.path.getsize(path) > limits.MAX_FILE_BYTES:
                ctx.error(None, f"larger than {limits.MAX_FILE_BYTES >> 20} MB", hint="split it into several files")
                continue
            text = Path(path).read_text(encoding="utf-8")
            if (bound := limits.check_yaml(path, text)) is not None:   # before anything is expanded
                problems.items.append(bound)
                continue
            doc = _compose(text)
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
        top = mapping(ctx, doc, "a rule file")
        if top is None:
            continue
        check_keys(ctx, top, ("rules",), "a rule file")
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


def _sigma_outside(ctx: ParseContext, text: str, sigma_folders: tuple[str, ...]) -> bool:
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
