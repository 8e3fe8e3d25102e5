"""Evidence as a case page shows it: each kept hit with where it was found, the matched record's
fields, the request line for access logs, and each matched field's original text cut into plain
and highlighted pieces. The pieces are data; the template escapes every one of them, so attacker-
controlled text (object keys, URLs, titles, user agents) is only ever shown as text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

_META = ("hit_key", "source_file", "source_line", "event_time", "matches")
_AGG = ("window_start", "window_end", "value", "threshold")


@dataclass
class Piece:
    text: str
    mark: bool = False


@dataclass
class FieldView:
    name: str
    pieces: list[Piece]


@dataclass
class ItemView:
    where: str
    event_time: str
    request_line: str | None
    record: list[tuple[str, str]]
    fields: list[FieldView] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def pieces(text: str, spans: list[tuple[int, int]]) -> list[Piece]:
    """``text`` cut at the (merged, clamped) spans; the spans' pieces are marked."""
    merged: list[list[int]] = []
    for s, e in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if s >= e:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[Piece] = []
    pos = 0
    for s, e in merged:
        if s > pos:
            out.append(Piece(text[pos:s]))
        out.append(Piece(text[s:e], True))
        pos = e
    if pos < len(text):
        out.append(Piece(text[pos:]))
    return out


def _span(match: dict[str, Any]) -> tuple[int, int] | None:
    span = match.get("span")
    if isinstance(span, (list, tuple)) and len(span) == 2 and all(isinstance(x, int) for x in span):
        return int(span[0]), int(span[1])
    return None


def _part_offset(uri: str, part: str) -> int | None:
    """Where the path (or the query) starts in a request target."""
    if part == "query":
        q = uri.find("?")
        return q + 1 if q >= 0 else None
    if uri.startswith("/"):
        return 0
    if "://" in uri:   # absolute form: the path follows the host
        slash = uri.find("/", uri.find("://") + 3)
        return slash if slash >= 0 else None
    return None


def _locate(item: dict[str, Any], name: Any, text: str, span: tuple[int, int] | None
            ) -> tuple[str, str, tuple[int, int]] | None:
    """For a match on a field the evidence does not keep (a log's path and query are parsed out of
    its URI; a match may be on a normalized form): the kept field holding the matched text, and
    where. A log's path or query span is found in the percent-decoded URI, which those are cut from;
    otherwise the text's first place in a kept field. None: the text is in no kept field."""
    uri = item.get("uri")
    decoded = unquote(uri, errors="replace") if isinstance(uri, str) else None
    label = "uri (percent-decoded)" if decoded is not None and decoded != uri else "uri"
    if decoded is not None and name in ("path", "query") and span is not None:
        base = _part_offset(decoded, str(name))
        if base is not None and decoded[base + span[0]:base + span[1]] == text:
            return label, decoded, (base + span[0], base + span[1])
    for key, value in item.items():
        if key not in _META and isinstance(value, str) and text and text in value:
            at = value.index(text)
            return key, value, (at, at + len(text))
    if decoded is not None and text and text in decoded:
        at = decoded.index(text)
        return label, decoded, (at, at + len(text))
    return None


def view(item: dict[str, Any]) -> ItemView:
    where = ":".join(str(item[k]) for k in ("source_file", "source_line") if item.get(k) is not None)
    record = [(k, "" if v is None else str(v)) for k, v in item.items() if k not in _META]
    request_line = None
    if item.get("uri") is not None:
        # the access log's request as the client sent it (method and URI; the status it got)
        request_line = " ".join(str(item[k]) for k in ("method", "uri") if item.get(k) is not None)
        if item.get("status") is not None:
            request_line += f"  → {item['status']}"
    out = ItemView(where or "(no source line)", str(item.get("event_time") or ""), request_line, record)
    matches = [m for m in item.get("matches", []) if isinstance(m, dict)]
    # kept field → (its text, the spans to mark in it, the matched fields found there)
    by_field: dict[str, tuple[str, list[tuple[int, int]], list[str]]] = {}
    for m in matches:
        # matchers record different keys (a hash match has no normalized text, an aggregate no
        # pattern): the page reads these four from every match
        m = {"kind": None, "pattern": None, "text": None, "normalized": None, **m}
        name, text, span = m.get("field"), m.get("text"), _span(m)
        original = item.get(name) if isinstance(name, str) else None
        # the span is an offset into the record's original field value: highlight it in place when
        # the record is kept and the span still cuts out the matched text
        if isinstance(original, str) and span and original[span[0]:span[1]] == text:
            entry = by_field.setdefault(str(name), (original, [], []))
            entry[1].append(span)
            entry[2].append(str(name))
            m = {**m, "in_place": True}
        elif isinstance(text, str) and (found := _locate(item, name, text, span)) is not None:
            label, value, where_span = found
            entry = by_field.setdefault(label, (value, [], []))
            entry[1].append(where_span)
            entry[2].append(str(name))
            m = {**m, "in_place": True}
        out.matches.append(m)
        for line in m.get("lines", [])[:20] if isinstance(m.get("lines"), list) else []:
            out.lines.append(str(line))
    for label, (value, spans, names) in by_field.items():
        others = [n for n in dict.fromkeys(names) if n != label]
        out.fields.append(FieldView(label if not others else f"{', '.join(others)} · in {label}", pieces(value, spans)))
    for m in out.matches:
        if not m.get("in_place") and isinstance(m.get("text"), str):
            # the matched text is in no kept field (e.g. a key's normalized form): the text itself, marked
            out.fields.append(FieldView(str(m.get("field") or "text"), [Piece(m["text"], True)]))
    return out
