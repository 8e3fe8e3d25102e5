"""``hash_list: path`` with ``field: etag | md5``: exact match against a file of hashes, one a line.

Evaluated by the engine in ``evaluate.py`` (one vectorized ``isin`` over the field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from .base import Items, MatcherKind, ParseContext, check_field, read_list_file, register, value

HASH_FIELDS = ("etag", "md5")


@dataclass(frozen=True)
class HashList:
    """Exact match of a hash field (etag / md5) against a block list file."""

    path: str
    field: str
    hashes: frozenset[str]


def parse_hash_list(ctx: ParseContext, node: yaml.Node, items: Items) -> HashList | None:
    vnode = items["hash_list"][1]
    rel = value(vnode)
    if "field" not in items:
        ctx.error(vnode, "hash_list needs 'field': etag or md5")
        return None
    fnode = items["field"][1]
    fld = value(fnode)
    if fld not in HASH_FIELDS:
        ctx.error(fnode, f"hash_list field must be etag or md5, not {fld!r}")
        return None
    if not check_field(ctx, fnode, fld):
        return None
    if not isinstance(rel, str):
        ctx.error(vnode, "hash_list must be a path to a file of hashes, one a line")
        return None
    loaded = read_list_file(ctx, vnode, rel)
    if loaded is None:
        return None
    path, hashes = loaded
    bad = [h for h in hashes if not re.fullmatch(r"[0-9A-Za-z_\-]{16,128}", h.strip('"'))]
    if bad:
        ctx.error(vnode, f"{rel}: {len(bad)} line(s) are not hashes, first {bad[0]!r}")
        return None
    return HashList(path, fld, frozenset(h.strip('"').lower() for h in hashes))


register(MatcherKind(
    name="hash_list", keys=("hash_list", "field"), parse=parse_hash_list, types=(HashList,),
    files=lambda node: [node.path],
    example="{hash_list: lists/blocked_md5.txt, field: md5}",
    example_files={"lists/blocked_md5.txt": "# known files\n0123456789abcdef0123456789abcdef\n"},
))
