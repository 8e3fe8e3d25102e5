"""Evaluate a source's record rules over one partition: masks per rule, and evidence per hit.

All keyword matchers of all rules share one automaton per normalization mode, and each text
field is scanned once per partition; every other matcher is a vectorized column operation.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import re2

from ..normalize import normalize_many
from ..normalize.batch import arrow_utf8
from ..rules import model as m
from .base import evaluate_registered
from .keyword_engine import LIST_FIELDS, KeywordBackend, KeywordHits, as_text_column, build_backend, items_apart

RAW = "raw"   # the raw line of a log record, present during a scan when a rule reads it
# Log fields searched URL-decoded, so /%E8%B5%8C%E5%9C%BA/ hits 赌场.
DECODED_FIELDS = {"logs": ("uri", "path", "query", "referer", "user_agent")}
EVIDENCE_COLUMNS = ["row", "field", "kind", "pattern", "text", "start", "end"]
# "plan" (one compiled pass for all rules, pipeline.matchers.plan) or "reference" (this tree walk)
EVALUATORS = ("plan", "reference")
EVALUATOR_ENV = "COMPLIANCE_RULES_EVALUATOR"
_TEXT = pd.Series([""]).dtype  # the dtype a list of str becomes


def _empty_evidence() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype="object") for c in EVIDENCE_COLUMNS})


@dataclass
class _Result:
    mask: np.ndarray              # bool per row
    evidence: pd.DataFrame        # EVIDENCE_COLUMNS, rows where a leaf matched


@dataclass
class _Partition:
    """One partition plus per-partition caches (text columns, parsed map fields, keyword hits)."""

    df: pd.DataFrame
    source: str
    texts: dict[str, pd.Series] = field(default_factory=dict)
    maps: dict[str, pd.Series] = field(default_factory=dict)
    hits: dict[tuple[bool, str], KeywordHits] = field(default_factory=dict)
    regex_hits: dict[tuple[str, str, bool], np.ndarray] = field(default_factory=dict)  # shared leaves, once

    def text(self, name: str, decoded: bool = True) -> pd.Series:
        if not decoded and name in DECODED_FIELDS.get(self.source, ()):
            key = name + "\0as-logged"
            if key not in self.texts:
                col = self.df[name] if name in self.df.columns else pd.Series([pd.NA] * len(self.df), dtype="string")
                self.texts[key] = col.astype("string").reset_index(drop=True)
            return self.texts[key]
        if name not in self.texts:
            col = self.df[name] if name in self.df.columns else pd.Series([pd.NA] * len(self.df), dtype="string")
            col = col.astype("string")
            if name in DECODED_FIELDS.get(self.source, ()):
                has_pct = col.str.contains("%", regex=False).fillna(False).to_numpy(dtype=bool)
                if has_pct.any():
                    col = col.copy()
                    col[has_pct] = col[has_pct].map(lambda s: unquote(s, errors="replace"))
            self.texts[name] = col.reset_index(drop=True)
        return self.texts[name]

    def value(self, name: str) -> pd.Series:
        """A field's values; ``labels.pulp`` reads inside the JSON map field."""
        if "." not in name:
            if name not in self.df.columns:
                return pd.Series([pd.NA] * len(self.df), dtype="object")
            return self.df[name].reset_index(drop=True)
        base, key = name.split(".", 1)
        if base not in self.maps:
            raw = self.df[base] if base in self.df.columns else pd.Series([pd.NA] * len(self.df))
            self.maps[base] = _parse_maps(raw.reset_index(drop=True))
        codes, maps = self.maps[base]
        # one look-up per distinct map; the last slot answers the missing ones (code -1)
        found = np.array([d.get(key, pd.NA) if isinstance(d, dict) else pd.NA for d in maps] + [pd.NA], dtype=object)
        return pd.Series(found[codes], dtype="object")


def _parse_maps(raw: pd.Series) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
    """Each value's code and the distinct values parsed: a JSON object (text) is parsed once
    however many records carry it, and a missing one not at all (code -1)."""
    try:
        codes, uniques = pd.factorize(raw, use_na_sentinel=True)
        return codes, [_parse_map(u) for u in uniques]
    except TypeError:   # maps given as dicts (Parquet, JSONL) cannot be factorized: one by one
        return np.arange(len(raw)), [_parse_map(v) for v in raw]


def _parse_map(v: Any) -> dict[str, Any] | None:
    if isinstance(v, dict):
        return v
    if not isinstance(v, str) or not v:
        return None
    try:
        d = json.loads(v)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


class CompiledRules:
    """A source's rules made ready to run: automata built, allow-words indexed. Build once per process."""

    def __init__(self, rules: Sequence[m.Rule], source: str, *, backend: str = "pyahocorasick",
                 evaluator: str | None = None):
        self.source = source
        self.evaluator = evaluator or os.environ.get(EVALUATOR_ENV) or "plan"
        if self.evaluator not in EVALUATORS:
            raise ValueError(f"rules evaluator {self.evaluator!r}: expected one of {', '.join(EVALUATORS)}")
        self.backend = backend
        self.rules = tuple(rules)
        self._patterns: dict[bool, list[str]] = {True: [], False: []}
        self._index: dict[bool, dict[str, int]] = {True: {}, False: {}}
        self._leaf_patterns: dict[tuple[int, bool], np.ndarray] = {}
        self._fields: dict[bool, set[str]] = {True: set(), False: set()}
        self._allow: dict[str, np.ndarray] = {}
        self._regex: dict[str, Any] = {}
        self._names: dict[bool, pa.Array] = {}
        for rule in self.rules:
            leaves = m.walk(rule.match) if rule.match else []
            for mt in [*leaves, *(x for u in rule.unless for x in m.walk(u))]:
                if isinstance(mt, m.Keywords):
                    self._leaf_patterns[(id(mt), mt.normalize)] = self._add(mt.words, mt.normalize)
                    self._fields[mt.normalize].update(mt.fields)
                elif isinstance(mt, m.Regex):
                    opts = re2.Options()
                    opts.log_errors = False
                    self._regex[mt.pattern] = re2.compile(mt.pattern, opts)
            if rule.allow_words:
                self._allow[rule.id] = self._add(rule.allow_words, True)
        # whether some rule reads the raw line (``raw``), which log readers then keep for the scan
        self.needs_raw = any(RAW in mt.fields for rule in self.rules for mt in (m.walk(rule.match) if rule.match else [])
                             if isinstance(mt, (m.Regex, m.Keywords)))
        self._backends: dict[bool, KeywordBackend] = {
            flag: build_backend(pats, normalize=flag, backend=backend)
            for flag, pats in self._patterns.items() if pats
        }
        self._plan = None
        if self.evaluator == "plan":
            from .plan import Plan   # the compiled plan answers for this reference evaluator

            self._plan = Plan(self)

    def _add(self, words: Sequence[str], flag: bool) -> np.ndarray:
        idx = []
        for w, key in zip(words, normalize_many(words) if flag else words):
            if key not in self._index[flag]:
                self._index[flag][key] = len(self._patterns[flag])
                self._patterns[flag].append(w)
            idx.append(self._index[flag][key])
        return np.array(sorted(set(idx)), dtype=np.int32)


    def pattern(self, flag: bool, idx: int) -> str:
        return self._patterns[flag][idx]

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self, df: pd.DataFrame) -> list[tuple[m.Rule, np.ndarray, pd.DataFrame]]:
        """For each record rule: (rule, matched row mask, evidence rows of matched rows)."""
        return self.evaluate_all(df)[0]

    def match_mask(self, rule: m.Rule, df: pd.DataFrame) -> np.ndarray:
        """Rows of ``df`` an aggregate rule's ``match`` (and ``unless``) selects."""
        if self._plan is not None:
            return self._plan.match_mask(rule, df)
        return self._rule_mask(rule, self._scan(df))

    def evaluate_all(self, df: pd.DataFrame) -> tuple[list[tuple[m.Rule, np.ndarray, pd.DataFrame]],
                                                      dict[str, np.ndarray]]:
        """Record rules' results and aggregate rules' row masks, from one scan of the partition's text."""
        if self._plan is not None:
            return self._plan.evaluate_all(df)
        return self.reference_evaluate_all(df)

    def reference_evaluate_all(self, df: pd.DataFrame) -> tuple[list[tuple[m.Rule, np.ndarray, pd.DataFrame]],
                                                                dict[str, np.ndarray]]:
        """``evaluate_all`` by walking each rule's tree: the reference the plan is tested against."""
        part = self._scan(df)
        records = []
        masks = {}
        for rule in self.rules:
            if rule.aggregate is not None:
                masks[rule.id] = self._rule_mask(rule, part)
            elif rule.match is not None and "sigma" in rule.meta:
                # masks first, evidence only for the rows the whole rule matched: a leaf such as
                # cs-method: GET holds on most rows, and evidence is a Python step per row
                mask = self._unless(rule, part, self._mask(rule.match, part))
                ev = self._eval(rule.match, rule, part, mask).evidence if mask.any() else _empty_evidence()
                records.append((rule, mask, ev))
            elif rule.match is not None:
                res = self._eval(rule.match, rule, part)
                mask = self._unless(rule, part, res.mask)
                ev = res.evidence
                if len(ev):
                    keep = mask[ev["row"].to_numpy(dtype=np.int64)]
                    if not keep.all():  # without an `unless` that struck, nothing to copy
                        ev = ev[keep]
                records.append((rule, mask, ev))
        return records, masks

    def _scan(self, df: pd.DataFrame) -> _Partition:
        """Run each automaton once over each text field the rules search."""
        part = _Partition(df.reset_index(drop=True), self.source)
        for flag, backend in self._backends.items():
            for name in sorted(self._fields[flag]):
                text = part.text(name)
                if name in LIST_FIELDS:  # a keyword never spans two items of a list (tags)
                    text = items_apart(text, LIST_FIELDS[name])
                part.hits[(flag, name)] = backend.find(text)
        return part

    def _rule_mask(self, rule: m.Rule, part: _Partition) -> np.ndarray:
        if rule.match is None:
            mask = np.ones(len(part.df), dtype=bool)
        elif "sigma" in rule.meta:   # an aggregate needs no evidence: masks only
            mask = self._mask(rule.match, part)
        else:
            mask = self._eval(rule.match, rule, part).mask
        return self._unless(rule, part, mask)

    def _unless(self, rule: m.Rule, part: _Partition, mask: np.ndarray) -> np.ndarray:
        for exc in rule.unless:
            mask = mask & ~self._eval(exc, rule, part).mask
        return mask

    def _mask(self, node: m.Matcher, part: _Partition) -> np.ndarray:
        """``node``'s row mask without its evidence (regex leaves cached per partition)."""
        if isinstance(node, (m.AnyOf, m.AllOf)):
            masks = np.vstack([self._mask(c, part) for c in node.children])
            return np.asarray(masks.any(axis=0) if isinstance(node, m.AnyOf) else masks.all(axis=0))
        if isinstance(node, m.Not):
            return ~self._mask(node.child, part)
        if isinstance(node, m.Regex):
            out = np.zeros(len(part.df), dtype=bool)
            for name in node.fields:
                out |= self._regex_hits(node, name, part)
            return out
        if isinstance(node, m.FieldCondition):
            return _condition(node, part.value(node.field))
        return self._eval(node, m.Rule("", "", "", "", "", (), None, "", 0, ""), part).mask

    def _regex_hits(self, node: m.Regex, name: str, part: _Partition) -> np.ndarray:
        key = (node.pattern, name, node.decoded)
        if key not in part.regex_hits:
            col = part.text(name, node.decoded)
            arr = as_text_column(col)   # the column's own Arrow array when it has one: no str per row
            if not isinstance(arr, (pa.Array, pa.ChunkedArray)):   # missing values stay null: no match
                arr = pa.array(col.to_numpy(dtype=object, na_value=None), type=pa.string())
            part.regex_hits[key] = np.asarray(pc.match_substring_regex(arr, node.pattern).fill_null(False)
                                              .to_numpy(zero_copy_only=False), dtype=bool)
        return part.regex_hits[key]

    def _eval(self, node: m.Matcher, rule: m.Rule, part: _Partition, scope: np.ndarray | None = None) -> _Result:
        """Mask and evidence; given ``scope``, evidence only of the rows in it (the rule's matched rows)."""
        n = len(part.df)
        if scope is not None and isinstance(node, m.Not):
            return _Result(~self._mask(node.child, part), _empty_evidence())
        if scope is not None and isinstance(node, m.Regex):
            return self._regex_eval(node, part, scope)
        if isinstance(node, m.AnyOf) or isinstance(node, m.AllOf):
            results = [self._eval(c, rule, part, scope) for c in node.children]
            masks = np.vstack([r.mask for r in results])
            mask = np.asarray(masks.any(axis=0) if isinstance(node, m.AnyOf) else masks.all(axis=0))
            evs = [r.evidence for r in results if len(r.evidence)]
            ev = pd.concat(evs, ignore_index=True) if evs else _empty_evidence()
            if isinstance(node, m.AllOf) and len(ev):
                # a branch's match on a row where another branch failed is no evidence of this one
                keep = mask[ev["row"].to_numpy(dtype=np.int64)]
                if not keep.all():
                    ev = ev[keep].reset_index(drop=True)
            return _Result(mask, ev)
        if isinstance(node, m.Not):
            child = self._eval(node.child, rule, part)
            return _Result(~child.mask, _empty_evidence())
        if isinstance(node, m.Keywords):
            return self._keywords(node, rule, part)
        if isinstance(node, m.Regex):
            return self._regex_eval(node, part)
        if isinstance(node, m.HashList):
            raw = part.value(node.field).astype("string")
            mask = raw.str.strip('"').str.lower().isin(node.hashes).fillna(False).to_numpy(dtype=bool)
            return _Result(mask, _leaf_evidence(mask, node.field, "hash_list", node.path, raw))
        if isinstance(node, m.FieldCondition):
            mask = _condition(node, part.value(node.field))
            shown = mask if scope is None else mask & scope
            return _Result(mask, _leaf_evidence(shown, node.field, node.op, repr(node.value), part.value(node.field)))
        return _Result(*evaluate_registered(self, node, rule, part, scope))  # a kind another module registers

    def _keywords(self, node: m.Keywords, rule: m.Rule, part: _Partition) -> _Result:
        n = len(part.df)
        wanted = self._leaf_patterns[(id(node), node.normalize)]
        every = len(wanted) == len(self._patterns[node.normalize])  # wanted: distinct pattern indexes
        frames = []
        for name in node.fields:
            hits = part.hits[(node.normalize, name)]
            sel = np.ones(len(hits), dtype=bool) if every else np.isin(hits.pattern, wanted)
            if not sel.any():
                continue
            h = pd.DataFrame({"row": hits.row[sel], "pattern": hits.pattern[sel],
                              "start": hits.start[sel], "end": hits.end[sel]})
            allow = self._allow.get(rule.id)
            if allow is not None and node.normalize:
                h = _suppress_allowed(h, part.hits[(True, name)], allow)
            if len(h):
                frames.append((name, h))
        if not frames:
            return _Result(np.zeros(n, dtype=bool), _empty_evidence())
        row, start, end, pattern = (np.concatenate([h[c].to_numpy() for _, h in frames])
                                    for c in ("row", "start", "end", "pattern"))
        mask = np.zeros(n, dtype=bool)
        mask[row] = True
        texts = [_span_texts(part.text(name), h["row"].to_numpy(dtype=np.int64), h["start"].to_numpy(dtype=np.int64),
                             h["end"].to_numpy(dtype=np.int64)) for name, h in frames]
        field = [pa.repeat(pa.scalar(name, pa.large_string()), len(h)) for name, h in frames]
        # the columns are of the dtype a list of str would have become, as in every evidence frame
        ev = pd.DataFrame({
            "row": row,
            "field": pd.array(pa.concat_arrays(field), dtype=_TEXT),
            "kind": pd.array(pa.repeat(pa.scalar("keywords", pa.large_string()), len(row)), dtype=_TEXT),
            "pattern": self._pattern_names(node.normalize, pattern),
            "text": pd.array(pa.concat_arrays(texts), dtype=_TEXT),
            "start": start,
            "end": end,
        })
        return _Result(mask, ev)

    def _pattern_names(self, flag: bool, idx: np.ndarray) -> pd.api.extensions.ExtensionArray:
        """The patterns at ``idx`` (as given in the rules), taken in Arrow."""
        if flag not in self._names:
            self._names[flag] = pa.array(self._patterns[flag], pa.large_string())
        return pd.array(self._names[flag].take(pa.array(idx.astype(np.int64))), dtype=_TEXT)

    def _regex_eval(self, node: m.Regex, part: _Partition, scope: np.ndarray | None = None) -> _Result:
        n = len(part.df)
        mask = np.zeros(n, dtype=bool)
        rows, fields, texts, starts, ends = [], [], [], [], []
        compiled = self._regex[node.pattern]
        for name in node.fields:
            col = part.text(name, node.decoded)
            if scope is not None:
                hit = self._regex_hits(node, name, part)
                mask |= hit
                hit = hit & scope
            else:
                arr = as_text_column(col)   # the column's own Arrow array when it has one: no str per row
                if not isinstance(arr, (pa.Array, pa.ChunkedArray)):   # missing values stay null: no match
                    arr = pa.array(col.to_numpy(dtype=object, na_value=None), type=pa.string())
                hit = pc.match_substring_regex(arr, node.pattern).fill_null(False).to_numpy(zero_copy_only=False)
            for r in np.flatnonzero(hit):
                mt = compiled.search(col.iat[r])
                if mt is None:
                    continue  # pyarrow and google-re2 are both RE2; they agree except on invalid UTF-8
                mask[r] = True
                rows.append(int(r)); fields.append(name); texts.append(mt.group(0))
                starts.append(mt.start()); ends.append(mt.end())
        kind, shown = ("sigma", node.label) if node.label else ("regex", node.pattern)
        ev = pd.DataFrame({"row": rows, "field": fields, "kind": kind, "pattern": shown,
                           "text": texts, "start": starts, "end": ends}) if rows else _empty_evidence()
        return _Result(mask, ev[EVIDENCE_COLUMNS] if rows else ev)


def _span_texts(col: pd.Series, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """``col[rows[i]][starts[i]:ends[i]]`` for each hit, cut from the UTF-8 bytes of the rows with hits
    without a Python string per hit (hits index characters, the kernel finds their bytes)."""
    from ..normalize.kernel import char_spans_to_bytes   # imports numba: only once there are hits

    hit_rows, which = np.unique(rows, return_inverse=True)
    data, offsets = arrow_utf8(pa.array(col.array).take(pa.array(hit_rows)))
    begin, end = char_spans_to_bytes(data, offsets, which, starts, ends)
    return _gather(data, begin, end)


def _gather(data: np.ndarray, begin: np.ndarray, end: np.ndarray) -> pa.Array:
    """The byte ranges ``begin[i]:end[i]`` of ``data`` as a large-string array."""
    lengths = end - begin
    offsets = np.zeros(len(begin) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = np.arange(offsets[-1], dtype=np.int64) + np.repeat(begin - offsets[:-1], lengths)
    return pa.LargeStringArray.from_buffers(len(begin), pa.py_buffer(offsets), pa.py_buffer(data[index]))


def _suppress_allowed(h: pd.DataFrame, all_hits: KeywordHits, allow: np.ndarray) -> pd.DataFrame:
    """Drop deny hits lying wholly inside an allowed phrase's hit in the same row and field."""
    sel = np.isin(all_hits.pattern, allow)
    if not sel.any():
        return h
    a = pd.DataFrame({"row": all_hits.row[sel], "a_start": all_hits.start[sel], "a_end": all_hits.end[sel]})
    h = h.reset_index(drop=True)
    h["_i"] = np.arange(len(h))
    j = h.merge(a, on="row")
    inside = j[(j["a_start"] <= j["start"]) & (j["end"] <= j["a_end"])]["_i"].unique()
    return h[~h["_i"].isin(inside)].drop(columns="_i")


def _leaf_evidence(mask: np.ndarray, name: str, kind: str, pattern: str, values: pd.Series) -> pd.DataFrame:
    rows = np.flatnonzero(mask)
    if not len(rows):
        return _empty_evidence()
    return pd.DataFrame({"row": rows, "field": name, "kind": kind, "pattern": pattern,
                         "text": [str(values.iat[r]) for r in rows], "start": None, "end": None})


def _condition(cond: m.FieldCondition, col: pd.Series) -> np.ndarray:
    """A field condition as a row mask. A missing value satisfies nothing but ``exists: false``."""
    present = col.notna().to_numpy(dtype=bool)
    if cond.op == "exists":
        nonempty = present & (col.astype("string").fillna("") != "").to_numpy(dtype=bool)
        return nonempty if cond.value else ~nonempty
    op, value = cond.op, cond.value
    if op in ("gt", "gte", "lt", "lte"):
        num = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):
            res = {"gt": num > value, "gte": num >= value, "lt": num < value, "lte": num <= value}[op]
        return res & ~np.isnan(num)
    if op == "cidr":
        nets = [ipaddress.ip_network(v) for v in value]
        uniq = col.dropna().astype(str).unique()
        inside = {u for u in uniq if _in_networks(u, nets)}
        return col.astype("string").isin(inside).fillna(False).to_numpy(dtype=bool)
    s = col.astype("string")
    if op == "equals":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            num = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
            return num == value
        res = s == str(value)
    elif op in ("in", "not_in"):
        res = s.isin([str(v) for v in value])
        if op == "not_in":
            res = ~res
    elif op == "contains":
        res = s.str.contains(value, regex=False)
    elif op == "startswith":
        res = s.str.startswith(value)
    else:
        res = s.str.endswith(value)
    return res.fillna(False).to_numpy(dtype=bool) & present


def _in_networks(text: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in nets)
