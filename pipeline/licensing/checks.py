"""The licensing checks: a registry of named checks, each with its declared params and a function
from one site (a bound domain with its filings, licences, traffic and inferred fields) to a finding.

Adding a check is one decorated function here and its name in ``rules.loader.CHECKS``; the loader
validates a rule's ``params`` against the check's declared params before any data is read.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..registry import Registry
from .inference import FIELD_LICENCES, SITE_PREFIX, InferredField
from .numbers import NumberError, canonical_filing, parse_filing


@dataclass(frozen=True)
class Param:
    """One parameter a check (or a site rule) accepts: its type, default, lower bound and meaning."""

    kind: type
    default: Any
    doc: str
    minimum: int | None = None


@dataclass(frozen=True)
class Owner:
    account_id: str
    verified_entity: str
    declared_filing: str


@dataclass(frozen=True)
class Site:
    """Everything the checks know about one bound domain."""

    domain: str
    owners: tuple[Owner, ...]                 # sorted by account id
    filings: tuple[dict[str, Any], ...]       # covering the domain: most specific, active, newest first
    licences: tuple[dict[str, Any], ...]      # valid licence records covering the domain or its entity
    requests: int = 0
    bytes_sent: int = 0
    first_ts: pd.Timestamp | None = None
    last_ts: pd.Timestamp | None = None
    objects: int = 0
    origin_buckets: tuple[str, ...] = ()
    fields: Mapping[str, InferredField] = field(default_factory=dict)

    @property
    def active(self) -> dict[str, Any] | None:
        return next((f for f in self.filings if f["status"] == "active"), None)

    @property
    def usable(self) -> dict[str, Any] | None:
        """The filing the site may be served under: active and not limited."""
        return next((f for f in self.filings if f["status"] == "active" and not f["limit_access"]), None)

    @property
    def day(self) -> str:
        """Day of the latest traffic seen: a new day of serving is a new hit, a re-scan is not."""
        return self.last_ts.strftime("%Y-%m-%d") if self.last_ts is not None else "-"


@dataclass(frozen=True)
class Finding:
    account_id: str
    facts: str                                # the stable part of the hit key
    evidence: tuple[dict[str, Any], ...]


# What a check may need from the config's sources beyond the bindings, and what it is called in messages.
INPUTS = {"icp": "filing records (sources.icp)"}


@dataclass(frozen=True)
class Check:
    name: str
    doc: str
    params: Mapping[str, Param]
    run: Callable[[Site, Mapping[str, Any]], Finding | None]
    # source kinds (INPUTS) without which the check cannot tell a violation from missing data: with no
    # filing records configured every site would look unfiled, so such a check is skipped instead
    needs: tuple[str, ...] = ()


CHECKS: Registry[Check] = Registry("licensing check")
SITE_RULE_PARAMS = {"min_hits": Param(int, 1, "hits of the rule on one site before its field is inferred", 1)}


def check(name: str, doc: str, needs: tuple[str, ...] = (),
          **params: Param) -> Callable[[Callable[[Site, Mapping[str, Any]], Finding | None]], Check]:
    def register(fn: Callable[[Site, Mapping[str, Any]], Finding | None]) -> Check:
        c = Check(name, doc, params, fn, needs)
        CHECKS.register(name)(c)
        return c
    return register


def _problem(name: str, value: Any, spec: Param) -> str | None:
    if spec.kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else f"{name} takes a list of strings"
    if spec.kind is bool:
        return None if isinstance(value, bool) else f"{name} takes true or false"
    if isinstance(value, bool) or not isinstance(value, spec.kind):
        return f"{name} takes {spec.kind.__name__}, not {value!r}"
    if spec.minimum is not None and isinstance(value, (int, float)) and value < spec.minimum:
        return f"{name} must be at least {spec.minimum}, not {value!r}"
    return None


def params_problems(check_name: str | None, category: str, params: Any) -> list[tuple[str, str]]:
    """(message, hint) for each problem of a rule's ``params``: unknown keys, wrong types, bad values."""
    if check_name is not None:
        if check_name not in CHECKS:
            return []  # the loader reports the unknown check itself
        specs: Mapping[str, Param] = CHECKS.get(check_name).params
        what = f"check {check_name}"
    elif category.startswith(SITE_PREFIX):
        if category not in FIELD_LICENCES:
            return [(f"category {category!r} names no field of content",
                     f"site categories: {', '.join(FIELD_LICENCES)}")]
        specs, what = SITE_RULE_PARAMS, "site inference rules"
    else:
        return []
    if params is None:
        return []
    if not isinstance(params, dict):
        return [("params must be a mapping of name: value", "e.g. params: {min_requests: 100}")]
    out: list[tuple[str, str]] = []
    valid = ", ".join(specs) or "none"
    for key, value in params.items():
        spec = specs.get(str(key))
        if spec is None:
            out.append((f"unknown param {key!r} for {what}", f"valid params: {valid}"))
            continue
        why = _problem(str(key), value, spec)
        if why:
            out.append((why, spec.doc))
    fields = params.get("fields") if check_name == "licence_missing" else None
    if isinstance(fields, list):
        bad = [f for f in fields if f not in FIELD_LICENCES]
        if bad:
            out.append((f"fields: unknown field {bad[0]!r}", f"valid fields: {', '.join(FIELD_LICENCES)}"))
    return out


def resolved(c: Check, params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: params.get(name, spec.default) for name, spec in c.params.items()}


# --- evidence -------------------------------------------------------------------------------

_BRACKETS = str.maketrans("【】[]〔〕", "()()()")


def normalize_entity(name: str) -> str:
    """Entity names compared after folding width (NFKC), brackets and spaces: （北京）≡ (北京) ≡ ( 北京 )."""
    text = unicodedata.normalize("NFKC", name or "")
    text = text.translate(_BRACKETS)
    return "".join(text.split()).lower()


def _iso(ts: Any) -> str | None:
    return None if ts is None or pd.isna(ts) else pd.Timestamp(ts).isoformat()


def filing_item(site: Site, filing: dict[str, Any] | None = None) -> dict[str, Any]:
    f = filing if filing is not None else (site.filings[0] if site.filings else None)
    if f is None:
        return {"kind": "filing", "field": "serviceLicence", "pattern": "none",
                "text": f"no ICP filing record covers {site.domain}"}
    state = f["status"] + (", access limited" if f["limit_access"] else "")
    return {"kind": "filing", "field": "serviceLicence", "pattern": f["service_licence"],
            "text": f"{f['service_licence']} {f['unit_name']} for {f['domain']} ({state})",
            "record": {"serviceLicence": f["service_licence"], "mainLicence": f["main_licence"],
                       "unitName": f["unit_name"], "natureName": f.get("nature"), "domain": f["domain"],
                       "contentTypeName": f.get("content_types"), "limitAccess": bool(f["limit_access"]),
                       "status": f["status"], "updateRecordTime": _iso(f.get("updated_at")),
                       "file": f.get("source_file"), "line": f.get("source_line")}}


def traffic_item(site: Site) -> dict[str, Any]:
    objs = f"; {site.objects} object(s) in {', '.join(site.origin_buckets)}" if site.origin_buckets else ""
    return {"kind": "traffic", "field": "requests", "pattern": "scanned logs",
            "text": f"{site.requests} request(s), {site.bytes_sent} bytes sent"
                    + (f" from {_iso(site.first_ts)} to {_iso(site.last_ts)}" if site.last_ts is not None else "") + objs,
            "requests": site.requests, "bytes_sent": site.bytes_sent, "first_ts": _iso(site.first_ts),
            "last_ts": _iso(site.last_ts), "objects": site.objects, "origin_buckets": list(site.origin_buckets)}


def owners_item(site: Site) -> dict[str, Any]:
    return {"kind": "bindings", "field": "account_id", "pattern": "domain binding",
            "text": f"{site.domain} bound to " + ", ".join(
                f"{o.account_id} ({o.verified_entity or 'no verified entity'})" for o in site.owners),
            "owners": [o.__dict__ for o in site.owners]}


def _finding(site: Site, facts: str, items: list[dict[str, Any]], account: str | None = None) -> Finding:
    context = [filing_item(site), traffic_item(site)]
    if len(site.owners) > 1:
        context.append(owners_item(site))
    return Finding(account or (site.owners[0].account_id if site.owners else ""), facts, tuple(items + context))


# --- the checks -------------------------------------------------------------------------------

@check("unfiled_domain_serving", "a bound domain serves traffic or objects and has no active filing", ("icp",),
       min_requests=Param(int, 1, "requests in the scanned logs that count as serving", 1),
       min_objects=Param(int, 1, "objects in the domain's origin bucket that count as serving (0: ignore objects)", 0))
def unfiled_domain_serving(site: Site, p: Mapping[str, Any]) -> Finding | None:
    serving = site.requests >= p["min_requests"] or (p["min_objects"] > 0 and site.objects >= p["min_objects"])
    if not serving or site.active is not None:
        return None
    state = f"revoked {site.filings[0]['service_licence']}" if site.filings else "none"
    return _finding(site, f"{state}:{site.day}", [{
        "kind": "check", "field": "domain", "pattern": f"requests >= {p['min_requests']}",
        "text": f"{site.domain} served {site.requests} request(s) / {site.objects} object(s) with "
                + ("only a revoked filing" if site.filings else "no filing")}])


@check("filing_limited", "the domain's filing is limited (limitAccess) or revoked, and no other filing allows it",
       ("icp",),
       min_requests=Param(int, 0, "requests in the scanned logs needed (0: being bound is enough)", 0))
def filing_limited(site: Site, p: Mapping[str, Any]) -> Finding | None:
    if site.usable is not None or not site.filings or site.requests < p["min_requests"]:
        return None
    f = site.filings[0]
    state = "revoked" if f["status"] == "revoked" else "limited"
    return _finding(site, f"{f['service_licence']}:{state}", [{
        "kind": "check", "field": "status" if state == "revoked" else "limitAccess", "pattern": state,
        "text": f"filing {f['service_licence']} of {site.domain} is {state}"}])


def _approved(site: Site, approvals: tuple[str, ...]) -> bool:
    f = site.active
    return f is not None and any(a in str(f.get("content_types") or "") for a in approvals)


@check("licence_missing", "the site's inferred fields of content need a licence its filing and licence records lack",
       ("icp",),  # a prior approval in the filing's contentTypeName is one of the two ways to hold it
       fields=Param(list, sorted(FIELD_LICENCES), "fields of content to check (site_* categories)"))
def licence_missing(site: Site, p: Mapping[str, Any]) -> Finding | None:
    missing = []
    for category in sorted(site.fields):
        need = FIELD_LICENCES.get(category)
        if need is None or category not in p["fields"] or _approved(site, need.approvals):
            continue
        if any(lic["licence_type"] == need.licence_type for lic in site.licences):
            continue
        missing.append((category, need))
    if not missing:
        return None
    items: list[dict[str, Any]] = []
    for category, need in missing:
        items.append({"kind": "licence", "field": need.licence_type, "pattern": need.licence_name,
                      "text": f"{category} needs {need.licence_name}: no prior approval "
                              f"({'/'.join(need.approvals)}) in the filing and no valid licence record"})
        items.append(site.fields[category].evidence())
    number = site.active["service_licence"] if site.active else "none"
    return _finding(site, f"{'+'.join(n.licence_type for _, n in missing)}:{number}:{site.day}", items)


@check("entity_mismatch", "the filing's 主办单位 differs from the account's verified entity", ("icp",))
def entity_mismatch(site: Site, p: Mapping[str, Any]) -> Finding | None:
    f = site.active
    if f is None:
        return None
    wrong = [o for o in site.owners if o.verified_entity
             and normalize_entity(o.verified_entity) != normalize_entity(f["unit_name"])]
    if not wrong:
        return None
    items = [{"kind": "check", "field": "unitName", "pattern": f["unit_name"],
              "text": f"filing {f['service_licence']} names {f['unit_name']}; account {o.account_id} is verified as "
                      f"{o.verified_entity}"} for o in wrong]
    facts = f"{f['service_licence']}:" + "|".join(f"{o.account_id}={normalize_entity(o.verified_entity)}" for o in wrong)
    return _finding(site, facts, items, wrong[0].account_id)


@check("declared_filing_mismatch", "the filing number the customer declared is malformed or not the domain's",
       ("icp",),
       require_declared=Param(bool, False, "a domain bound without a declared number is a finding too"))
def declared_filing_mismatch(site: Site, p: Mapping[str, Any]) -> Finding | None:
    own = {f["service_licence"] for f in site.filings}
    items, facts, accounts = [], [], []
    for o in site.owners:
        declared = o.declared_filing.strip()
        if not declared:
            if p["require_declared"]:
                reason, key = f"account {o.account_id} declared no filing number for {site.domain}", "missing"
            else:
                continue
        else:
            try:
                number = parse_filing(declared)
            except NumberError as exc:
                reason, key = f"account {o.account_id} declared {declared!r}: {exc}", "malformed"
            else:
                mains = {f["main_licence"] for f in site.filings}
                if str(number) in own or (number.site is None and str(number) in mains):
                    continue
                reason, key = (f"account {o.account_id} declared {canonical_filing(declared)}, which is not a filing "
                               f"of {site.domain}" + (f" (filed as {', '.join(sorted(own))})" if own else
                                                      " (no filing record covers it)")), "other"
        items.append({"kind": "check", "field": "declared_filing", "pattern": key, "text": reason})
        facts.append(f"{o.account_id}={declared or '-'}:{key}")
        accounts.append(o.account_id)
    if not items:
        return None
    return _finding(site, "|".join(facts), items, accounts[0])
