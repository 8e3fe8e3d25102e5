"""One pass per field for every literal of every rule: an automaton over the folded field, and one
hash look-up for the literals a whole value must equal.

The field's ASCII-lowered UTF-8 is scanned as one buffer by an ahocorasick-rs DFA (over the Sigma
rules' 164 raw-line literals it reads ~580 MB/s where pyahocorasick read ~20 MB/s on this machine);
a hit is placed in its row by the Arrow offsets, and whether it starts or ends its row is what
startswith / endswith need. Offsets are bytes of the folded text: folding keeps a row's boundaries,
which is all the anchors look at. A field of few distinct values is scanned once per distinct value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ahocorasick_rs
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .keyword_bytes import hit_array
from .plan_literals import fold_column

_EMPTY = np.zeros(0, dtype=np.int64)


# KELVIN SIGN and LONG S: the characters outside ASCII RE2's (?i) folds onto k and s. Searched
# beside the literals: a value holding one is folded again in full (rare), not every value always.
_ODD = ("\u212a".encode(), "\u017f".encode())
_SAMPLE = 2048


@dataclass
class FieldLiterals:
    """The literals searched in one field: anywhere in it (automaton) or as its whole value."""

    anywhere_index: dict[str, int] = field(default_factory=dict)
    equal_index: dict[str, int] = field(default_factory=dict)
    # literals found in a good share of the values (status 200 in a raw line): searched one by one
    # in Arrow, out of the automaton, whose cost grows with its hits (learnt from the batches seen)
    dense: dict[int, str] = field(default_factory=dict)
    _automaton: ahocorasick_rs.BytesAhoCorasick | None = None
    _key_bytes: np.ndarray = field(default_factory=lambda: _EMPTY)
    _key_lid: np.ndarray = field(default_factory=lambda: _EMPTY)   # literal per key; -1: KELVIN / LONG S
    _values: pa.Array | None = None
    _sampled: bool = False

    def anywhere(self, literal: str) -> int:
        return self.anywhere_index.setdefault(literal, len(self.anywhere_index))

    def equal(self, literal: str) -> int:
        return self.equal_index.setdefault(literal, len(self.equal_index))

    def build(self) -> None:
        self._automaton = None
        sparse = [(lit, i) for lit, i in self.anywhere_index.items() if i not in self.dense]
        if sparse:
            keys = [lit.encode("utf-8", "surrogatepass") for lit, _ in sparse] + list(_ODD)
            # a DFA over every literal of the field: overlapping search needs the standard match kind
            self._automaton = ahocorasick_rs.BytesAhoCorasick(
                keys, matchkind=ahocorasick_rs.MATCHKIND_STANDARD, implementation=ahocorasick_rs.Implementation.DFA)
            self._key_bytes = np.array([len(k) for k in keys], dtype=np.int64)
            self._key_lid = np.array([i for _, i in sparse] + [-1] * len(_ODD), dtype=np.int64)
        if self.equal_index:
            self._values = pa.array(list(self.equal_index), pa.large_string())

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)    # the automaton cannot be pickled: rebuilt where it is used
        state["_automaton"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.build()

    def bare_scan(self, data: bytes | memoryview) -> int:
        """The automaton alone over a buffer (benchmarks): the number of hits."""
        return len(self._automaton.find_matches_as_indexes(data, overlapping=True)) if self._automaton else 0

    def scan(self, arr: pa.Array) -> LiteralHits:
        """Every literal's occurrences in ``arr``; a field of few distinct values (method, status,
        user agent) is scanned once per distinct value."""
        units, indices = _distinct(arr)
        hits = LiteralHits(len(arr), units, indices)
        n = len(units)
        if n == 0:
            return hits
        folded = pc.ascii_lower(pc.fill_null(units, pa.scalar("", units.type)) if units.null_count else units)
        hits.folded = folded
        odd = np.zeros(0, dtype=np.int64)
        lid = unit = start = end = _EMPTY
        if self._automaton is not None and not self._sampled and n >= 4 * _SAMPLE:
            self._sampled = True    # the first batch's first values say which literals are dense
            sample = folded.slice(0, _SAMPLE)
            s_lid, s_unit, _, _ = self._find(*_view(sample))
            self._learn(s_lid[s_lid >= 0], s_unit[s_lid >= 0], _SAMPLE)
        if self._automaton is not None:
            data, offsets = _view(folded)
            lid, unit, start, end = self._find(data, offsets)
            is_odd = lid < 0
            if is_odd.any():   # those values again, folded in full
                odd = np.unique(unit[is_odd])
                keep = ~np.isin(unit, odd)
                lid, unit, start, end = lid[keep], unit[keep], start[keep], end[keep]
                refolded = pc.fill_null(fold_column(units.take(pa.array(odd))), "")
                data2, offsets2 = _view(refolded)
                lid2, unit2, start2, end2 = self._find(data2, offsets2)
                lid, unit, start, end = (np.concatenate(x) for x in
                                         ((lid, lid2), (unit, odd[unit2]), (start, start2), (end, end2)))
                starts = np.concatenate([offsets[unit[:len(unit) - len(unit2)]], offsets2[unit2]])
                ends = np.concatenate([offsets[unit[:len(unit) - len(unit2)] + 1], offsets2[unit2 + 1]])
            else:
                starts, ends = offsets[unit], offsets[unit + 1]
            hits.set_found(lid, unit, start == starts, end == ends, len(self.anywhere_index))
            self._learn(lid, unit, n)
        elif self.dense:   # the odd characters are looked for without the automaton then
            odd = np.flatnonzero(np.logical_or.reduce(
                [pc.match_substring(folded, o.decode()).to_numpy(zero_copy_only=False) for o in _ODD]))
        hits.dense, hits.odd = self.dense, odd
        if self._values is not None:
            idx = pc.index_in(folded.cast(pa.large_string()), value_set=self._values).fill_null(-1)
            idx = np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)
            if len(odd):
                again = pc.index_in(fold_column(units.take(pa.array(odd))).cast(pa.large_string()),
                                    value_set=self._values).fill_null(-1)
                idx[odd] = np.asarray(again.to_numpy(zero_copy_only=False), dtype=np.int64)
            rows = np.flatnonzero(idx >= 0)
            hits.set_equal(rows, idx[rows], len(self.equal_index))
        return hits

    def _learn(self, lid: np.ndarray, unit: np.ndarray, n: int) -> None:
        """Literals in over an eighth of a batch's values leave the automaton for later batches."""
        if n < 1024 or not len(lid):
            return
        per = np.bincount(lid[np.concatenate(([True], (lid[1:] != lid[:-1]) | (unit[1:] != unit[:-1])))],
                          minlength=len(self.anywhere_index))
        frequent = {int(i) for i in np.flatnonzero(per * 8 > n)}
        if frequent - set(self.dense):
            names = {i: lit for lit, i in self.anywhere_index.items()}
            self.dense.update({i: names[i] for i in frequent})
            self.build()

    def _find(self, data: memoryview, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
        """(literal, unit, start byte, end byte) of every occurrence lying within one unit."""
        assert self._automaton is not None   # built before any batch is searched
        found = self._automaton.find_matches_as_indexes(data, overlapping=True)
        if not found:
            return _EMPTY, _EMPTY, _EMPTY, _EMPTY
        arr = hit_array(found, 3)
        lid, start, end = self._key_lid[arr[:, 0]], arr[:, 1], arr[:, 2]
        unit = np.searchsorted(offsets, start, side="right") - 1
        inside = end <= offsets[unit + 1]      # a literal never spans two values
        return lid[inside], unit[inside], start[inside], end[inside]


def _distinct(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """The distinct values and each row's index into them, where values repeat enough to pay
    (half the rows or fewer distinct, judged on a sample first); else the array itself and None."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) < 64:
        return arr, None
    sample = arr.slice(0, 4096)
    if pc.count_distinct(sample).as_py() * 2 > len(sample):
        return arr, None
    enc = pc.dictionary_encode(arr)
    if len(enc.dictionary) * 2 > len(arr):
        return arr, None
    idx = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return enc.dictionary, idx


def _view(arr: pa.Array) -> tuple[memoryview, np.ndarray]:
    """The array's UTF-8 bytes (no copy) and its value offsets into them."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=width)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(bufs[2], dtype=np.uint8)[lo:hi].data if bufs[2] is not None else memoryview(b"")
    return data, offsets - lo


class LiteralHits:
    """For each literal of a field, the sorted distinct rows where it occurs (anywhere, at the start,
    at the end) or where it is the whole value. Found over ``units``: the rows, or the distinct
    values with each row's index into them (``indices``)."""

    def __init__(self, n: int, units: pa.Array, indices: np.ndarray | None) -> None:
        self.n = n
        self.units = units
        self.indices = indices
        self._groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._found: tuple[np.ndarray, ...] | None = None
        self._count = 0
        self._rows: dict[tuple[str, int], np.ndarray] = {}
        self._by_unit: tuple[np.ndarray, np.ndarray] | None = None
        self.folded: pa.Array | None = None          # the units ASCII-lowered
        self.dense: dict[int, str] = {}              # literals searched in ``folded`` one by one
        self.odd = _EMPTY                            # units holding KELVIN SIGN or LONG S
        self._refolded: pa.Array | None = None

    def set_equal(self, units: np.ndarray, which: np.ndarray, count: int) -> None:
        order = np.argsort(which, kind="stable")    # units stay ascending within a literal
        self._groups["eq"] = (units[order], np.searchsorted(which[order], np.arange(count + 1)))

    def set_found(self, lid: np.ndarray, unit: np.ndarray, at_start: np.ndarray, at_end: np.ndarray,
                  count: int) -> None:
        if len(unit) > 1 and (np.diff(unit) < 0).any():   # the values folded again came last
            order = np.argsort(unit, kind="stable")
            lid, unit, at_start, at_end = lid[order], unit[order], at_start[order], at_end[order]
        self._found = (lid, unit, at_start, at_end)
        self._count = count

    def _group(self, where: str) -> tuple[np.ndarray, np.ndarray]:
        """Units per literal, ascending and distinct, with each literal's bounds among them."""
        if where not in self._groups:
            if self._found is None or where == "eq":
                return _EMPTY, _EMPTY
            lid, unit, at_start, at_end = self._found
            if where != "any":
                sel = at_start if where == "start" else at_end
                lid, unit = lid[sel], unit[sel]
            # hits come by end offset, so by unit; a stable sort by literal keeps each one's units
            # ascending (a radix sort on small keys), and equal neighbours are one unit hit twice
            order = np.argsort(lid.astype(np.int32 if self._count >= 2**15 else np.int16), kind="stable")
            lid, unit = lid[order], unit[order]
            fresh = np.ones(len(lid), dtype=bool)
            fresh[1:] = (lid[1:] != lid[:-1]) | (unit[1:] != unit[:-1])
            lid, unit = lid[fresh], unit[fresh]
            self._groups[where] = (unit, np.searchsorted(lid, np.arange(self._count + 1)))
        return self._groups[where]

    def unit_rows(self, index: int, where: str = "any") -> np.ndarray:
        """The units (rows or distinct values) holding literal ``index`` there (``eq``: being it)."""
        if index in self.dense and where != "eq":
            return self._dense(self.dense[index], where) if self.folded is not None else _EMPTY
        units, bounds = self._group(where)
        if not len(units):
            return _EMPTY
        return units[bounds[index]:bounds[index + 1]]

    def _dense(self, literal: str, where: str) -> np.ndarray:
        find = {"any": pc.match_substring, "start": pc.starts_with, "end": pc.ends_with}[where]
        mask = np.asarray(find(self.folded, literal).to_numpy(zero_copy_only=False), dtype=bool)
        if len(self.odd):
            if self._refolded is None:
                self._refolded = pc.fill_null(fold_column(self.units.take(pa.array(self.odd))), "")
            mask[self.odd] = np.asarray(find(self._refolded, literal).to_numpy(zero_copy_only=False), dtype=bool)
        return np.flatnonzero(mask)

    def rows(self, index: int, where: str = "any") -> np.ndarray:
        key = (where, index)
        if key not in self._rows:
            self._rows[key] = self.to_rows(self.unit_rows(index, where))
        return self._rows[key]

    def equal(self, index: int) -> np.ndarray:
        return self.rows(index, "eq")

    def to_rows(self, units: np.ndarray) -> np.ndarray:
        """The sorted rows whose value is one of ``units`` (sorted distinct)."""
        if self.indices is None or not len(units):
            return units
        if self._by_unit is None:
            order = np.argsort(self.indices, kind="stable")
            bounds = np.searchsorted(self.indices[order], np.arange(len(self.units) + 1))
            self._by_unit = (order, bounds)
        order, bounds = self._by_unit
        starts, ends = bounds[units], bounds[units + 1]
        lengths = ends - starts
        total = int(lengths.sum())
        if total * 4 > self.n:    # many rows: one pass over the indices is cheaper than a sort
            keep = np.zeros(len(self.units) + 1, dtype=bool)
            keep[units] = True
            return np.flatnonzero(keep[self.indices])
        ramp = np.arange(total, dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return np.sort(order[ramp])
