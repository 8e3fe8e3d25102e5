"""Keyword matchers: ``keywords: [..]`` inline or ``keywords_file: path`` (one keyword a line).

Evaluated by the engine in ``evaluate.py``: every keyword of every rule goes into one automaton per
normalization mode, run once per text field and partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .base import Items, MatcherKind, ParseContext, read_list_file, register, str_list, text_fields, value


@dataclass(frozen=True)
class Keywords:
    """Keyword search (``keywords`` or ``keywords_file``) over text fields."""

    words: tuple[str, ...]
    fields: tuple[str, ...]
    normalize: bool = True
    origin: str = ""          # "inline" or the lexicon file's path, for evidence and lint


@dataclass(frozen=True)
class AllowWords:
    """Only inside ``unless``: keyword hits lying wholly inside one of these phrases are suppressed."""

    words: tuple[str, ...]


def _normalize_flag(ctx: ParseContext, items: Items) -> bool:
    if "normalize" not in items:
        return True
    flag = value(items["normalize"][1])
    if not isinstance(flag, bool):
        ctx.error(items["normalize"][1], "normalize must be true or false")
        return True
    return flag


def _empty_after_normalizing(ctx: ParseContext, node: yaml.Node, words: tuple[str, ...], flag: bool) -> bool:
    # the folding table alone answers it (no compiled kernel); loaded only once a rule has keywords
    from ..normalize.reference import blank_once_normalized

    blank = blank_once_normalized(words) if flag else [not w.strip() for w in words]
    empty = [w for w, is_blank in zip(words, blank) if is_blank]
    if empty:
        ctx.error(node, f"keyword {empty[0]!r} is empty once normalized (only separators or zero-width characters)",
                  hint="remove it, or set normalize: false to match it literally")
    return bool(empty)


def parse_keywords(ctx: ParseContext, node: yaml.Node, items: Items) -> Keywords | None:
    words = str_list(ctx, items["keywords"][1], "keywords")
    fields = text_fields(ctx, items, "keywords")
    if words is None or fields is None:
        return None
    flag = _normalize_flag(ctx, items)
    if _empty_after_normalizing(ctx, items["keywords"][1], words, flag):
        return None
    return Keywords(words, fields, flag, "inline")


def parse_keywords_file(ctx: ParseContext, node: yaml.Node, items: Items) -> Keywords | None:
    vnode = items["keywords_file"][1]
    rel = value(vnode)
    fields = text_fields(ctx, items, "keywords_file")
    if not isinstance(rel, str):
        ctx.error(vnode, "keywords_file must be a path")
        return None
    loaded = read_list_file(ctx, vnode, rel)
    if loaded is None or fields is None:
        return None
    path, words = loaded
    if not words:
        ctx.error(vnode, f"{rel} holds no keywords", hint="one keyword a line; '#' starts a comment")
        return None
    flag = _normalize_flag(ctx, items)
    if _empty_after_normalizing(ctx, vnode, tuple(words), flag):
        return None
    return Keywords(tuple(words), fields, flag, path)


def _lexicon(node: Keywords) -> list[str]:
    return [] if node.origin == "inline" else [node.origin]


register(MatcherKind(
    name="keywords", keys=("keywords", "fields", "normalize"), parse=parse_keywords,
    types=(Keywords,), files=_lexicon,
    example="{keywords: [博彩, casino], fields: [key, title], normalize: true}",
))
register(MatcherKind(
    name="keywords_file", keys=("keywords_file", "fields", "normalize"), parse=parse_keywords_file,
    example="{keywords_file: lexicons/gambling.txt, fields: [key]}",
    example_files={"lexicons/gambling.txt": "# gambling\n老虎机\nslots\n"},
))
