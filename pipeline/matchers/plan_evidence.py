"""Evidence under a compiled plan: only for a rule's matched rows, and only from the branches that held.

The tree-walking evaluator builds every branch's evidence over every row and then drops what the
rule's mask or an enclosing ``all`` rejects; what survives is, per leaf outside any ``not``, the rows
where the rule matched, every enclosing ``all`` held and the leaf itself matched. This walk computes
just that: an ``all`` narrows the rows its children see, an ``any`` passes them on, a ``not`` gives
none. Frames come in the same order (leaves depth first, a leaf's fields in order, rows ascending) and
of the same columns, so the hit rows' evidence is the reference's, byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from ..rules import model as m

if TYPE_CHECKING:
    from .plan import _Run


def rule_evidence(run: _Run, rule: m.Rule, mask: np.ndarray) -> pd.DataFrame:
    from .evaluate import EVIDENCE_COLUMNS, _empty_evidence

    frames: list[pd.DataFrame] = []
    _walk(run, rule, rule.match, np.flatnonzero(mask), frames)   # type: ignore[arg-type]
    if not frames:
        return _empty_evidence()
    ev = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return ev[EVIDENCE_COLUMNS]


def _walk(run: _Run, rule: m.Rule, node: m.Matcher, rows: np.ndarray, frames: list[pd.DataFrame]) -> None:
    if not len(rows) or isinstance(node, m.Not):
        return
    if isinstance(node, m.AllOf):
        rows = rows[run.at(node, rule, rows)]
        for c in node.children:
            _walk(run, rule, c, rows, frames)
        return
    if isinstance(node, m.AnyOf):
        for c in node.children:
            _walk(run, rule, c, rows, frames)
        return
    if isinstance(node, m.Regex):
        _regex(run, node, rows, frames)
    elif isinstance(node, m.Keywords):
        ev = run.plan.compiled._keywords(node, rule, run.part).evidence
        if len(ev):
            inside = np.zeros(run.n, dtype=bool)
            inside[rows] = True
            ev = ev[inside[ev["row"].to_numpy(dtype=np.int64)]]
            if len(ev):
                frames.append(ev.reset_index(drop=True))
    elif isinstance(node, m.FieldCondition):
        _values(run, rows[run.leaf(node, rule)[rows]], node.field, node.op, repr(node.value),
                run.part.value(node.field), frames)
    elif isinstance(node, m.HashList):
        _values(run, rows[run.leaf(node, rule)[rows]], node.field, "hash_list", node.path,
                run.part.value(node.field).astype("string"), frames)


def _values(run: _Run, rows: np.ndarray, name: str, kind: str, pattern: str, values: pd.Series,
            frames: list[pd.DataFrame]) -> None:
    if len(rows):
        frames.append(pd.DataFrame({"row": rows, "field": name, "kind": kind, "pattern": pattern,
                                    "text": [str(values.iat[r]) for r in rows], "start": None, "end": None}))


def _regex(run: _Run, node: m.Regex, rows: np.ndarray, frames: list[pd.DataFrame]) -> None:
    compiled = run.plan.compiled._regex[node.pattern]
    out_rows, fields, texts, starts, ends = [], [], [], [], []
    for name in node.fields:
        key = (name, node.decoded)
        at = rows[run.regex_mask(node.pattern, key)[rows]]
        if not len(at):
            continue
        for r, text in zip(at.tolist(), run.text(key).take(pa.array(at)).to_pylist()):
            mt = compiled.search(text)
            if mt is None:
                continue
            out_rows.append(r); fields.append(name); texts.append(mt.group(0))
            starts.append(mt.start()); ends.append(mt.end())
    if out_rows:
        kind, shown = ("sigma", node.label) if node.label else ("regex", node.pattern)
        frames.append(pd.DataFrame({"row": out_rows, "field": fields, "kind": kind, "pattern": shown,
                                    "text": texts, "start": starts, "end": ends}))
