"""A site's fields of content, inferred from keyword rules whose category names a field (``site_*``).

Those rules run over objects and access logs like any record rule; their hits never become cases by
themselves. Here they are attributed to sites (a log hit by its domain, an object hit through the
bindings' ``origin_bucket``) and counted per rule: a field is inferred when one of its rules reaches
the ``min_hits`` set in the rule. The result keeps the rules, counts and sample keys / URLs that led
to it, for the evidence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..rules.model import Rule

SITE_PREFIX = "site_"
SAMPLES = 3


@dataclass(frozen=True)
class FieldLicence:
    """What a field of content requires: a licence type, or a prior approval named in the filing."""

    licence_type: str                 # key of sources.icp.LICENCE_TYPES
    licence_name: str                 # as written on the certificate
    approvals: tuple[str, ...]        # words of the filing's contentTypeName that show the approval


FIELD_LICENCES: dict[str, FieldLicence] = {
    "site_online_game": FieldLicence("network_culture", "网络文化经营许可证", ("文化", "游戏")),
    "site_audiovisual": FieldLicence("audiovisual", "信息网络传播视听节目许可证", ("视听", "广播电影电视", "直播")),
    "site_news": FieldLicence("news", "互联网新闻信息服务许可证", ("新闻",)),
    "site_publishing": FieldLicence("publishing", "网络出版服务许可证", ("出版",)),
    "site_drugs": FieldLicence("drugs", "互联网药品信息服务资格证书", ("药品", "医疗器械")),
    "site_commerce": FieldLicence("icp_operating", "ICP经营许可证", ("经营性",)),
}


@dataclass(frozen=True)
class RuleCount:
    rule_id: str
    hits: int
    min_hits: int
    samples: tuple[str, ...]


@dataclass(frozen=True)
class InferredField:
    """One field of content of one site, with the rule counts that reached their threshold."""

    category: str
    rules: tuple[RuleCount, ...]

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.rules)

    def evidence(self) -> dict[str, object]:
        parts = ", ".join(f"{r.rule_id} {r.hits} hit(s) (min {r.min_hits})" for r in self.rules)
        return {"kind": "inference", "field": self.category, "pattern": "min_hits",
                "text": f"content inferred as {self.category} from {parts}",
                "rules": [{"rule_id": r.rule_id, "hits": r.hits, "min_hits": r.min_hits, "samples": list(r.samples)}
                          for r in self.rules]}


def min_hits(rule: Rule) -> int:
    return int(rule.params.get("min_hits", 1))


def is_site_rule(rule: Rule) -> bool:
    return rule.category.startswith(SITE_PREFIX) and rule.check is None


def _sample(row: Mapping[str, object]) -> str:
    """An object's bucket/key, or the matched text of a log line with its file and line."""
    if row["subject_type"] != "domain":
        return str(row["subject_id"])
    text = ""
    try:
        items = json.loads(str(row["evidence"]))
        text = str(items[0].get("text", "")) if items else ""
    except (ValueError, AttributeError):
        pass
    where = f"{row.get('source_file') or ''}:{row.get('source_line') or ''}"
    return f"{text} ({where.rsplit('/', 1)[-1]})" if text else where


def site_hits_by_domain(site_hits: pd.DataFrame, bucket_domains: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Each hit with the domain(s) it speaks for: logs by their domain, objects by their bucket's sites."""
    if site_hits.empty:
        return site_hits.assign(domain=pd.Series([], dtype="object"))
    domains: list[list[str]] = []
    for stype, sid in zip(site_hits["subject_type"], site_hits["subject_id"]):
        if stype == "domain":
            domains.append([str(sid).lower()])
        elif stype == "object":
            domains.append(list(bucket_domains.get(str(sid).split("/", 1)[0], ())))
        else:
            domains.append([])  # a site rule without `subject: domain` over logs names no site
    return site_hits.assign(domain=domains).explode("domain").dropna(subset=["domain"])


def infer_fields(rules: Sequence[Rule], site_hits: pd.DataFrame,
                 bucket_domains: Mapping[str, Sequence[str]]) -> dict[str, dict[str, InferredField]]:
    """domain → field → how it was inferred; only fields whose rule reached its ``min_hits``."""
    by_id = {r.id: r for r in rules if is_site_rule(r) and r.enabled}
    hits = site_hits[site_hits["rule_id"].isin(list(by_id))] if len(site_hits) else site_hits
    hits = site_hits_by_domain(hits, bucket_domains)
    out: dict[str, dict[str, InferredField]] = {}
    if hits.empty:
        return out
    # The same event (object version, log line) counts once however often it was scanned.
    hits = hits.drop_duplicates(["rule_id", "domain", "hit_key"]).sort_values(["domain", "rule_id", "hit_key"])
    counts: dict[tuple[str, str], list[RuleCount]] = {}
    for (domain, rule_id), group in hits.groupby(["domain", "rule_id"], sort=True):
        rule = by_id[str(rule_id)]
        n = len(group)
        if n < min_hits(rule):
            continue
        samples = tuple(_sample(r) for r in group.head(SAMPLES).to_dict("records"))
        counts.setdefault((str(domain), rule.category), []).append(RuleCount(rule.id, n, min_hits(rule), samples))
    for (domain, category), rcs in sorted(counts.items()):
        out.setdefault(domain, {})[category] = InferredField(category, tuple(rcs))
    return out
