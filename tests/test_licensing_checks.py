"""Each licensing check on small hand-built frames, with the edge cases: traffic exactly at the
threshold, a filing revoked between two scans, a domain bound to two accounts; and params validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import RuleLoadError
from pipeline.licensing import LicensingInput, evaluate_licensing
from pipeline.matchers.hits import HIT_COLUMNS, empty_hits
from pipeline.records import conform
from pipeline.rules.loader import load_rules
from pipeline.rules.model import Rule
from pipeline.sources.bindings import COLUMNS as BINDING_COLUMNS
from pipeline.sources.icp import FILINGS, LICENCES

ROOT = Path(__file__).resolve().parent.parent
RULES = load_rules(str(ROOT / "rules")).rules
ENTITY = "杭州云帆网络科技有限公司"


def rule(check: str, **params: object) -> Rule:
    r = next(r for r in RULES if r.check == check)
    return replace(r, params={**r.params, **params}) if params else r


def site_rules() -> list[Rule]:
    return [r for r in RULES if r.category.startswith("site_")]


def filing(domain: str, number: str = "浙ICP备20260000号-1", *, unit: str = ENTITY, status: str = "active",
           limited: bool = False, content: str | None = None) -> dict[str, object]:
    return {"unit_name": unit, "nature": "企业", "main_licence": number.split("-")[0], "service_licence": number,
            "domain": domain, "content_types": content, "updated_at": "2026-03-01T02:00:00Z",
            "limit_access": limited, "status": status, "source_file": "icp/filings.csv", "source_line": 2}


def binding(domain: str, account: str = "acct-1", *, entity: str = ENTITY, declared: str = "浙ICP备20260000号-1",
            origin: str = "") -> dict[str, str]:
    return dict(zip(BINDING_COLUMNS, [account, "domain", domain, entity, declared, origin]))


def traffic(domain: str, requests: int, day: str = "2026-11-01") -> dict[str, object]:
    return {"domain": domain, "requests": requests, "bytes_sent": requests * 1000,
            "first_ts": pd.Timestamp(f"{day}T01:00:00Z"), "last_ts": pd.Timestamp(f"{day}T09:00:00Z")}


def data(filings: list[dict] = (), bindings: list[dict] = (), flows: list[dict] = (), licences: list[dict] = (),
         site_hits: pd.DataFrame | None = None, buckets: dict[str, int] | None = None) -> LicensingInput:
    return LicensingInput(
        filings=conform(pd.DataFrame(list(filings)), FILINGS),
        licences=conform(pd.DataFrame(list(licences)), LICENCES),
        bindings=pd.DataFrame(list(bindings), columns=BINDING_COLUMNS),
        traffic=pd.DataFrame(list(flows), columns=["domain", "requests", "bytes_sent", "first_ts", "last_ts"]),
        site_hits=site_hits if site_hits is not None else empty_hits(),
        object_buckets=pd.DataFrame(list((buckets or {}).items()), columns=["bucket", "objects"]))


def hits(rules: list[Rule], d: LicensingInput) -> pd.DataFrame:
    out = evaluate_licensing(rules, d)
    assert list(out.columns) == HIT_COLUMNS
    return out


def test_unfiled_domain_fires_exactly_at_min_requests() -> None:
    r = rule("unfiled_domain_serving", min_requests=10)
    at = hits([r], data(bindings=[binding("a.example.cn")], flows=[traffic("a.example.cn", 10)]))
    below = hits([r], data(bindings=[binding("a.example.cn")], flows=[traffic("a.example.cn", 9)]))
    assert at["subject_id"].tolist() == ["a.example.cn"] and below.empty
    row = at.iloc[0]
    assert (row["subject_type"], row["account_id"], row["rule_id"]) == ("domain", "acct-1", r.id)
    assert row["hit_key"] == "unfiled_domain_serving:a.example.cn:none:2026-11-01"
    ev = json.loads(row["evidence"])
    kinds = [e["kind"] for e in ev]
    assert kinds[:3] == ["check", "filing", "traffic"]
    assert "no ICP filing record covers a.example.cn" in ev[1]["text"]
    assert ev[2]["requests"] == 10 and ev[2]["bytes_sent"] == 10_000


def test_filed_parent_domain_covers_sub_domain_and_unbound_domains_are_ignored() -> None:
    r = rule("unfiled_domain_serving")
    d = data(filings=[filing("shop.com.cn")], bindings=[binding("www.shop.com.cn")],
             flows=[traffic("www.shop.com.cn", 500), traffic("unbound.example.cn", 500)])
    assert hits([r], d).empty
    d2 = data(filings=[filing("hop.com.cn")], bindings=[binding("www.shop.com.cn")], flows=[traffic("www.shop.com.cn", 500)])
    assert len(hits([r], d2)) == 1   # "hop.com.cn" is not a parent of "www.shop.com.cn"


def test_objects_in_the_origin_bucket_count_as_serving() -> None:
    r = rule("unfiled_domain_serving", min_objects=1)
    d = data(bindings=[binding("img.example.cn", origin="pics")], buckets={"pics": 4})
    out = hits([r], d)
    assert out["subject_id"].tolist() == ["img.example.cn"]
    assert json.loads(out.iloc[0]["evidence"])[2]["objects"] == 4
    assert hits([rule("unfiled_domain_serving", min_objects=0)], d).empty


def test_filing_revoked_between_two_scans_adds_a_hit() -> None:
    rules = [rule("filing_limited"), rule("unfiled_domain_serving")]
    b, t = [binding("a.example.cn")], [traffic("a.example.cn", 50)]
    first = hits(rules, data(filings=[filing("a.example.cn")], bindings=b, flows=t))
    again = hits(rules, data(filings=[filing("a.example.cn")], bindings=b, flows=t))
    limited = hits(rules, data(filings=[filing("a.example.cn", limited=True)], bindings=b, flows=t))
    revoked = hits(rules, data(filings=[filing("a.example.cn", status="revoked")], bindings=b, flows=t))
    assert first.empty and again.empty
    assert limited["hit_key"].tolist() == ["filing_limited:a.example.cn:浙ICP备20260000号-1:limited"]
    assert sorted(revoked["hit_key"]) == ["filing_limited:a.example.cn:浙ICP备20260000号-1:revoked",
                                          "unfiled_domain_serving:a.example.cn:revoked 浙ICP备20260000号-1:2026-11-01"]
    # the same facts scanned again give the same keys: no new hits for the case store
    assert sorted(hits(rules, data(filings=[filing("a.example.cn", status="revoked")], bindings=b,
                                   flows=t))["hit_key"]) == sorted(revoked["hit_key"])


def test_a_newer_active_filing_supersedes_a_revoked_one() -> None:
    rules = [rule("filing_limited"), rule("unfiled_domain_serving")]
    fs = [filing("a.example.cn", "浙ICP备20260000号-1", status="revoked"), filing("a.example.cn", "浙ICP备20260000号-2")]
    assert hits(rules, data(filings=fs, bindings=[binding("a.example.cn")], flows=[traffic("a.example.cn", 50)])).empty


def test_entity_mismatch_normalizes_width_brackets_and_spaces() -> None:
    r = rule("entity_mismatch")
    same = "杭州云帆（滨江）网络科技 有限公司"
    ok = data(filings=[filing("a.example.cn", unit=same)], bindings=[binding("a.example.cn", entity="杭州云帆(滨江)网络科技有限公司")])
    assert hits([r], ok).empty
    bad = data(filings=[filing("a.example.cn", unit="北京星河数据服务有限公司")], bindings=[binding("a.example.cn")])
    out = hits([r], bad)
    assert out["account_id"].tolist() == ["acct-1"]
    assert "北京星河数据服务有限公司" in json.loads(out.iloc[0]["evidence"])[0]["text"]


def test_domain_bound_to_two_accounts_gives_one_case_naming_both() -> None:
    r = rule("entity_mismatch")
    d = data(filings=[filing("a.example.cn")],
             bindings=[binding("a.example.cn", "acct-1"), binding("a.example.cn", "acct-2", entity="上海明澜信息技术有限公司")])
    out = hits([r], d)
    assert len(out) == 1
    assert out.iloc[0]["account_id"] == "acct-2"          # the owner the finding is about
    ev = json.loads(out.iloc[0]["evidence"])
    owners = next(e for e in ev if e["kind"] == "bindings")
    assert [o["account_id"] for o in owners["owners"]] == ["acct-1", "acct-2"]
    # a domain-level finding goes to the first owner, the other is named in the evidence
    u = hits([rule("unfiled_domain_serving")], replace(d, filings=conform(pd.DataFrame(), FILINGS),
                                                        traffic=pd.DataFrame([traffic("a.example.cn", 20)])))
    assert u["account_id"].tolist() == ["acct-1"]


@pytest.mark.parametrize("declared, expect", [
    ("浙ICP备20260000号-1", None),
    ("浙ICP备20260000号", None),                        # the entity's main number covers its sites
    ("浙ICP备２０２６００００号－１", None),                # full width folds
    ("浙ICP备2026号-1", "malformed"),
    ("浙ICP备20260000号-2", "other"),
    ("京ICP备20260000号-1", "other"),
    ("", None),
])
def test_declared_filing(declared: str, expect: str | None) -> None:
    r = rule("declared_filing_mismatch")
    out = hits([r], data(filings=[filing("a.example.cn")], bindings=[binding("a.example.cn", declared=declared)]))
    assert (json.loads(out.iloc[0]["evidence"])[0]["pattern"] if len(out) else None) == expect


def test_declared_missing_is_a_finding_only_when_required() -> None:
    d = data(filings=[filing("a.example.cn")], bindings=[binding("a.example.cn", declared="")])
    assert hits([rule("declared_filing_mismatch", require_declared=True)], d)["hit_key"].str.endswith(":missing").all()


def _site_hits(domain: str, rule_id: str, n: int, *, subject_type: str = "domain") -> pd.DataFrame:
    sid = domain if subject_type == "domain" else f"{domain}/obj"
    return pd.DataFrame([{"rule_id": rule_id, "subject_type": subject_type,
                          "subject_id": sid if subject_type == "domain" else f"{domain}/k{i}.html",
                          "account_id": "acct-1", "event_time": None, "source_file": "logs/a.log", "source_line": i + 1,
                          "hit_key": f"logs/a.log:{i + 1}",
                          "evidence": json.dumps([{"field": "path", "kind": "keywords", "pattern": "网游",
                                                   "text": "/网游/", "normalized": "/网游/"}], ensure_ascii=False)}
                         for i in range(n)], columns=HIT_COLUMNS)


def test_licence_missing_from_inferred_field_with_threshold() -> None:
    rules = [rule("licence_missing"), *site_rules()]
    game = "sites.fields.online_game"
    base = dict(filings=[filing("g.example.cn")], bindings=[binding("g.example.cn")], flows=[traffic("g.example.cn", 30)])
    assert hits(rules, data(**base, site_hits=_site_hits("g.example.cn", game, 2))).empty   # min_hits is 3
    out = hits(rules, data(**base, site_hits=pd.concat([_site_hits("g.example.cn", game, 3)] * 2)))  # duplicates count once
    assert out["hit_key"].tolist() == ["licence_missing:g.example.cn:network_culture:浙ICP备20260000号-1:2026-11-01"]
    ev = json.loads(out.iloc[0]["evidence"])
    assert ev[0]["pattern"] == "网络文化经营许可证"
    assert ev[1]["kind"] == "inference" and ev[1]["rules"][0] == {
        "rule_id": game, "hits": 3, "min_hits": 3, "samples": ["/网游/ (a.log:1)", "/网游/ (a.log:2)", "/网游/ (a.log:3)"]}


def test_licence_record_or_prior_approval_satisfies_the_field() -> None:
    rules = [rule("licence_missing"), *site_rules()]
    sh = _site_hits("n.example.cn", "sites.fields.news", 5)
    base = dict(bindings=[binding("n.example.cn")], flows=[traffic("n.example.cn", 30)], site_hits=sh)
    assert len(hits(rules, data(filings=[filing("n.example.cn")], **base))) == 1
    assert hits(rules, data(filings=[filing("n.example.cn", content="新闻,出版")], **base)).empty
    lic = {"licence_type": "news", "number": "31120210001", "holder": "other", "domains": "n.example.cn",
           "valid_from": pd.Timestamp("2025-01-01", tz="UTC"), "valid_to": pd.Timestamp("2027-01-01", tz="UTC")}
    assert hits(rules, data(filings=[filing("n.example.cn")], licences=[lic], **base)).empty
    by_holder = {**lic, "domains": None, "holder": "杭州云帆网络科技有限公司"}
    assert hits(rules, data(filings=[filing("n.example.cn")], licences=[by_holder], **base)).empty
    expired = {**lic, "valid_to": pd.Timestamp("2026-06-01", tz="UTC")}
    assert len(hits(rules, data(filings=[filing("n.example.cn")], licences=[expired], **base))) == 1


def test_object_hits_are_attributed_through_origin_bucket() -> None:
    rules = [rule("licence_missing"), *site_rules()]
    sh = _site_hits("vod-bucket", "sites.fields.audiovisual", 3, subject_type="object")
    d = data(filings=[filing("v.example.cn")], bindings=[binding("v.example.cn", origin="vod-bucket")], site_hits=sh,
             buckets={"vod-bucket": 3})
    out = hits(rules, d)
    assert out["hit_key"].tolist() == ["licence_missing:v.example.cn:audiovisual:浙ICP备20260000号-1:-"]
    assert json.loads(out.iloc[0]["evidence"])[1]["rules"][0]["samples"][0] == "vod-bucket/k0.html"


def _load(tmp_path: Path, text: str) -> None:
    (tmp_path / "r.yaml").write_text(text, encoding="utf-8")
    load_rules(str(tmp_path))


ICP = """rules:
  - id: icp.x.y
    title: t
    clause: "3.1.3.1"
    category: filing_missing
    severity: high
    source: icp
    check: unfiled_domain_serving
    params: {PARAMS}
"""


@pytest.mark.parametrize("params, message", [
    ("{min_request: 10}", "unknown param 'min_request'.*valid params: min_requests, min_objects"),
    ("{min_requests: 0}", "at least 1"),
    ("{min_requests: ten}", "min_requests takes int"),
    ("{min_requests: true}", "min_requests takes int"),
    ("[1, 2]", "params must be a mapping"),
])
def test_check_params_are_validated_at_load(tmp_path: Path, params: str, message: str) -> None:
    with pytest.raises(RuleLoadError, match=message) as info:
        _load(tmp_path, ICP.replace("{PARAMS}", params))
    assert "r.yaml:9:" in str(info.value)     # located at the params


def test_site_rule_params_and_category_are_validated(tmp_path: Path) -> None:
    site = """rules:
  - id: sites.x.y
    title: t
    clause: "3.1.3.1"
    category: CATEGORY
    severity: low
    source: [objects, logs]
    subject: domain
    params: PARAMS
    match: {keywords: [网游], fields: [key, path]}
"""
    _load(tmp_path, site.replace("CATEGORY", "site_news").replace("PARAMS", "{min_hits: 2}"))
    with pytest.raises(RuleLoadError, match="unknown param 'min_hit'"):
        _load(tmp_path, site.replace("CATEGORY", "site_news").replace("PARAMS", "{min_hit: 2}"))
    with pytest.raises(RuleLoadError, match="names no field of content"):
        _load(tmp_path, site.replace("CATEGORY", "site_weather").replace("PARAMS", "{min_hits: 2}"))


def test_checks_needing_filings_are_skipped_when_no_icp_source_is_configured() -> None:
    """No sources.icp: an empty filings frame would make every bound domain look unfiled and every
    declared number unknown; the checks that need filings are skipped and say so instead."""
    from pipeline.licensing import skipped_checks

    checks = [r for r in RULES if r.check is not None]
    d = data(bindings=[binding("a.example.cn"), binding("b.example.cn", "acct-2", declared="浙ICP备1号")],
             flows=[traffic("a.example.cn", 50)])
    configured_but_empty = hits(checks, d)
    assert {"unfiled_domain_serving", "declared_filing_mismatch"} <= {k.split(":")[0]
                                                                      for k in configured_but_empty["hit_key"]}
    assert hits(checks, replace(d, unconfigured=frozenset({"icp"}))).empty
    skipped = skipped_checks(checks, {"icp"})
    assert set(skipped) == {r.id for r in checks if r.enabled}
    assert all("sources.icp" in why for why in skipped.values())
    assert skipped_checks(checks, set()) == {}
