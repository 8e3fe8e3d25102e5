"""Licensing checks: joins of filings, licence records, bindings, traffic and inferred content into
hits on domains (the entry point the runner calls), and the loading of the filing and licence sources.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..matchers.hits import HIT_COLUMNS, empty_hits
from ..records import QUARANTINE, conform, empty
from ..rules.model import Rule
from .checks import CHECKS, INPUTS, Owner, Site, normalize_entity, resolved
from .inference import infer_fields

ReadCounts = dict[str, dict[str, int]]   # kind (icp, licences) → rows_read, rows_parsed, rows_quarantined


@dataclass
class LicensingInput:
    filings: pd.DataFrame        # sources.icp.FILINGS
    licences: pd.DataFrame       # sources.icp.LICENCES
    bindings: pd.DataFrame       # sources.bindings.COLUMNS (+ origin_bucket)
    traffic: pd.DataFrame        # per domain from the scanned logs: domain, requests, bytes_sent, first_ts, last_ts
    site_hits: pd.DataFrame      # HIT_COLUMNS rows of rules whose category starts with "site_"
    object_buckets: pd.DataFrame  # bucket, objects (count) seen in this scan
    # source kinds (checks.INPUTS) the config does not name: checks that need one are skipped, not run
    # over an empty frame (no filing records configured is not "no site is filed")
    unconfigured: frozenset[str] = frozenset()


@dataclass
class LicensingRead:
    """What reading the filing and licence sources gave: their records, the rows quarantined, counts
    per kind, the files that could not be read (whole or in part: quarantined as files, like object
    and log files, and read again by the next run) and the blank lines skipped."""

    filings: pd.DataFrame
    licences: pd.DataFrame
    quarantine: pd.DataFrame
    counts: ReadCounts
    troubles: list[tuple[str, Any, str | None]] = field(default_factory=list)   # (kind, FileTrouble, hint)
    blank_lines: int = 0


def read_licensing_sources(settings: Any, *, strict: bool = False) -> LicensingRead:
    """Read every file of the config's ``sources.icp`` / ``sources.licences`` on its own: a file that
    cannot be read (permission denied, vanished, corrupt compression, no line decoding in its
    ``encoding:``) is noted in ``troubles`` and the others are read; under ``strict`` it raises
    (UnreadableFile) instead. An unknown format is an error listing the valid ones."""
    from ..sources.base import (BLANK_LINE, FileTrouble, UnreadableFile, collecting_troubles, counting_blank_lines,
                                expand, explain_undecodable, reading_encoding, wrong_encoding)
    from ..errors import PipelineError, SourceError
    from ..sources.icp import FILINGS, ICP_FORMATS, LICENCE_FORMATS, LICENCES

    frames: dict[str, list[pd.DataFrame]] = {"icp": [], "licences": []}
    quarantine: list[pd.DataFrame] = []
    counts: ReadCounts = {}
    troubles: list[tuple[str, Any, str | None]] = []
    blank_lines = 0
    for kind, registry in (("icp", ICP_FORMATS), ("licences", LICENCE_FORMATS)):
        c = counts.setdefault(kind, {"rows_read": 0, "rows_parsed": 0, "rows_quarantined": 0})
        for entry in getattr(settings.sources, kind):
            reader = registry.get(entry.format)
            for path in expand(settings.resolve(entry.path)):
                try:
                    with collecting_troubles() as tails, reading_encoding(entry.encoding), \
                            counting_blank_lines() as blanks:
                        result = reader(path)
                except SourceError as exc:   # the file as a whole: unreadable, vanished, corrupt
                    if strict:
                        raise
                    reason = exc.reason if isinstance(exc, UnreadableFile) else str(PipelineError(
                        exc.message, location=exc.location))
                    troubles.append((kind, FileTrouble(path, reason, getattr(exc, "size", -1)), exc.hint))
                    continue
                found = list(tails)
                wrong = wrong_encoding(path, entry.encoding, result.quarantine, result.rows_read)
                if wrong is not None:
                    found.append(wrong)
                if strict and found:
                    raise UnreadableFile(path, found[0].reason, size=found[0].bytes,
                                         hint="without --strict the file is quarantined and the scan goes on")
                troubles.extend((kind, t, None) for t in found)
                q = explain_undecodable(result.quarantine, entry.encoding)
                frames[kind].append(result.records)
                if len(q):
                    quarantine.append(q)
                blank_lines += blanks[0] + (int((q["reason"] == BLANK_LINE).sum()) if len(q) else 0)
                c["rows_read"] += result.rows_read
                c["rows_parsed"] += len(result.records)
                c["rows_quarantined"] += len(q)

    def cat(parts: list[pd.DataFrame], schema: dict[str, str]) -> pd.DataFrame:
        return conform(pd.concat(parts, ignore_index=True), schema) if parts else empty(schema)

    q = pd.concat(quarantine, ignore_index=True) if quarantine else empty(QUARANTINE)
    return LicensingRead(cat(frames["icp"], FILINGS), cat(frames["licences"], LICENCES), q, counts, troubles,
                         blank_lines)


def load_licensing_sources(settings: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, ReadCounts]:
    """Filings and licence records of the config's ``sources.icp`` / ``sources.licences``, their quarantine
    (QUARANTINE columns) and row counts per kind (see ``read_licensing_sources`` for the files that
    could not be read)."""
    read = read_licensing_sources(settings)
    return read.filings, read.licences, read.quarantine, read.counts


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _covers(filed: str, domain: str) -> bool:
    """A filed domain covers itself and its sub-domains (www.example.cn is under example.cn)."""
    return domain == filed or domain.endswith("." + filed)


def _ts(value: Any) -> pd.Timestamp | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("UTC") \
        if pd.Timestamp(value).tzinfo else pd.Timestamp(value).tz_localize("UTC")


def build_sites(data: LicensingInput, rules: Sequence[Rule]) -> list[Site]:
    """One Site per bound domain, with what every check needs about it."""
    b = data.bindings
    doms = b[b["resource_type"] == "domain"] if len(b) else b
    origin = doms["origin_bucket"] if "origin_bucket" in doms.columns else pd.Series([""] * len(doms), index=doms.index)
    bucket_domains: dict[str, list[str]] = {}
    for d, ob in zip(doms["resource"] if len(doms) else [], origin):
        if _text(ob):
            bucket_domains.setdefault(_text(ob), []).append(_text(d).lower())
    fields = infer_fields(rules, data.site_hits, bucket_domains)
    traffic = {str(r["domain"]).lower(): r for r in data.traffic.to_dict("records")} if len(data.traffic) else {}
    objects = dict(zip(data.object_buckets["bucket"].astype(str), data.object_buckets["objects"])) \
        if len(data.object_buckets) else {}
    filings = data.filings.to_dict("records") if len(data.filings) else []
    licences = data.licences.to_dict("records") if len(data.licences) else []
    sites: list[Site] = []
    for domain in sorted({_text(d).lower() for d in doms["resource"]} if len(doms) else set()):
        rows = doms[doms["resource"].str.lower() == domain]
        owners = tuple(sorted({Owner(_text(r["account_id"]), _text(r.get("verified_entity")),
                                     _text(r.get("declared_filing"))) for r in rows.to_dict("records")},
                              key=lambda o: (o.account_id, o.declared_filing, o.verified_entity)))
        buckets = tuple(sorted({_text(r.get("origin_bucket")) for r in rows.to_dict("records")} - {""}))
        mine = [f for f in filings if _covers(str(f["domain"]), domain)]
        # most specific filed domain first, then active before revoked, then the newest
        mine.sort(key=lambda f: (-len(str(f["domain"])), f["status"] != "active",
                                 -(_ts(f.get("updated_at")) or pd.Timestamp(0, tz="UTC")).value))
        t = traffic.get(domain, {})
        last = _ts(t.get("last_ts"))
        when = last or pd.Timestamp.now(tz="UTC")
        entities = {normalize_entity(f["unit_name"]) for f in mine} | {normalize_entity(o.verified_entity)
                                                                        for o in owners if o.verified_entity}
        covering = tuple(lic for lic in licences if _licence_covers(lic, domain, entities, when))
        sites.append(Site(domain, owners, tuple(mine), covering, int(t.get("requests") or 0),
                          int(t.get("bytes_sent") or 0), _ts(t.get("first_ts")), last,
                          int(sum(int(objects.get(bk, 0)) for bk in buckets)), buckets, fields.get(domain, {})))
    return sites


def _licence_covers(lic: dict[str, Any], domain: str, entities: set[str], when: pd.Timestamp) -> bool:
    start, end = _ts(lic.get("valid_from")), _ts(lic.get("valid_to"))
    if (start is not None and when < start) or (end is not None and when > end):
        return False
    listed = [d for d in _text(lic.get("domains")).split(",") if d]
    if listed:
        return any(_covers(d, domain) for d in listed)
    return normalize_entity(_text(lic.get("holder"))) in entities


def skipped_checks(rules: Sequence[Rule], unconfigured: frozenset[str] | set[str]) -> dict[str, str]:
    """Enabled check rules that cannot run without a source the config does not name: rule id → why."""
    out: dict[str, str] = {}
    for rule in rules:
        if rule.check is None or not rule.enabled or rule.check not in CHECKS:
            continue
        missing = [INPUTS.get(k, k) for k in CHECKS.get(rule.check).needs if k in unconfigured]
        if missing:
            out[rule.id] = f"no {' or '.join(missing)} configured"
    return out


def evaluate_licensing(rules: Sequence[Rule], data: LicensingInput) -> pd.DataFrame:
    """Run every enabled check rule over every bound domain; HIT_COLUMNS rows on subject ``domain``.

    ``hit_key`` is ``<check>:<domain>:<facts>``: the same facts give the same key (a re-scan adds nothing);
    a changed fact (a filing revoked, a new day of unfiled traffic) gives a new one. Checks that need a
    source named in ``data.unconfigured`` are skipped (see ``skipped_checks``).
    """
    skipped = skipped_checks(rules, data.unconfigured)
    checks = [r for r in rules if r.check is not None and r.enabled and r.id not in skipped]
    if not checks:
        return empty_hits()
    sites = build_sites(data, rules)
    rows: list[dict[str, Any]] = []
    for rule in checks:
        c = CHECKS.get(rule.check or "")
        params = resolved(c, rule.params)
        for site in sites:
            found = c.run(site, params)
            if found is None:
                continue
            filing = site.filings[0] if site.filings else None
            rows.append({
                "rule_id": rule.id, "subject_type": "domain", "subject_id": site.domain,
                "account_id": found.account_id,
                "event_time": site.last_ts if site.last_ts is not None else
                (_ts(filing.get("updated_at")) if filing else None),
                "source_file": filing.get("source_file") if filing else "",
                "source_line": int(filing["source_line"]) if filing and not pd.isna(filing.get("source_line")) else None,
                "hit_key": f"{rule.check}:{site.domain}:{found.facts}",
                "evidence": json.dumps(list(found.evidence), ensure_ascii=False, default=str),
            })
    return pd.DataFrame(rows, columns=HIT_COLUMNS) if rows else empty_hits()


__all__ = ["LicensingInput", "LicensingRead", "ReadCounts", "load_licensing_sources", "read_licensing_sources", "evaluate_licensing", "build_sites",
           "skipped_checks"]
