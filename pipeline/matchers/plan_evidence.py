"""Evidence under a compiled plan: only for a rule's matched rows, and only from the branches that held.

The tree-walking evaluator builds every branch's evidence over every row and then drops what the
rule's mask or an enclosing ``all`` rejects; what survives is, per leaf outside any ``not``, the rows
where the rule matched, every enclosing ``all`` held and the leaf itself matched. This walk computes
just that: an ``all`` narrows the rows its children see, an ``any`` passes them on, a ``not`` gives
none. Frames come in the same order (leaves depth first, a leaf's fields in order, rows ascending) and
of the same columns, so the hit rows' evidence is the reference's, byte for byte. A rule's evidence
is gathered as columns of Python values and made one frame: a frame per leaf cost more than the rest.
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

    cols: dict[str, list] = {c: [] for c in EVIDENCE_COLUMNS}
    _walk(run, rule, rule.match, np.flatnonzero(mask), cols)   # type: ignore[arg-type]
    if not cols["row"]:
        return _empty_evidence()
    return pd.DataFrame(cols)


def _add(cols: dict[str, list], rows: list, name: str | list, kind: str | list, pattern: str | list, texts: list,
         starts: list | None, ends: list | None) -> None:
    n = len(rows)
    cols["row"].extend(rows)
    cols["field"].extend(name if isinstance(name, list) else [name] * n)
    cols["kind"].extend(kind if isinstance(kind, list) else [kind] * n)
    cols["pattern"].extend(pattern if isinstance(pattern, list) else [pattern] * n)
    cols["text"].extend(texts)
    cols["start"].extend(starts if starts is not None else [None] * n)
    cols["end"].extend(ends if ends is not None else [None] * n)


def _walk(run: _Run, rule: m.Rule, node: m.Matcher, rows: np.ndarray, frames: dict[str, list]) -> None:
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
                _add(frames, ev["row"].tolist(), ev["field"].tolist(), "keywords", ev["pattern"].tolist(),
                     ev["text"].tolist(), ev["start"].tolist(), ev["end"].tolist())
    elif isinstance(node, m.FieldCondition):
        _values(run, rows[run.leaf(node, rule)[rows]], node.field, node.op, repr(node.value),
                run.part.value(node.field), frames)
    elif isinstance(node, m.HashList):
        _values(run, rows[run.leaf(node, rule)[rows]], node.field, "hash_list", node.path,
                run.part.value(node.field).astype("string"), frames)
    else:   # a registered kind without a compiled form: the evidence its own hook gave
        ev = run.other(node, rule).evidence
        ev = ev[np.isin(ev["row"].to_numpy(dtype=np.int64), rows)]
        if len(ev):
            _add(frames, ev["row"].tolist(), ev["field"].tolist(), ev["kind"].tolist(), ev["pattern"].tolist(),
                 ev["text"].tolist(), ev["start"].tolist(), ev["end"].tolist())


def _values(run: _Run, rows: np.ndarray, name: str, kind: str, pattern: str, values: pd.Series,
            frames: dict[str, list]) -> None:
    if len(rows):
        _add(frames, rows.tolist(), name, kind, pattern, [str(values.iat[r]) for r in rows], None, None)


def _regex(run: _Run, node: m.Regex, rows: np.ndarray, frames: dict[str, list]) -> None:
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
        _add(frames, out_rows, fields, kind, shown, texts, starts, ends)
