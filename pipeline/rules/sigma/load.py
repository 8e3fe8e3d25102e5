"""Sigma rule files as published (SigmaHQ's YAML, unmodified) → rules of the project's own model.

A document with ``detection:`` and ``logsource:`` is a Sigma rule; one with ``correlation:`` is a
Sigma 2 correlation. Each becomes a ``Rule`` whose id is derived from the file name
(``<id_prefix>.<name>``) and whose clause, category, subject and field mapping come from the config
entry for its logsource, so cases, evidence, backtests, enforcement and notices work unchanged.
A rule using what the engine does not run is *unsupported*: listed with the reason, and skipped
(or an error, per ``sigma.unsupported``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ...config import SigmaLogsource, SigmaSettings
from ...errors import Location, RuleError
from .. import model as m
from .detection import Converter, DetectionError, UnsupportedError, py
from .mapping import FieldMapping, per_format

SUFFIXES = (".yml", ".yaml")
META_KEYS = ("id", "name", "title", "status", "level", "description", "author", "date", "modified", "tags",
             "references", "falsepositives", "license", "related", "fields")
WINDOW_RE = re.compile(r"^(\d+)([smhdwMy])$")
WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
T = TypeVar("T")


@dataclass(frozen=True)
class Skipped:
    """A Sigma rule the engine cannot run, and why."""

    rule_id: str
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule_id}] unsupported: {self.reason}"


@dataclass
class SigmaLoad:
    rules: list[m.Rule] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[RuleError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # worth saying once, not errors (unmapped fields)


def is_sigma(node: yaml.Node | None) -> bool:
    """A document that is a Sigma rule or correlation (a mapping with detection + logsource, or correlation)."""
    if not isinstance(node, yaml.MappingNode):
        return False
    keys = {getattr(k, "value", None) for k, _ in node.value}
    return {"detection", "logsource"} <= keys or "correlation" in keys


def sigma_files(folders: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for folder in folders:
        if os.path.isfile(folder):
            out.append(folder)
        elif os.path.isdir(folder):
            out += sorted(str(p) for p in Path(folder).rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return sorted(set(out))


def slug(path: str) -> str:
    """The rule-id part of a file name: lower case, [a-z0-9_], every .yml / .yaml suffix dropped."""
    name = os.path.basename(path)
    while True:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in SUFFIXES:
            break
        name = stem
    s = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    return s or "rule"


def logsource_entry(settings: SigmaSettings, logsource: Any) -> SigmaLogsource | None:
    if not isinstance(logsource, dict):
        return None
    for entry in settings.logsources:
        if all(getattr(entry, k) is None or str(logsource.get(k, "")).lower() == getattr(entry, k).lower()
               for k in ("category", "product", "service")):
            return entry
    return None


def load_sigma(folders: tuple[str, ...], settings: SigmaSettings, taken: set[str] | None = None) -> SigmaLoad:
    """Every Sigma document under ``folders``, converted; ``taken``: rule ids already in use."""
    out = SigmaLoad()
    taken = set(taken or ())
    docs: list[tuple[str, int, str, yaml.MappingNode, str]] = []   # (path, index, rule id, node, file text)
    for path in sigma_files(folders):
        try:
            text = Path(path).read_text(encoding="utf-8")
            nodes = [n for n in yaml.compose_all(text) if n is not None]
        except UnicodeDecodeError as exc:
            out.problems.append(RuleError(f"not UTF-8 ({exc.reason} at byte {exc.start})", location=Location(path)))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            loc = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
            out.problems.append(RuleError(f"not valid YAML: {getattr(exc, 'problem', exc)}", location=loc))
            continue
        for i, node in enumerate(nodes):
            if is_sigma(node) and isinstance(node, yaml.MappingNode):
                docs.append((path, i, "", node, text))
            elif isinstance(node, yaml.MappingNode) and "filter" in {getattr(k, "value", None) for k, _ in node.value}:
                out.skipped.append(Skipped(f"sigma.filter.{slug(path)}", path, _line(node),
                                           "Sigma filter documents (filter: + rules:) are not supported"))
            else:   # a checkout holds other YAML too (CI, configs): not ours to judge
                out.notes.append(f"{path}:{_line(node)}: not a Sigma rule (no detection + logsource): ignored")
    named: dict[str, m.Rule] = {}         # Sigma name / id → converted rule, for correlations
    pending = []
    for path, i, _, node, text in docs:
        base = slug(path) + (f"_{i + 1}" if i else "")
        meta = {k: py(vn) for kn, vn in node.value if (k := str(py(kn))) in META_KEYS or k in
                ("logsource", "correlation", "generate")}
        if "correlation" in meta:
            pending.append((path, base, node, text, meta))
            continue
        entry = logsource_entry(settings, meta.get("logsource"))
        rid = _unique(f"{entry.id_prefix if entry else 'sigma.other'}.{base}", taken)
        rule = _attempt(out, path, node, rid, partial(_convert, path, node, text, rid, meta, entry, settings, out))
        if rule is None:
            continue
        out.rules.append(rule)
        for key in ("id", "name"):
            if meta.get(key):
                named[str(meta[key])] = rule
    from .correlation import convert_correlation, referenced_rules   # builds on the rules converted above

    for path, base, node, text, meta in pending:
        rid = _unique(f"sigma.correlation.{base}", taken)
        found = _attempt(out, path, node, rid,
                         partial(convert_correlation, path, node, text, rid, meta, named, settings))
        if found is not None:
            out.rules.append(found[0])
        corr = meta.get("correlation")
        if "generate" in meta:   # Sigma 2 puts it inside correlation:, where pySigma reads it
            out.notes.append(f"{path}:{_line(node)}: [{rid}] a top-level generate: is ignored; Sigma reads "
                             "correlation.generate")
        if isinstance(corr, dict) and corr.get("generate") is True:
            continue
        # the referenced rules feed the correlation and open no cases of their own (Sigma's
        # generate: false), also when the correlation itself cannot run
        ids = {r.id for r in (found[1] if found is not None else referenced_rules(meta, named))}
        if found is None and ids:
            out.notes.append(f"{path}:{_line(node)}: [{rid}] cannot run, so the rules it correlates open no cases "
                             f"of their own either (generate: false): {', '.join(sorted(ids))}")
        out.rules = [replace(r, enabled=False) if r.id in ids else r for r in out.rules]
    return out


def _attempt(out: SigmaLoad, path: str, node: yaml.MappingNode, rid: str, convert: Callable[[], T]) -> T | None:
    """``convert()``, or None with its problem recorded: unreadable (an error) or unsupported (skipped)."""
    try:
        return convert()
    except DetectionError as exc:
        out.problems.append(RuleError(str(exc), location=_loc(path, exc.node or node), rule_id=rid))
    except UnsupportedError as exc:
        out.skipped.append(Skipped(rid, path, _line(exc.node or node), str(exc)))
    return None


def _convert(path: str, node: yaml.MappingNode, text: str, rid: str, meta: dict[str, Any],
             entry: SigmaLogsource | None, settings: SigmaSettings, out: SigmaLoad) -> m.Rule:
    if entry is None:
        raise UnsupportedError(f"logsource {meta.get('logsource')!r} has no entry in sigma.logsources", node)
    level = str(meta.get("level") or "")
    severity = settings.level_severity.get(level.lower(), "medium")
    mapping = FieldMapping.of(entry)
    uuid = str(meta.get("id") or "")
    det = next(vn for kn, vn in node.value if py(kn) == "detection")
    convs: list[Converter] = []

    def convert(fields: dict[str, str | None]) -> tuple[m.Matcher, dict[str, str]]:
        convs.append(Converter(fields, f"{uuid or rid} (level {level or 'none'})"))
        return convs[-1].detection(det), dict(convs[-1].used)

    match, used, by_format = per_format(mapping, convert)
    for where, note in convs[0].notes:   # the default mapping's: the formats' would repeat them
        out.notes.append(f"{path}:{_line(where)}: [{rid}] {note}")
    if not meta.get("title"):
        raise DetectionError("a Sigma rule needs a title", node)
    sigma_meta = {k: meta[k] for k in META_KEYS if k in meta}
    sigma_meta["logsource"] = meta.get("logsource")
    sigma_meta["field_mapping"] = used
    if by_format:
        sigma_meta["field_mapping_by_format"] = by_format
    return m.Rule(
        id=rid, title=str(meta["title"]), clause=entry.clause, category=entry.rule_category, severity=severity,
        sources=("logs",), match=match, path=path, line=node.start_mark.line + 1,
        content_hash=content_hash(text, node, {"*": used, **by_format}), description=_text(meta.get("description")),
        subject=entry.subject, meta={"sigma": sigma_meta},
    )


def content_hash(text: str, node: yaml.Node, fields: dict[str, Any]) -> str:
    """The document as written plus the columns its fields read: either changing is a new rule (a
    mapping change for fields the rule does not use leaves it as it was)."""
    h = hashlib.sha256()
    h.update(json.dumps(py(node), sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(json.dumps(fields, sort_keys=True).encode())
    return h.hexdigest()


def window_seconds(value: Any) -> int | None:
    mt = WINDOW_RE.match(str(value).strip())
    if mt is None or mt.group(2) not in WINDOW_UNITS:
        return None
    return int(mt.group(1)) * WINDOW_UNITS[mt.group(2)]


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip()


def _unique(rid: str, taken: set[str]) -> str:
    out, n = rid, 2
    while out in taken:
        out, n = f"{rid}_{n}", n + 1
    taken.add(out)
    return out


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _loc(path: str, node: yaml.Node | None) -> Location:
    if node is None:
        return Location(path)
    return Location(path, node.start_mark.line + 1, node.start_mark.column + 1)
