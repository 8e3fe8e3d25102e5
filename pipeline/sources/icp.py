"""ICP filing records (as exported from the MIIT query) and the provider's licence records: csv, jsonl.

Both map onto canonical frames defined here (``FILINGS``, ``LICENCES``), line-accurately: every data
row is parsed or quarantined with its file, line and reason. A malformed filing or operating-licence
number in these authoritative records is quarantined, never trusted.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import Location, SourceError
from ..licensing.numbers import NumberError, canonical_filing, parse_filing, parse_operating_licence, \
    parse_security_filing
from ..records import PROVENANCE, STR, TS, conform, empty
from ..registry import Registry
from .base import ReadResult, open_bytes, quarantine_frame, utf16_advice
from .objects import csv_record, first_nonblank, read_delimited, read_json_lines, split_lines

FILINGS: dict[str, str] = {
    "unit_name": STR,       # 主办单位名称
    "nature": STR,          # 主办单位性质 (企业, 个人, ...)
    "main_licence": STR,    # the entity's filing number, 浙ICP备12345678号
    "service_licence": STR,  # the site's filing number, 浙ICP备12345678号-1
    "domain": STR,          # lower case, as filed (a filed domain covers its sub-domains)
    "content_types": STR,   # 前置审批项, comma-separated (新闻, 出版, 文化, ...)
    "updated_at": TS,       # 审核通过日期 (Beijing time in the export)
    "limit_access": "boolean",  # 是否限制接入
    "status": STR,          # active | revoked
    **PROVENANCE,
}

LICENCES: dict[str, str] = {
    "licence_type": STR,    # one of LICENCE_TYPES
    "number": STR,
    "holder": STR,          # the licensed entity
    "domains": STR,         # comma-separated; empty: the licence covers every site of the holder
    "valid_from": TS,
    "valid_to": TS,         # null: no end date
    **PROVENANCE,
}

# MIIT export field → canonical column.
FILING_FIELDS = {"unitName": "unit_name", "natureName": "nature", "mainLicence": "main_licence",
                 "serviceLicence": "service_licence", "domain": "domain", "contentTypeName": "content_types",
                 "updateRecordTime": "updated_at", "limitAccess": "limit_access", "status": "status"}
LICENCE_FIELDS = {"type": "licence_type", "number": "number", "holder": "holder", "domains": "domains",
                  "valid_from": "valid_from", "valid_to": "valid_to"}

# Licence type keys and the names they are written under (Chinese names as on the certificates).
LICENCE_TYPES: dict[str, tuple[str, ...]] = {
    "icp_operating": ("ICP经营许可证", "ICP证", "增值电信业务经营许可证", "B2"),
    "network_culture": ("网络文化经营许可证",),
    "audiovisual": ("信息网络传播视听节目许可证",),
    "news": ("互联网新闻信息服务许可证",),
    "publishing": ("网络出版服务许可证",),
    "drugs": ("互联网药品信息服务资格证书",),
    "public_security": ("公安联网备案", "公网安备"),
}
_TYPE_OF = {name: key for key, names in LICENCE_TYPES.items() for name in (key, *names)}
_TRUE = {"是", "true", "1", "yes", "y"}
_FALSE = {"否", "false", "0", "no", "n", ""}
STATUSES = {"active": "active", "正常": "active", "revoked": "revoked", "已注销": "revoked", "注销": "revoked",
            "已撤销": "revoked"}
BEIJING = "Asia/Shanghai"
LIST_FIELDS = {"domains", "contentTypeName"}   # JSON lists allowed here, joined with ","

ICP_FORMATS: Registry[Callable[[str], ReadResult]] = Registry("icp format")
LICENCE_FORMATS: Registry[Callable[[str], ReadResult]] = Registry("licences format")


class BadRow(Exception):
    """A row that cannot be used; the message is its quarantine reason."""


@dataclass(frozen=True)
class RawRow:
    line: int                       # 1-based first physical line
    raw: bytes
    values: dict[str, str | None]   # input field → text (None: absent or empty)


def _scalar(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and name in LIST_FIELDS and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, (dict, list)):
        raise BadRow(f"{name} is not a scalar: got {'array' if isinstance(value, list) else 'object'}")
    text = str(value).strip()
    return text or None


def read_rows(path: str, fmt: str, fields: Mapping[str, str], required: str) -> tuple[list[RawRow], list[tuple[str, int, str, bytes]]]:
    """Rows of a csv (header naming ``fields``) or jsonl file as text values, and the lines quarantined."""
    lines = split_lines(open_bytes(path))
    bad: list[tuple[str, int, str, bytes]] = []
    rows: list[RawRow] = []
    if fmt == "jsonl":
        where, objs, bad = read_json_lines(lines, path)
        for i, obj in zip(where.tolist(), objs):
            raw = lines.raw(i)
            try:
                rows.append(RawRow(i + 1, raw, {k: _scalar(k, obj.get(k)) for k in fields}))
            except BadRow as exc:
                bad.append((path, i + 1, str(exc), raw))
        return rows, bad
    head = first_nonblank(lines)
    if head is None:
        return [], []
    hint = f"the header names the fields {', '.join(fields)}"
    try:
        names = [n.strip() for n in csv_record(lines.raw(head).decode("utf-8-sig"), ",")]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"unreadable CSV header: {exc}", location=Location(path, head + 1, 1),
                          hint=utf16_advice(lines.raw(head)) or hint) from None
    if required not in names:
        raise SourceError(f"CSV header has no {required!r} column (got {', '.join(names)})",
                          location=Location(path, head + 1, 1), hint=hint)
    text_rows = read_delimited(lines, path, names=names, first=head + 1)
    bad = list(text_rows.bad)
    for rec in text_rows.frame.to_dict("records"):
        values = {k: (None if pd.isna(rec.get(k)) else str(rec[k]).strip() or None) if k in rec else None
                  for k in fields}
        rows.append(RawRow(int(rec["_line"]), lines.raw(int(rec["_first"]), int(rec["_last"])), values))
    return rows, bad


def _time(name: str, text: str | None) -> pd.Timestamp | None:
    """ISO 8601 or 'YYYY-MM-DD HH:MM:SS'; a time without an offset is Beijing time, as MIIT writes it."""
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise BadRow(f"{name} is not a date or time: {text!r}") from None
    if pd.isna(ts):
        raise BadRow(f"{name} is not a date or time: {text!r}")
    return (ts.tz_localize(BEIJING) if ts.tzinfo is None else ts).tz_convert("UTC")


def filing_record(v: Mapping[str, str | None]) -> dict[str, Any]:
    """One filing's canonical fields; raises BadRow with the reason."""
    domain = (v.get("domain") or "").lower().rstrip(".")
    if not domain or " " in domain or "." not in domain:
        raise BadRow(f"domain is missing or not a domain name: {v.get('domain')!r}")
    service = v.get("serviceLicence")
    if service is None:
        raise BadRow("serviceLicence is missing")
    try:
        site = parse_filing(service)
        if site.site is None:
            raise BadRow(f"serviceLicence {service!r} lacks the site suffix -n")
        main = canonical_filing(v.get("mainLicence") or site.main)
    except NumberError as exc:
        raise BadRow(str(exc)) from None
    if main != site.main:
        raise BadRow(f"serviceLicence {service!r} does not extend mainLicence {v.get('mainLicence')!r}")
    limit = (v.get("limitAccess") or "").lower()
    if limit not in _TRUE | _FALSE:
        raise BadRow(f"limitAccess must be 是 or 否 (or true / false), not {v.get('limitAccess')!r}")
    status = STATUSES.get((v.get("status") or "active").lower())
    if status is None:
        raise BadRow(f"status must be active or revoked (正常 / 已注销), not {v.get('status')!r}")
    if not v.get("unitName"):
        raise BadRow("unitName is missing")
    return {"unit_name": v["unitName"], "nature": v.get("natureName"), "main_licence": main,
            "service_licence": str(site), "domain": domain, "content_types": v.get("contentTypeName"),
            "updated_at": _time("updateRecordTime", v.get("updateRecordTime")),
            "limit_access": limit in _TRUE, "status": status}


def licence_record(v: Mapping[str, str | None]) -> dict[str, Any]:
    """One licence's canonical fields; raises BadRow with the reason."""
    kind = _TYPE_OF.get(v.get("type") or "")
    if kind is None:
        raise BadRow(f"unknown licence type {v.get('type')!r} (valid: {', '.join(LICENCE_TYPES)} or their Chinese names)")
    number = v.get("number")
    if not number:
        raise BadRow("number is missing")
    try:
        if kind == "icp_operating":
            parse_operating_licence(number)
        elif kind == "public_security":
            parse_security_filing(number)
    except NumberError as exc:
        raise BadRow(str(exc)) from None
    if not v.get("holder"):
        raise BadRow("holder is missing")
    start, end = _time("valid_from", v.get("valid_from")), _time("valid_to", v.get("valid_to"))
    if start is not None and end is not None and end < start:
        raise BadRow(f"valid_to {v.get('valid_to')} is before valid_from {v.get('valid_from')}")
    domains = ",".join(d.strip().lower() for d in (v.get("domains") or "").replace(";", ",").split(",") if d.strip())
    return {"licence_type": kind, "number": number.strip(), "holder": v["holder"], "domains": domains or None,
            "valid_from": start, "valid_to": end}


def _read(path: str, fmt: str, fields: Mapping[str, str], required: str,
          make: Callable[[Mapping[str, str | None]], dict[str, Any]], schema: Mapping[str, str]) -> ReadResult:
    rows, bad = read_rows(path, fmt, fields, required)
    good: list[dict[str, Any]] = []
    for row in rows:
        try:
            good.append({**make(row.values), "source_file": path, "source_line": row.line})
        except BadRow as exc:
            bad.append((path, row.line, str(exc), row.raw))
    bad.sort(key=lambda b: b[1])
    records = conform(pd.DataFrame(good), schema) if good else empty(schema)
    return ReadResult(records, quarantine_frame(bad), len(good) + len(bad))


@ICP_FORMATS.register("csv")
def read_filings_csv(path: str) -> ReadResult:
    """Filings as CSV with the MIIT field names as header."""
    return _read(path, "csv", FILING_FIELDS, "serviceLicence", filing_record, FILINGS)


@ICP_FORMATS.register("jsonl")
def read_filings_jsonl(path: str) -> ReadResult:
    """Filings as JSON lines keyed by the MIIT field names."""
    return _read(path, "jsonl", FILING_FIELDS, "serviceLicence", filing_record, FILINGS)


@LICENCE_FORMATS.register("csv")
def read_licences_csv(path: str) -> ReadResult:
    """Licence records as CSV: type, number, holder, domains, valid_from, valid_to."""
    return _read(path, "csv", LICENCE_FIELDS, "number", licence_record, LICENCES)


@LICENCE_FORMATS.register("jsonl")
def read_licences_jsonl(path: str) -> ReadResult:
    """Licence records as JSON lines (``domains`` may be a list)."""
    return _read(path, "jsonl", LICENCE_FIELDS, "number", licence_record, LICENCES)


__all__ = ["FILINGS", "LICENCES", "ICP_FORMATS", "LICENCE_FORMATS", "LICENCE_TYPES", "read_rows"]
