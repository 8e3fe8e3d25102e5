"""``any: [..]``, ``all: [..]`` and ``not: matcher``: combinations of matchers, nested freely.

Evaluated by the engine in ``evaluate.py`` (masks combined with numpy; evidence only from branches
that hold on the row). The ``selections`` + ``condition`` form of a rule compiles into these too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from .base import Items, MatcherKind, ParseContext, parse_matcher, register

if TYPE_CHECKING:
    from ..rules.model import Matcher


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Matcher, ...]


@dataclass(frozen=True)
class AllOf:
    children: tuple[Matcher, ...]


@dataclass(frozen=True)
class Not:
    child: Matcher


def _parse_list(kind: str, build: type) -> Any:
    def parse(ctx: ParseContext, node: yaml.Node, items: Items) -> Any:
        vnode = items[kind][1]
        if not isinstance(vnode, yaml.SequenceNode) or not vnode.value:
            ctx.error(vnode, f"{kind} takes a non-empty list of matchers")
            return None
        children = [parse_matcher(ctx, c) for c in vnode.value]
        if any(c is None for c in children):
            return None
        return build(tuple(children))

    return parse


def parse_not(ctx: ParseContext, node: yaml.Node, items: Items) -> Not | None:
    child = parse_matcher(ctx, items["not"][1])
    return Not(child) if child is not None else None


register(MatcherKind(name="any", keys=("any",), parse=_parse_list("any", AnyOf), types=(AnyOf,),
                     example="{any: [{field: status, equals: 404}, {field: status, equals: 403}]}",
                     example_source="logs"))
register(MatcherKind(name="all", keys=("all",), parse=_parse_list("all", AllOf), types=(AllOf,),
                     example="{all: [{field: method, equals: POST}, {field: bytes_sent, gt: 1000}]}",
                     example_source="logs"))
register(MatcherKind(name="not", keys=("not",), parse=parse_not, types=(Not,),
                     example="{not: {field: mime_type, startswith: 'text/'}}"))
