"""``regex: '...'``: an RE2 expression searched anywhere in text fields (``fields``).

Evaluated by the engine in ``evaluate.py`` (a pyarrow RE2 pass per field, then evidence per hit).
"""

from __future__ import annotations

from dataclasses import dataclass

import re2
import yaml

from .base import Items, MatcherKind, ParseContext, register, text_fields, value

_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # the error is reported with its location; keep RE2's own log off stderr


@dataclass(frozen=True)
class Regex:
    """An RE2 regular expression searched in text fields."""

    pattern: str
    fields: tuple[str, ...]
    decoded: bool = True      # False: search the fields as logged, never URL-decoded (Sigma rules)
    label: str = ""           # what evidence names instead of the pattern (a Sigma rule's own value)


def parse_regex(ctx: ParseContext, node: yaml.Node, items: Items) -> Regex | None:
    vnode = items["regex"][1]
    pattern = value(vnode)
    fields = text_fields(ctx, items, "regex")
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
    return Regex(pattern, fields) if fields else None


register(MatcherKind(
    name="regex", keys=("regex", "fields"), parse=parse_regex, types=(Regex,),
    example=r"""{regex: '(?i)casino-\d{3,}', fields: [key]}""",
))
