"""Bounds on what a rule file may make the loader do, checked before anything is expanded.

A YAML file of a few hundred bytes can name an anchor that aliases expand a billion times, or
nest a thousand levels deep; composing or constructing it would take minutes and gigabytes, or
overflow the stack. ``check_yaml`` walks the parser's event stream once, without building any
node, counting what aliases would expand to; the first bound passed is one located error.

Lexicons and hash lists are read only from under the rules folder or a folder the config names
(``rule_list_dirs``): a rule file must not turn any file on the host into evidence.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence

from typing import Any

import yaml

from ..errors import Location, RuleError

MAX_FILE_BYTES = 8 << 20      # a rule file (or a lexicon) larger than this is refused unread
MAX_NODES = 500_000           # YAML nodes once every alias is expanded, per file
MAX_DEPTH = 64                # nested mappings / lists
MAX_VALUE_CHARS = 64 * 1024   # one scalar (a regex, a keyword, a description)

_HINT_ALIASES = "use fewer or smaller anchors (*alias): the loader refuses files that expand past this bound"


def check_yaml(path: str, text: str) -> RuleError | None:
    """The first bound ``text`` passes (expanded size, depth, value length), or None."""
    sizes: dict[str, int] = {}
    stack: list[list[object]] = []   # [anchor, nodes so far] of each open mapping / sequence
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            n = 0
            if isinstance(event, yaml.ScalarEvent):
                if len(event.value) > MAX_VALUE_CHARS:
                    return _error(path, mark, f"value of {len(event.value)} characters, more than {MAX_VALUE_CHARS}",
                                  "keep values short; put long keyword lists in a lexicon file")
                n = 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                n = sizes.get(event.anchor or "", 1)
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                stack.append([event.anchor, 1])
                if len(stack) > MAX_DEPTH:
                    return _error(path, mark, f"nested more than {MAX_DEPTH} levels deep",
                                  "flatten the rule: split deep any/all/not trees into several rules")
                continue
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                anchor, count = stack.pop()
                n = int(count)  # type: ignore[call-overload]
                if anchor:
                    sizes[str(anchor)] = n
            else:
                continue
            if stack:
                stack[-1][1] = int(stack[-1][1]) + n  # type: ignore[call-overload]
                if int(stack[-1][1]) > MAX_NODES:  # type: ignore[call-overload]
                    return _error(path, mark, f"aliases expand past {MAX_NODES} YAML nodes", _HINT_ALIASES)
            else:
                total += n
                if total > MAX_NODES:
                    return _error(path, mark, f"aliases expand past {MAX_NODES} YAML nodes", _HINT_ALIASES)
    except yaml.YAMLError:
        return None   # a syntax error: composing reports it with its place
    return None


def _error(path: str, mark: Any, message: str, hint: str) -> RuleError:
    loc = Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path)
    return RuleError(message, location=loc, hint=hint)


# -- where lexicons and hash lists may lie -------------------------------------------------------

_ROOTS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("rule_list_roots", default=())


@contextlib.contextmanager
def list_roots(rules_root: str, extra: Sequence[str] = ()) -> Iterator[None]:
    """While loading rules from ``rules_root``: the folders list files may be read from."""
    base = rules_root if os.path.isdir(rules_root) else os.path.dirname(rules_root) or "."
    token = _ROOTS.set(tuple(os.path.realpath(p) for p in (base, *extra)))
    try:
        yield
    finally:
        _ROOTS.reset(token)


def outside_roots(path: str) -> str | None:
    """Why ``path`` may not be read as a lexicon or hash list, or None when it may."""
    roots = _ROOTS.get()
    if not roots:
        return None
    real = os.path.realpath(path)
    if any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        return None
    return (f"{path} lies outside the rules folder" + (f" ({roots[0]})" if roots else "")
            + (f" and the configured rule_list_dirs ({', '.join(roots[1:])})" if len(roots) > 1 else ""))
