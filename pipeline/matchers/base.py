"""What every matcher kind shares: its declared schema, the registry of kinds, and parse helpers.

A matcher kind is one module under ``pipeline/matchers/`` (``keywords.py``, ``regex.py`` ...) that
defines its rule-model dataclass, the keys it accepts, how it is parsed from the YAML node tree and,
if the engine in ``evaluate.py`` does not already know it, how it is evaluated; it registers one
``MatcherKind`` per YAML name. The loader only asks the registry which kind a mapping is: an unknown
key is an error with ``path:line:column`` listing the kind's keys, an unknown kind lists the kinds.

Parsing walks YAML nodes (not plain dicts) so that each problem carries its place; a parse step that
fails reports through the context and returns None, and loading carries on to report every problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import SafeConstructor

from ..errors import Location, RuleError
from ..records import LOGS, OBJECTS, STREAMS
from ..registry import Registry
from ..rules import limits

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Fields a rule may name, per source. ICP rules name checks, not fields.
SOURCE_FIELDS: dict[str, set[str]] = {
    "objects": set(OBJECTS),
    "logs": set(LOGS),
    "streams": set(STREAMS),
    "icp": set(),
}
MAP_FIELDS = {"labels"}  # fields holding JSON objects, addressable as labels.<name>

Items = dict[str, tuple[yaml.Node, yaml.Node]]   # a mapping's keys → (key node, value node)

_constructor = SafeConstructor()


class Problems:
    """Collects RuleErrors for one load; a parse step that fails returns None and carries on."""

    def __init__(self) -> None:
        self.items: list[RuleError] = []

    def add(self, path: str, node: yaml.Node | None, message: str, hint: str | None = None,
            rule_id: str | None = None) -> None:
        loc = Location(path, node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else Location(path)
        self.items.append(RuleError(message, location=loc, hint=hint, rule_id=rule_id))


@dataclass
class ParseContext:
    """Where a matcher is being parsed: the rule file, the rule and the sources whose fields it may name."""

    path: str
    problems: Problems
    rule_id: str | None
    sources: tuple[str, ...]

    def error(self, node: yaml.Node | None, message: str, hint: str | None = None) -> None:
        self.problems.add(self.path, node, message, hint, self.rule_id)


Parser = Callable[[ParseContext, yaml.Node, Items], Any]
# (engine, matcher, rule, partition, scope) → (row mask, evidence frame). The partition gives
# ``value(field)`` (a map field read as ``labels.x``), ``text(field)`` (URL-decoded log fields) and
# ``df``; ``scope``, when given, is the rows the whole rule matched (evidence may be limited to them);
# ``leaf_evidence`` builds the evidence frame.
Evaluator = Callable[[Any, Any, Any, Any, "np.ndarray | None"], "tuple[np.ndarray, pd.DataFrame]"]


@dataclass(frozen=True)
class MatcherKind:
    """One YAML matcher kind: the key that names it, every key it accepts, and how it is read and run."""

    name: str                              # the YAML key that names the kind (``keywords``, ``any``)
    keys: tuple[str, ...]                  # every key it accepts, in the order the error hint lists them
    parse: Parser                          # (context, node, items) → model object, or None after ctx.error
    types: tuple[type, ...] = ()           # model classes this kind owns (a class has one owner)
    # None: the engine in evaluate.py evaluates the kind's types itself (every built-in kind)
    evaluate: Evaluator | None = None
    files: Callable[[Any], Iterable[str]] | None = None   # list files a model object reads (its content hash)
    example: str = ""                      # a matcher in YAML flow style that parses (docs and tests)
    example_source: str = "objects"        # the source the example's fields belong to
    example_files: dict[str, str] = field(default_factory=dict)   # files the example reads: path → text


MATCHERS: Registry[MatcherKind] = Registry("matcher")
_OWNERS: dict[type, MatcherKind] = {}


def register(kind: MatcherKind) -> MatcherKind:
    """Add a matcher kind; its YAML name and each of its model classes may be registered only once,
    except by the same module imported again (``importlib.reload``, Dask's ``upload_file``), whose
    new kind replaces the old."""
    old = MATCHERS.get(kind.name) if kind.name in MATCHERS else None
    again = old is not None and old.parse.__module__ == kind.parse.__module__
    taken = [t for t in kind.types if t in _OWNERS and not (again and _OWNERS[t] is old)]
    if taken:
        raise ValueError(f"matcher class {taken[0].__name__} already belongs to kind {_OWNERS[taken[0]].name!r}")
    if again:
        unregister(kind.name)
    MATCHERS.register(kind.name)(kind)
    for t in kind.types:
        _OWNERS[t] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (a kind loaded for a test, or replaced by a newer module)."""
    kind = MATCHERS.pop(name)
    for t in kind.types:
        _OWNERS.pop(t, None)


def kinds() -> list[MatcherKind]:
    """Registered kinds in registration order: the built-ins (see __init__) first, as messages list them."""
    return [MATCHERS.get(n) for n in MATCHERS.in_order()]


def owner(matcher: Any) -> MatcherKind | None:
    """The kind that owns a model object's class (None for a class no module registered)."""
    return _OWNERS.get(type(matcher))


def evaluate_registered(engine: Any, node: Any, rule: Any, part: Any,
                        scope: np.ndarray | None) -> tuple[np.ndarray, pd.DataFrame]:
    """Evaluate a matcher the engine has no code for, through its kind's evaluate hook."""
    kind = owner(node)
    if kind is None or kind.evaluate is None:
        raise TypeError(f"unknown matcher {node!r}")  # the loader only builds registered kinds
    return kind.evaluate(engine, node, rule, part, scope)


def leaf_evidence(mask: np.ndarray, field_name: str, kind: str, pattern: str, values: pd.Series) -> pd.DataFrame:
    """Evidence of a leaf's matched rows in the engine's columns (for a registered kind's evaluate hook)."""
    from .evaluate import _leaf_evidence   # the engine imports this module: its helpers come late

    return _leaf_evidence(mask, field_name, kind, pattern, values)


def list_files(matcher: Any) -> list[str]:
    """Every list file (lexicon, hash list) a matcher tree reads, for the rule's content hash."""
    from ..rules.model import walk

    out: list[str] = []
    for node in walk(matcher):
        kind = owner(node)
        if kind is not None and kind.files is not None:
            out.extend(kind.files(node))
    return out


# --- parsing ---------------------------------------------------------------------------------

def value(node: yaml.Node) -> Any:
    """A node's plain Python value (SafeLoader semantics)."""
    return _constructor.construct_object(node, deep=True)


def mapping(ctx: ParseContext, node: yaml.Node, what: str) -> Items | None:
    if not isinstance(node, yaml.MappingNode):
        ctx.error(node, f"{what} must be a mapping")
        return None
    out: Items = {}
    for k, v in node.value:
        key = str(value(k))
        if key in out:
            ctx.error(k, f"key {key!r} given twice in {what}")
        out[key] = (k, v)
    return out


def check_keys(ctx: ParseContext, items: Items, valid: Iterable[str], what: str) -> None:
    valid = list(valid)
    for key, (knode, _) in items.items():
        if key not in valid:
            ctx.error(knode, f"unknown key {key!r} in {what}", hint=f"valid keys: {', '.join(valid)}")


def str_list(ctx: ParseContext, node: yaml.Node, what: str) -> tuple[str, ...] | None:
    got = value(node)
    if isinstance(got, str):
        got = [got]
    if not isinstance(got, list) or not got or not all(isinstance(v, (str, int)) and str(v).strip() for v in got):
        ctx.error(node, f"{what} must be a non-empty list of strings")
        return None
    return tuple(str(v) for v in got)


def check_field(ctx: ParseContext, node: yaml.Node, name: str) -> bool:
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


def text_fields(ctx: ParseContext, items: Items, kind: str) -> tuple[str, ...] | None:
    """The ``fields:`` a text matcher searches, each checked against the rule's sources."""
    if "fields" not in items:
        ctx.error(next(iter(items.values()))[0], f"{kind} needs 'fields': the text fields to search")
        return None
    fields = str_list(ctx, items["fields"][1], "fields")
    if fields is None:
        return None
    fnode = items["fields"][1]
    nodes = fnode.value if isinstance(fnode, yaml.SequenceNode) else [fnode] * len(fields)
    ok = all([check_field(ctx, n, f) for n, f in zip(nodes, fields)])
    return fields if ok else None


def read_list_file(ctx: ParseContext, node: yaml.Node, rel: str) -> tuple[str, list[str]] | None:
    """A lexicon or hash list beside the rule file: (its path, its non-comment lines)."""
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


def _kind_of(ctx: ParseContext, node: yaml.Node, items: Items) -> MatcherKind | None:
    """The one kind a matcher mapping names; a kind whose name is also a key of another kind present
    (``field`` beside ``hash_list``) yields to the more specific one."""
    allowed = kinds()
    names = [k.name for k in allowed]
    present = [k for k in allowed if k.name in items]
    found = [k for k in present if not any(k.name in o.keys for o in present if o is not k)]
    if not found:
        unknown = [k for k in items if k not in names]
        if unknown:
            ctx.error(items[unknown[0]][0], f"unknown matcher key {unknown[0]!r}",
                      hint=f"a matcher is one of: {', '.join(names)}")
            return None
    if len(found) != 1:
        shown = "none" if not found else ", ".join(k.name for k in found)
        ctx.error(node, f"a matcher needs exactly one of {', '.join(names)} (found {shown})")
        return None
    return found[0]


def parse_matcher(ctx: ParseContext, node: yaml.Node) -> Any:
    """A matcher node → its model object (None after reporting why not)."""
    items = mapping(ctx, node, "a matcher")
    if items is None:
        return None
    kind = _kind_of(ctx, node, items)
    if kind is None:
        return None
    check_keys(ctx, items, kind.keys, f"a {kind.name} matcher")
    return kind.parse(ctx, node, items)
