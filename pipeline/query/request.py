"""A regulator's request, validated: who asks, what it selects, which time window, which fields.

Times: ``start`` is inclusive and ``end`` exclusive; any ISO-8601 form is accepted; a time with an
offset (``+08:00``, ``Z``) is converted to UTC; a naive time, and a bare date (its midnight), are taken
in the deployment's zone (``retention.timezone``, default Asia/Shanghai: regulators' dates are local). IPs and CIDR blocks (IPv4 or IPv6) become ranges of the store's sortable IP key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import QueryError
from ..records import LOGS
from ..retention import ipkey

SELECTORS = ("ip", "cidr", "domain", "url_contains", "account")
TimeLike = str | datetime | date | None


def zone(name: str) -> tzinfo:
    """The named IANA zone (``retention.timezone``); an unknown name lists how to spell one."""
    try:
        return timezone.utc if name.upper() == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"unknown time zone {name!r} in retention.timezone",
                         hint="an IANA name such as Asia/Shanghai, or UTC") from None


def instant(value: TimeLike, name: str, tz: tzinfo = timezone.utc) -> datetime | None:
    """A time bound as an aware UTC datetime; naive times and bare dates are in ``tz``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise QueryError(f"{name} {value!r} is not an ISO-8601 time",
                             hint="e.g. 2026-08-01, 2026-08-01T12:00:00+08:00 or 2026-08-01T04:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class Request:
    request_ref: str
    authority: str
    requested_by: str | None
    ip: str | None = None
    cidr: str | None = None
    domain: str | None = None
    url_contains: str | None = None
    account: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    fields: tuple[str, ...] = tuple(LOGS)
    ip_range: tuple[str, str] | None = field(default=None, compare=False)
    tz: tzinfo = field(default=timezone.utc, compare=False)   # the zone of naive times and bare dates

    def selectors(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in SELECTORS if getattr(self, name) is not None}

    def days(self) -> tuple[date | None, date | None]:
        """First and last UTC day the window touches (end is exclusive)."""
        first = self.start.date() if self.start else None
        last = (self.end - timedelta(microseconds=1)).date() if self.end else None
        return first, last

    def describe(self) -> dict[str, Any]:
        """The request as recorded in manifests and the audit log."""
        return {
            "request_ref": self.request_ref, "authority": self.authority, "requested_by": self.requested_by,
            "selectors": self.selectors(),
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "fields": list(self.fields),
            "timezone": str(self.tz),
        }

    def window(self) -> str:
        """The window in the request's zone, for people: ``2026-11-01 00:00 .. 2026-11-03 00:00 (Asia/Shanghai)``."""
        def local(t: datetime | None) -> str:
            return t.astimezone(self.tz).isoformat(timespec="seconds") if t else "…"
        return f"{local(self.start)} .. {local(self.end)} ({self.tz})"


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def build_request(*, request_ref: str | None, authority: str | None, requested_by: str | None,
                  ip: str | None, cidr: str | None, domain: str | None, url_contains: str | None,
                  account: str | None, start: TimeLike, end: TimeLike,
                  fields: Sequence[str] | str | None, tz: tzinfo = timezone.utc) -> Request:
    """Validate everything; raise QueryError naming what is wrong and how to fix it."""
    request_ref, authority = _clean(request_ref), _clean(authority)
    if not request_ref or not authority:
        raise QueryError("a query must name the request it answers and the requesting authority",
                         hint="pass --request-ref (the request's reference number) and --authority")
    ip, cidr, domain, account = _clean(ip), _clean(cidr), _clean(domain), _clean(account)
    if url_contains is not None and not url_contains.strip():
        url_contains = None   # every URL contains "": it selects nothing out
    if domain is not None and not domain.strip(". *"):
        domain = None
    if cidr is not None and cidr.rstrip().endswith("/0"):
        raise QueryError(f"--cidr {cidr} covers every address: a query over the whole store is not allowed "
                         "(PIPL Art. 6)", hint="name the block the request is about, e.g. 203.0.113.0/24")
    if not any((ip, cidr, domain, url_contains, account)):
        raise QueryError("a query must select something: an IP, a CIDR block, a domain, a URL substring or an account",
                         hint="a query over the whole store is not allowed (PIPL Art. 6); add --ip, --cidr, "
                              "--domain, --url-contains or --account")
    ip_range = None
    if ip is not None:
        key = ipkey.parse_key(ip)
        if key is None:
            raise QueryError(f"--ip {ip!r} is not an IPv4 or IPv6 address", hint="e.g. 203.0.113.7 or 2001:db8::1")
        ip_range = (key, key)
    if cidr is not None:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise QueryError(f"--cidr {cidr!r} is not a CIDR block", hint="e.g. 203.0.113.0/24 or 2001:db8::/32") from None
        low, high = ipkey.range_of(network)
        if ip_range is not None:   # both given: the intersection
            low, high = max(low, ip_range[0]), min(high, ip_range[1])
        ip_range = (low, high)
    if domain is not None:
        domain = domain.lower().rstrip(".")
    begin, finish = instant(start, "start", tz), instant(end, "end", tz)
    if begin and finish and begin >= finish:
        raise QueryError(f"the window is empty: start {begin.isoformat()} is not before end {finish.isoformat()}",
                         hint="start is inclusive, end exclusive")
    if isinstance(fields, str):
        fields = [f for f in (p.strip() for p in fields.split(",")) if f]
    chosen = tuple(fields) if fields else tuple(LOGS)
    unknown = [f for f in chosen if f not in LOGS]
    if unknown:
        raise QueryError(f"unknown field(s): {', '.join(unknown)}", hint=f"valid fields: {', '.join(LOGS)}")
    return Request(request_ref, authority, _clean(requested_by), ip, cidr, domain, url_contains, account,
                   begin, finish, tuple(dict.fromkeys(chosen)), ip_range, tz)
