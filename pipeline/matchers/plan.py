"""The compiled plan: a source's whole rule set evaluated in one pass per field, not rules × leaves.

At build time every regular-expression leaf of every rule is read for its literals
(``plan_literals``): all literals over one field go into one automaton, so each field is scanned once
per batch whatever the number of rules. Sigma's contains / startswith / endswith / equals of one
literal are decided from where the literals occur; other expressions are confirmed with RE2 only on
the rows holding one of their gate literals. Each rule carries a gate, the literals (and keyword
hits) it cannot match without, so its condition is computed only on the rows that reach it, as
logical operations over leaf masks. Conditions without literals (numbers, ``exists``, CIDR) are
computed once per distinct condition. Evidence is built by the tree-walking evaluator
(``evaluate.CompiledRules``), the reference, on the matched rows only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..rules import model as m
from .plan_evidence import rule_evidence
from .percent import holds_percent, unquote_many
from .plan_literals import Analysis, analyze
from .plan_scan import FieldLiterals, LiteralHits

if TYPE_CHECKING:
    from .evaluate import CompiledRules, _Partition, _Result

TextKey = tuple[str, bool]          # (field, decoded): the text a regex leaf reads
_EMPTY = np.zeros(0, dtype=np.int64)
_FEW = 512     # candidates up to which RE2 runs row by row on an expression compiled once


def _union(parts: list[np.ndarray], n: int | None = None) -> np.ndarray:
    """Sorted distinct members of sorted distinct arrays."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return _EMPTY
    if len(parts) == 1:
        return parts[0]
    total = sum(len(p) for p in parts)
    if n is not None and total * 8 > n:   # many rows: marking them costs less than sorting them
        mark = np.zeros(n, dtype=bool)
        for p in parts:
            mark[p] = True
        return np.flatnonzero(mark)
    return np.unique(np.concatenate(parts))


def _intersect(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    if len(a) > len(b):
        a, b = b, a
    if len(b) * 8 > n:
        mark = np.zeros(n, dtype=bool)
        mark[b] = True
        return a[mark[a]]
    return np.intersect1d(a, b, assume_unique=True)


@dataclass(frozen=True)
class Atom:
    """Rows where one literal occurs in one field (``eq``: the whole value), or a keyword leaf hits."""

    kind: str                        # "lit", "eq" or "kw"
    key: Any                         # TextKey, or the keyword leaf's cache key
    index: int = 0


@dataclass(frozen=True)
class Gate:
    """``any``: rows of any atom; ``all``: rows every sub-gate lets through."""

    op: str
    items: tuple[Union[Atom, "Gate"], ...]


@dataclass
class _RegexPlan:
    analysis: Analysis
    exact: list[tuple[str, int]] = field(default_factory=list)    # (where, literal index) per alternative
    gate: list[int] = field(default_factory=list)                 # literal indexes (anywhere)


class Plan:
    """Built once per process beside the reference evaluator it answers for."""

    def __init__(self, compiled: CompiledRules) -> None:
        self.compiled = compiled
        self.fields: dict[TextKey, FieldLiterals] = {}
        self._regex: dict[tuple[str, TextKey], _RegexPlan] = {}
        self.gates: dict[str, Gate | None] = {}
        self.keyword_leaves: dict[tuple[int, str], tuple[m.Keywords, m.Rule]] = {}
        self.decoded: set[str] = set()   # fields some leaf reads URL-decoded (keywords, starter regexes)
        for rule in compiled.rules:
            for tree in [*((rule.match,) if rule.match is not None else ()), *rule.unless]:
                for leaf in m.walk(tree):
                    if isinstance(leaf, m.Keywords):
                        self.keyword_leaves.setdefault(self._kw_key(leaf, rule), (leaf, rule))
                        self.decoded.update(leaf.fields)
                    if isinstance(leaf, m.Regex) and leaf.decoded:
                        self.decoded.update(leaf.fields)
                    if isinstance(leaf, m.Regex):
                        for name in leaf.fields:
                            self._regex_plan(leaf.pattern, (name, leaf.decoded))
            self.gates[rule.id] = self._gate(rule.match, rule) if rule.match is not None else None
        for lits in self.fields.values():
            lits.build()

    # -- build -----------------------------------------------------------------------------------

    def _regex_plan(self, pattern: str, key: TextKey) -> _RegexPlan:
        if (pattern, key) in self._regex:
            return self._regex[(pattern, key)]
        analysis = analyze(pattern)
        lits = self.fields.setdefault(key, FieldLiterals())
        plan = _RegexPlan(analysis)
        if analysis.exact is not None:
            for alt in analysis.exact:
                if alt.start and alt.end:
                    plan.exact.append(("eq", lits.equal(alt.literal)))
                else:
                    where = "start" if alt.start else "end" if alt.end else "any"
                    plan.exact.append((where, lits.anywhere(alt.literal)))
        if analysis.gate is not None:
            plan.gate = [lits.anywhere(x) for x in analysis.gate]
        self._regex[(pattern, key)] = plan
        return plan

    def _gate(self, node: m.Matcher, rule: m.Rule) -> Gate | None:
        """What rows ``node`` may hold on: a superset of its matches, from literals alone (None: any row)."""
        if isinstance(node, m.Regex):
            atoms: list[Atom | Gate] = []
            for name in node.fields:
                key = (name, node.decoded)
                plan = self._regex[(node.pattern, key)]
                if plan.analysis.exact is not None:
                    atoms += [Atom("eq", key, i) if where == "eq" else Atom("lit", key, i) for where, i in plan.exact]
                elif plan.analysis.gate is not None:
                    atoms += [Atom("lit", key, i) for i in plan.gate]
                else:
                    return None
            return Gate("any", tuple(atoms))
        if isinstance(node, m.Keywords):
            return Gate("any", (Atom("kw", self._kw_key(node, rule)),))
        if isinstance(node, m.AnyOf):
            subs = [self._gate(c, rule) for c in node.children]
            return None if any(s is None for s in subs) else Gate("any", tuple(subs))   # type: ignore[arg-type]
        if isinstance(node, m.AllOf):
            kept: list[Atom | Gate] = []
            for c in node.children:
                sub = self._gate(c, rule)
                if sub is not None:
                    kept.append(sub)
            return Gate("all", tuple(kept)) if kept else None
        return None   # Not, field conditions, hash lists: no literal to wait for

    def _kw_key(self, node: m.Keywords, rule: m.Rule) -> tuple[int, str]:
        # allowed phrases suppress hits per rule: a keyword leaf's rows depend on its rule then
        return (id(node), rule.id if rule.allow_words and node.normalize else "")

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate_all(self, df: pd.DataFrame) -> tuple[list[tuple[m.Rule, np.ndarray, pd.DataFrame]],
                                                      dict[str, np.ndarray]]:
        """As ``CompiledRules.evaluate_all``: record rules' (rule, mask, evidence), aggregate rules' masks."""
        from .evaluate import _empty_evidence

        none = _empty_evidence()   # one frame for every rule without a hit: it is only read
        run = _Run(self, self.partition(df))
        masks = {rule.id: run.rule_mask(rule) for rule in self.compiled.rules}
        records = [(rule, masks.pop(rule.id)) for rule in self.compiled.rules
                   if rule.aggregate is None and rule.match is not None]
        out = []
        for rule, mask in records:
            ev = rule_evidence(run, rule, mask) if mask.any() else none
            out.append((rule, mask, ev))
        return out, masks

    def match_mask(self, rule: m.Rule, df: pd.DataFrame) -> np.ndarray:
        return _Run(self, self.partition(df)).rule_mask(rule)

    def partition(self, df: pd.DataFrame) -> _Partition:
        """The reference's partition with its keyword hits (``CompiledRules._scan``), URL-decoded
        fields decoded once per distinct value rather than once per row."""
        from .evaluate import DECODED_FIELDS, _Partition
        from .keyword_engine import LIST_FIELDS, items_apart

        compiled = self.compiled
        part = _Partition(df.reset_index(drop=True), compiled.source)
        missing = {name for name, _ in self.fields} | self.decoded
        for name in missing - set(part.df.columns):   # all missing, as the reference has it, made at once
            part.texts[name] = part.texts[name + "\0as-logged"] = pd.Series(pd.NA, index=range(len(part.df)),
                                                                             dtype="string")
        for name in DECODED_FIELDS.get(compiled.source, ()):
            if name in self.decoded and name in part.df.columns:
                part.texts[name] = _decoded(part.df[name])
        for flag, backend in compiled._backends.items():
            for name in sorted(compiled._fields[flag]):
                text = part.text(name)
                if name in LIST_FIELDS:
                    text = items_apart(text, LIST_FIELDS[name])
                part.hits[(flag, name)] = backend.find(text)
        return part


def _decoded(raw: pd.Series) -> pd.Series:
    """``raw`` as text, URL-decoded where it holds a '%' as ``_Partition.text`` decodes it: each
    distinct value with a '%' is decoded once."""
    col = raw.astype("string")
    arr = pa.array(col)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    found = holds_percent(arr)
    if not found.any():
        return col.reset_index(drop=True)
    has_pct = pa.array(found)
    distinct = pc.dictionary_encode(arr.filter(has_pct))
    decoded = unquote_many(distinct.dictionary).take(distinct.indices)
    return pd.Series(pd.arrays.ArrowStringArray(pc.replace_with_mask(arr, has_pct, decoded)), name=raw.name)


class _Run:
    """One batch under a plan: literal hits per field and leaf masks, each computed once, on demand."""

    def __init__(self, plan: Plan, part: _Partition) -> None:
        self.plan = plan
        self.part = part
        self.n = len(part.df)
        self.hits: dict[TextKey, LiteralHits] = {}
        self.arrow: dict[TextKey, pa.Array] = {}
        self.leaves: dict[Any, np.ndarray] = {}
        self.others: dict[Any, _Result] = {}
        self.by_pattern: dict[tuple[bool, str], tuple[np.ndarray, np.ndarray]] = {}

    def nothing(self) -> np.ndarray:
        """The mask of a rule no row reaches: one array, read-only, shared by all such rules."""
        if "nothing" not in self.leaves:
            none = np.zeros(self.n, dtype=bool)
            none.flags.writeable = False
            self.leaves["nothing"] = none
        return self.leaves["nothing"]

    def text(self, key: TextKey) -> pa.Array:
        if key not in self.arrow:
            from .keyword_engine import as_text_column

            col = self.part.text(key[0], key[1])
            arr = as_text_column(col)
            if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
                arr = pa.array(col.to_numpy(dtype=object, na_value=None), type=pa.string())
            self.arrow[key] = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        return self.arrow[key]

    def literal_hits(self, key: TextKey) -> LiteralHits:
        if key not in self.hits:
            self.hits[key] = self.plan.fields[key].scan(self.text(key))
        return self.hits[key]

    # -- gates -----------------------------------------------------------------------------------

    def gate_rows(self, gate: Gate) -> np.ndarray:
        """Sorted distinct rows ``gate`` lets through."""
        if gate.op == "all":
            out = None
            for x in gate.items:   # sub-gates in order; an empty one closes the gate
                p = self.atom_rows(x) if isinstance(x, Atom) else self.gate_rows(x)
                out = p if out is None else _intersect(out, p, self.n)
                if not len(out):
                    break
            return out if out is not None else _EMPTY
        return _union([self.atom_rows(x) if isinstance(x, Atom) else self.gate_rows(x) for x in gate.items], self.n)

    def atom_rows(self, atom: Atom) -> np.ndarray:
        if atom.kind == "kw":
            return self.keyword_rows(atom.key)
        hits = self.literal_hits(atom.key)
        return hits.equal(atom.index) if atom.kind == "eq" else hits.rows(atom.index, "any")

    # -- rules -----------------------------------------------------------------------------------

    def rule_mask(self, rule: m.Rule) -> np.ndarray:
        gate = self.plan.gates.get(rule.id)
        rows = self.gate_rows(gate) if gate is not None else None
        if rows is not None and not len(rows):
            return self.nothing()
        if rule.match is None:
            at = np.ones(self.n if rows is None else len(rows), dtype=bool)
        else:
            at = self.at(rule.match, rule, rows)
        for exc in rule.unless:
            if not at.any():
                break
            at = at & ~self.at(exc, rule, rows)   # never in place: ``at`` may be a leaf's cached mask
        if rows is None:
            return at.copy()
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = at
        return mask

    def at(self, node: m.Matcher, rule: m.Rule, rows: np.ndarray | None) -> np.ndarray:
        """``node`` on ``rows`` (None: every row), as bit operations over the leaves' masks."""
        if isinstance(node, m.AnyOf):
            out = self.at(node.children[0], rule, rows)
            for c in node.children[1:]:
                out = out | self.at(c, rule, rows)
            return out
        if isinstance(node, m.AllOf):
            out = self.at(node.children[0], rule, rows)
            for c in node.children[1:]:
                if not out.any():
                    break
                out = out & self.at(c, rule, rows)
            return out
        if isinstance(node, m.Not):
            return ~self.at(node.child, rule, rows)
        mask = self.leaf(node, rule)
        return mask if rows is None else mask[rows]

    def leaf(self, node: m.Matcher, rule: m.Rule) -> np.ndarray:
        from .evaluate import _condition

        if isinstance(node, m.Regex):
            out = None
            for name in node.fields:
                got = self.regex_mask(node.pattern, (name, node.decoded))
                out = got if out is None else out | got
            return out if out is not None else np.zeros(self.n, dtype=bool)
        if isinstance(node, m.Keywords):
            return self.keyword_mask(self.plan._kw_key(node, rule), node, rule)
        if isinstance(node, m.FieldCondition):   # once per distinct condition, whichever rules share it
            key: tuple[str, ...] = ("cond", node.field, node.op, repr(node.value))
            if key not in self.leaves:
                self.leaves[key] = _condition(node, self.part.value(node.field))
            return self.leaves[key]
        if isinstance(node, m.HashList):
            key = ("hash", node.field, node.path)
            if key not in self.leaves:
                self.leaves[key] = self.plan.compiled._eval(node, rule, self.part).mask
            return self.leaves[key]
        return self.other(node, rule).mask

    def other(self, node: m.Matcher, rule: m.Rule) -> "_Result":
        """A registered kind the plan has no compiled form for: its own evaluate hook, once per node."""
        key = ("other", id(node))
        if key not in self.others:
            self.others[key] = self.plan.compiled._eval(node, rule, self.part)
        return self.others[key]

    def regex_mask(self, pattern: str, key: TextKey) -> np.ndarray:
        ck = ("re", pattern, key)
        if ck in self.leaves:
            return self.leaves[ck]
        plan = self.plan._regex[(pattern, key)]
        hits = self.literal_hits(key)
        if plan.analysis.exact is not None:
            found = [hits.unit_rows(i, where) for where, i in plan.exact]
        else:
            if plan.analysis.gate is not None:
                cand = _union([hits.unit_rows(i, "any") for i in plan.gate])
            else:
                cand = None
            found = [self._confirm(pattern, hits.units, cand)]
        mask = np.zeros(self.n, dtype=bool)
        mask[hits.to_rows(_union(found))] = True
        self.leaves[ck] = mask
        return mask

    def _confirm(self, pattern: str, units: pa.Array, cand: np.ndarray | None) -> np.ndarray:
        """The units among ``cand`` (None: all) ``pattern`` is found in, by RE2."""
        if cand is not None and len(cand) <= _FEW:   # a compiled expression beats compiling it in Arrow
            regex = self.plan.compiled._regex[pattern]
            texts = units.take(pa.array(cand)).to_pylist()
            return cand[np.array([t is not None and regex.search(t) is not None for t in texts], dtype=bool)]
        taken = units if cand is None else units.take(pa.array(cand))
        found = pc.match_substring_regex(taken, pattern).fill_null(False).to_numpy(zero_copy_only=False)
        which = np.flatnonzero(np.asarray(found, dtype=bool))
        return which if cand is None else cand[which]

    def keyword_mask(self, key: tuple[int, str], node: m.Keywords | None = None, rule: m.Rule | None = None) -> np.ndarray:
        ck = ("kw", key)
        if ck not in self.leaves:
            mask = np.zeros(self.n, dtype=bool)
            mask[self.keyword_rows(key)] = True
            self.leaves[ck] = mask
        return self.leaves[ck]

    def keyword_rows(self, key: tuple[int, str]) -> np.ndarray:
        """Sorted distinct rows a keyword leaf hits (allowed phrases suppressed): from the shared
        automaton's hits grouped by pattern once per field, not a pass over them per rule."""
        ck = ("kw-rows", key)
        if ck in self.leaves:
            return self.leaves[ck]
        node, rule = self.plan.keyword_leaves[key]
        compiled = self.plan.compiled
        wanted = compiled._leaf_patterns[(id(node), node.normalize)]
        every = len(wanted) == len(compiled._patterns[node.normalize])
        allow = compiled._allow.get(rule.id) if key[1] else None
        found = []
        for name in node.fields:
            hits = self.part.hits[(node.normalize, name)]
            if not len(hits):
                continue
            if allow is not None:
                from .evaluate import _suppress_allowed

                sel = np.isin(hits.pattern, wanted)
                h = pd.DataFrame({"row": hits.row[sel], "pattern": hits.pattern[sel],
                                  "start": hits.start[sel], "end": hits.end[sel]})
                h = _suppress_allowed(h, self.part.hits[(True, name)], allow)
                found.append(np.unique(h["row"].to_numpy(dtype=np.int64)))
            elif every:
                found.append(np.unique(hits.row))
            else:
                rows, bounds = self._by_pattern(node.normalize, name, len(compiled._patterns[node.normalize]))
                starts, ends = bounds[wanted], bounds[wanted + 1]
                lengths = ends - starts
                total = int(lengths.sum())
                if total:
                    ramp = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
                    found.append(np.unique(rows[ramp]))
        out = _union(found, self.n)
        self.leaves[ck] = out
        return out

    def _by_pattern(self, flag: bool, name: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        ck = (flag, name)
        if ck not in self.by_pattern:
            hits = self.part.hits[(flag, name)]
            order = np.argsort(hits.pattern, kind="stable")
            self.by_pattern[ck] = (hits.row[order].astype(np.int64),
                                   np.searchsorted(hits.pattern[order], np.arange(count + 1)))
        return self.by_pattern[ck]
