"""Space-separated log layouts with quoted and bracketed fields (nginx, Qiniu, Tencent, S3):
one declaration per format drives a three-tier parser.

1. a strict RE2 match (a DFA, millions of lines a second) picks the lines whose quoted fields hold
   no quote; those are cut into fields by splitting on ``"`` and spaces, whole array at once;
2. the other lines go through an escape-aware RE2 extraction (``\\"`` inside quotes, and a last
   quoted field whose closing quote is missing at the end of the line: nothing follows it, so no
   other field can be swallowed);
3. lines that neither tier parses are handed one by one to ``diagnose``, which names the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .base import ReadResult, Stored
from .logs_common import LogTable, assemble_table
from .logs_fields import (bad_values, constant, dash_to_null, fill, nth, parse_times, request_columns, spans,
                          split_uri, to_float, to_int)
from .logs_lines import Lines, read_lines

# kind → (strict pattern, capturing pattern body); quoted and bracketed kinds are special-cased.
_KINDS: dict[str, tuple[str, str]] = {
    "tok": (r'[^\s"]+', r"\S+"),
    "int": (r"(?:[0-9]+|-)", r"[0-9]+|-"),
    "num": (r"(?:[0-9]+(?:\.[0-9]+)?|-)", r"[0-9]+(?:\.[0-9]+)?|-"),
    "status": (r"[0-9]{3}", r"[0-9]{3}"),
    "stamp14": (r"[0-9]{14}", r"[0-9]{14}"),
    "quoted": (r'"[^"]*"', ""),
    "clftime": (r'\[[^\]\s"]+ [^\]\s"]+\]', ""),
}
CLF_TIME_FORMAT = "[%d/%b/%Y:%H:%M:%S %z]"
_SHOW = 60  # characters of a bad value quoted in a reason
# Cutting strict lines by byte position (``logs_tokens.cut``) and splitting them whole-array are
# optimisations of the tiers, which alone parse every line the same way. False sends every line
# through the tiers: the reference the fast path is checked against, never a production setting.
FAST_PATH = True


@dataclass(frozen=True)
class Field:
    """One field of a layout; ``name`` None means the field is read past and dropped."""

    name: str | None
    kind: str = "tok"
    label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")


@dataclass(frozen=True)
class Layout:
    """A sequence of fields separated by one space; ``tail``: more fields may follow (ignored)."""

    name: str
    fields: tuple[Field, ...]
    tail: bool = False

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields if f.name]

    def strict_regex(self) -> str:
        body = " ".join(_KINDS[f.kind][0] for f in self.fields)
        return f"^{body}(?: .*)?$" if self.tail else f"^{body}$"

    def full_regex(self) -> str:
        parts = []
        last = len(self.fields) - 1
        for i, f in enumerate(self.fields):
            if f.kind == "quoted":
                close = '"?' if i == last and not self.tail else '"'
                inner = r'(?:[^"\\]|\\.)*'
                parts.append(f'"(?P<{f.name}>{inner}){close}' if f.name else f'"{inner}{close}')
            elif f.kind == "clftime":
                parts.append(rf"(?P<{f.name}>\[[^\]]*\])" if f.name else r"\[[^\]]*\]")
            else:
                body = _KINDS[f.kind][1]
                parts.append(f"(?P<{f.name}>{body})" if f.name else f"(?:{body})")
        body = " ".join(parts)
        return f"^{body}(?: .*)?$" if self.tail else f"^{body}$"

    def positions(self) -> dict[str, tuple[int, int | None, int | None]]:
        """Where each named field lands after splitting a strict line on ``"`` then on spaces.

        Found by splitting a template line the same way, so the table can never disagree with
        the splitting: ``name → (part, token, second token for a bracketed time)``.
        """
        template = []
        for i, f in enumerate(self.fields):
            if f.kind == "quoted":
                template.append(f'"F{i}"')
            elif f.kind == "clftime":
                template.append(f"[F{i}a F{i}b]")
            else:
                template.append(f"F{i}")
        parts = " ".join(template).split('"')
        where: dict[str, tuple[int, int | None, int | None]] = {}
        for k, part in enumerate(parts):
            if k % 2:
                idx = int(part[1:])
                if self.fields[idx].name:
                    where[str(self.fields[idx].name)] = (k, None, None)
                continue
            tokens = part.split(" ")
            for t, tok in enumerate(tokens):
                if tok.startswith("[F"):
                    idx = int(tok[2:-1])
                    if self.fields[idx].name:
                        where[str(self.fields[idx].name)] = (k, t, t + 1)
                elif tok.startswith("F") and not tok.endswith("b]"):
                    idx = int(tok[1:])
                    if self.fields[idx].name:
                        where[str(self.fields[idx].name)] = (k, t, None)
        return where


def _split_strict(lines: pa.Array, layout: Layout) -> dict[str, pa.Array]:
    parts = pc.split_pattern(lines, '"')
    segments: dict[int, pa.Array] = {}
    out: dict[str, pa.Array] = {}
    for name, (k, t, t2) in layout.positions().items():
        if t is None:
            out[name] = nth(parts, k)
            continue
        if k not in segments:
            segments[k] = pc.split_pattern(nth(parts, k), " ")
        col = nth(segments[k], t)
        if t2 is not None:
            col = pc.binary_join_element_wise(col, nth(segments[k], t2), pa.scalar(" ", col.type))
        out[name] = col
    return out


def _extract(lines: pa.Array, layout: Layout) -> tuple[dict[str, pa.Array], pa.Array]:
    st = pc.extract_regex(lines, layout.full_regex())
    matched = pc.is_valid(st)
    out: dict[str, pa.Array] = {}
    for f in layout.fields:
        if not f.name:
            continue
        col = pc.struct_field(st, f.name)
        if f.kind == "quoted":  # the escape-aware tier is the only one that can meet \" or \\
            col = pc.replace_substring_regex(col, r'\\(["\\])', r"\1")
        out[f.name] = col
    return out, matched


def parse(lines: pa.Array, layouts: tuple[Layout, ...]) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Cut every line into the layouts' named fields (as strings, aligned with ``lines``).

    Returns the columns and the positions of the lines no layout parses (their columns are null).
    Layouts are tried in order; all must name the same fields, or the missing ones are null.
    """
    n = len(lines)
    names = sorted({name for lay in layouts for name in lay.names})
    hit = pc.match_substring_regex(lines, layouts[0].strict_regex())
    hit_np = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
    if n == 0 or hit_np.mean() < 0.5:
        return _parse_tiers(lines, layouts)
    # Split every line as if strict (other lines give nulls or junk), then overwrite the few
    # others with what the slower tiers make of them: cheaper than filtering and re-ordering.
    cols = _split_strict(lines, layouts[0])
    if hit_np.all():
        return {name: _as_large(cols.get(name), n) for name in names}, np.zeros(0, dtype=np.int64)
    rest = np.flatnonzero(~hit_np)
    rest_cols, rest_bad = _parse_tiers(lines.filter(pc.invert(hit)), layouts)
    mask = pa.array(~hit_np)
    out = {name: pc.replace_with_mask(_as_large(cols.get(name), n), mask, _as_large(rest_cols.get(name), len(rest)))
           for name in names}
    return out, rest[rest_bad]


def _parse_tiers(lines: pa.Array, layouts: tuple[Layout, ...]) -> tuple[dict[str, pa.Array], np.ndarray]:
    n = len(lines)
    names = sorted({name for lay in layouts for name in lay.names})
    pieces: list[tuple[np.ndarray, dict[str, pa.Array]]] = []
    todo = np.arange(n)
    current = lines
    for strict_pass in (True, False):
        for lay in layouts:
            if len(todo) == 0:
                break
            if strict_pass:
                hit = pc.match_substring_regex(current, lay.strict_regex())
                hit_np = np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
                if not hit_np.any():
                    continue
                chosen = current if hit_np.all() else current.filter(hit)
                pieces.append((todo[hit_np], _split_strict(chosen, lay)))
            else:
                cols, matched = _extract(current, lay)
                hit_np = np.asarray(pc.fill_null(matched, False).to_numpy(zero_copy_only=False), dtype=bool)
                if not hit_np.any():
                    continue
                mask = pa.array(hit_np)
                pieces.append((todo[hit_np], {k: v.filter(mask) for k, v in cols.items()}))
            todo = todo[~hit_np]
            current = current.filter(pa.array(~hit_np))
    if not pieces:
        return {name: pa.nulls(n, pa.large_string()) for name in names}, todo
    if len(pieces) == 1 and len(todo) == 0:
        cols = pieces[0][1]
        return {name: _as_large(cols.get(name), n) for name in names}, todo
    order = np.concatenate([p[0] for p in pieces] + [todo])
    where = pa.array(np.argsort(order, kind="stable"))
    out = {}
    for name in names:
        chunks = [_as_large(p[1].get(name), len(p[0])) for p in pieces] + [pa.nulls(len(todo), pa.large_string())]
        out[name] = pa.concat_arrays(chunks).take(where)
    return out, todo


def _as_large(col: pa.Array | None, n: int) -> pa.Array:
    if col is None:
        return pa.nulls(n, pa.large_string())
    return col if col.type == pa.large_string() else col.cast(pa.large_string())


# --- the slow path: say why a line does not parse ------------------------------------------------

def tokenize(text: str) -> tuple[list[tuple[str, str, int]], str | None]:
    """Split a line into (kind, value, 1-based column) tokens: ``q`` quoted, ``b`` bracketed, ``t`` bare.

    Returns the tokens and, when the quoting or bracketing is broken, the reason.
    """
    tokens: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        start = i
        if text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n or (j + 1 < n and text[j + 1] != " "):
                return tokens, f"unclosed quote at column {start + 1}"
            tokens.append(("q", text[i + 1:j], start + 1))
            i = j + 1
        elif text[i] == "[":
            j = text.find("]", i)
            if j < 0:
                return tokens, f"unclosed bracket at column {start + 1}"
            tokens.append(("b", text[i:j + 1], start + 1))
            i = j + 1
        else:
            j = text.find(" ", i)
            j = n if j < 0 else j
            tokens.append(("t", text[i:j], start + 1))
            i = j
    return tokens, None


def _show(value: str) -> str:
    return repr(value if len(value) <= _SHOW else value[:_SHOW] + "..")


def _check(field: Field, kind: str, value: str) -> str | None:
    label = field.label or field.name or field.kind
    if field.kind == "quoted":
        return None if kind == "q" else f"{label} is not quoted: {_show(value)}"
    if field.kind == "clftime":
        try:
            datetime.strptime(value, CLF_TIME_FORMAT)
        except ValueError:
            return f"bad timestamp {_show(value)}"
        return None
    if field.kind == "stamp14":
        try:
            datetime.strptime(value, "%Y%m%d%H%M%S")
            if len(value) != 14:
                raise ValueError(value)
        except ValueError:
            return f"bad timestamp {_show(value)}"
        return None
    body = _KINDS[field.kind][1]
    if kind != "t" or not re.fullmatch(body, value):
        return f"bad {label} {_show(value)}"
    return None


def diagnose(text: str, layouts: tuple[Layout, ...]) -> str:
    """The most specific reason why no layout parses ``text``."""
    tokens, broken = tokenize(text)
    if broken:
        return broken
    counts = []
    for lay in layouts:
        want = len(lay.fields)
        counts.append(f"at least {want}" if lay.tail else str(want))
        if len(tokens) < want or (len(tokens) > want and not lay.tail):
            continue
        for f, (kind, value, _col) in zip(lay.fields, tokens):
            reason = _check(f, kind, value)
            if reason:
                return reason
        return f"does not match the {lay.name} layout"
    return f"wrong field count: {len(tokens)} fields, expected {' or '.join(counts)}"


# --- from fields to canonical columns ------------------------------------------------------------

Build = Callable[[dict[str, pa.Array], dict[int, str]], tuple[dict[str, pa.Array], dict[int, str]]]


def parse_lines(lines: Lines, layouts: tuple[Layout, ...]) -> tuple[dict[str, pa.Array], np.ndarray]:
    """``parse`` over a file's lines, cutting the strict lines of the first layout by byte position
    (``logs_tokens``) when its fields end the line; the other lines go through the tiers."""
    from .logs_tokens import cut   # compiled kernels: imported when a log is parsed, not by lint

    if not FAST_PATH:
        return _parse_tiers(lines.text, layouts)
    first = layouts[0]
    n = len(lines)
    if n == 0:
        return parse(lines.text, layouts)
    named = {i for i, f in enumerate(first.fields) if f.name}
    ok, columns = cut(lines, [f.kind for f in first.fields], keep=named, tail=first.tail)
    names = sorted({name for lay in layouts for name in lay.names})
    cols = {str(f.name): columns[i] for i, f in enumerate(first.fields) if f.name}
    if ok.all():
        return {name: _as_large(cols.get(name), n) for name in names}, np.zeros(0, dtype=np.int64)
    if ok.mean() < 0.5:
        return parse(lines.text, layouts)
    rest = np.flatnonzero(~ok)
    text = spans(pa.py_buffer(lines.data), lines.starts[rest], lines.ends[rest])
    text = pc.utf8_rtrim(text, characters="\r\n")
    rest_cols, rest_bad = _parse_tiers(text, layouts)
    if len(rest_bad) == len(rest):
        # None of them parses (the usual case: a damaged line or two): their rows are quarantined,
        # so they only need to be null, which one validity bitmap shared by every column makes
        # them, instead of a copy of every column.
        validity = pa.array(ok).buffers()[1]
        return {name: _nulls_where(_as_large(cols.get(name), n), validity, ok) for name in names}, rest
    mask = pa.array(~ok)
    out = {name: pc.replace_with_mask(_as_large(cols.get(name), n), mask, _as_large(rest_cols.get(name), len(rest)))
           for name in names}
    return out, rest[rest_bad]


def _nulls_where(col: pa.Array, validity: pa.Buffer, ok: np.ndarray) -> pa.Array:
    """``col`` with the rows where ``ok`` is False null (``validity``: ``ok`` as a bitmap)."""
    if col.null_count == 0 and col.offset == 0:
        return pa.Array.from_buffers(col.type, len(col), [validity, *col.buffers()[1:]])
    return pc.if_else(pa.array(ok), col, pa.scalar(None, col.type))


def read_layout_table(path: str, layouts: tuple[Layout, ...], build: Build, *, data: Stored | None = None
                      ) -> LogTable:
    """Read a file of one of ``layouts``: split, parse, diagnose failures, convert with ``build``.

    ``data``: the file's stored bytes when the caller has read them already (see ``read_lines``)."""
    lines, _ = read_lines(path, data=data)
    cols, bad = parse_lines(lines, layouts)
    failures = {int(i): diagnose(lines.raw(int(i)).decode("utf-8"), layouts) for i in bad}
    out, more = build(cols, failures)
    failures.update(more)
    return assemble_table(lines, out, failures)


def read_layout(path: str, layouts: tuple[Layout, ...], build: Build) -> ReadResult:
    """``read_layout_table`` as the canonical pandas frame."""
    return read_layout_table(path, layouts, build).to_result()


def canonical(cols: dict[str, pa.Array], failures: dict[int, str], *, domain: str | None,
              account_id: str | None, time_format: str = CLF_TIME_FORMAT, time_suffix: str = ""
              ) -> tuple[dict[str, pa.Array], dict[int, str]]:
    """Fields named after the canonical columns (plus ``time``, ``request``, ``request_time``
    in ms) → canonical columns, and the rows whose values do not convert."""
    n = len(cols["time"])
    more: dict[int, str] = {}
    ts = parse_times(cols["time"], time_format, suffix=time_suffix)
    more.update(bad_values(cols["time"], ts, "timestamp", failures))
    status = to_int(cols["status"])
    more.update(bad_values(cols["status"], status, "status", {**failures, **more}))
    sent = to_int(cols["bytes_sent"], dash_is_zero=True)
    more.update(bad_values(cols["bytes_sent"], sent, "byte count", {**failures, **more}))
    if "request" in cols:
        req = request_columns(cols["request"])
    else:  # formats that log method and target as separate fields
        uri = cols["uri"]
        path, query, host = split_uri(uri)
        req = {"method": cols.get("method", pa.nulls(n, pa.large_string())), "uri": uri,
               "path": path, "query": query, "host": host}
    out: dict[str, pa.Array] = {
        "ts": ts,
        "client_ip": cols["client_ip"],
        "domain": fill(pc.coalesce(cols["domain"], req["host"]) if "domain" in cols else req["host"], domain, n),
        "status": status,
        "bytes_sent": sent,
        "referer": dash_to_null(cols["referer"]) if "referer" in cols else pa.nulls(n, pa.large_string()),
        "user_agent": dash_to_null(cols["user_agent"]) if "user_agent" in cols else pa.nulls(n, pa.large_string()),
        "account_id": constant(account_id, n),
        **{k: req[k] for k in ("method", "uri", "path", "query")},
    }
    if "username" in cols:
        out["username"] = dash_to_null(cols["username"])
    if "request_time" in cols:
        out["request_time_ms"] = to_float(cols["request_time"])
    if "cache_status" in cols:
        out["cache_status"] = pc.utf8_upper(dash_to_null(cols["cache_status"]))
    return out, more
