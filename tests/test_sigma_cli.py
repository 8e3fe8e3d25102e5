"""Sigma rules as a new user meets them, through the `compliance` command only: `sigma.folders` at the
SigmaHQ web-server rules, lint / test / show, scans of attack logs and of the real benign log, the
field mapping per log format, correlations, and what cannot run (skip or error)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from pipeline.cli import main

sys.path.insert(0, str(Path(__file__).parent))

from sigma_logs import corpus_records, write_logs  # noqa: E402

LOG4J_UUID = "5ea8faa8-db8b-45be-89b0-151b84c82702"


def _sigmahq(corpus: Path) -> Path:
    folder = corpus / "sigma-webserver"
    if not folder.is_dir():
        pytest.skip(f"no Sigma rules at {folder}")
    return folder


def _config(tmp_path: Path, sigma: Path, logs: list[tuple[Path, str]] = (), extra: str = "",
            name: str = "config.yaml") -> Path:
    own = tmp_path / "own-rules"
    own.mkdir(exist_ok=True)
    text = f"rules: {own}\nstate_dir: {tmp_path / (name + '.state')}\nsigma:\n  folders: [{sigma}]\n{extra}"
    if logs:
        text += "sources:\n  logs:\n" + "".join(f"    - {{path: {p}, format: {fmt}, domain: shop.example.cn}}\n"
                                                for p, fmt in logs)
    cfg = tmp_path / name
    cfg.write_text(text, encoding="utf-8")
    return cfg


def cli(cfg: Path, *args: str) -> Result:
    res = CliRunner().invoke(main, ["--config", str(cfg), *args])
    assert "Traceback" not in res.output
    return res


def cases(cfg: Path) -> list[dict]:
    res = cli(cfg, "cases", "list", "--format", "json")
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


def test_the_sigmahq_rules_lint_test_and_show_unmodified(corpus: Path, tmp_path: Path) -> None:
    folder = _sigmahq(corpus)
    cfg = _config(tmp_path, folder)
    res = cli(cfg, "rules", "lint")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1].startswith("86 rules OK (86 from Sigma) (")
    assert "unsupported" not in res.output
    notes = res.stderr.strip().splitlines()
    # the one rule reading a field no access log has, named with its place; the inline-test note once
    assert notes == [
        f"note: {folder / 'web_lnx_exploit_cve_2025_31324_sap_netviewer_webshell_uploaded.yml'}:20: "
        "[sigma.web.web_lnx_exploit_cve_2025_31324_sap_netviewer_webshell_uploaded] field 'cs-content-type' is "
        "not in the field mapping: it is NULL on every record",
        "note: 86 Sigma rules carry no inline tests (Sigma has none); check them with a backtest over real logs"]
    res = cli(cfg, "rules", "test")
    assert res.exit_code == 0, res.output
    assert res.stderr.count("no inline tests") == 1 and "0 failed" in res.stdout
    res = cli(cfg, "rules", "show", "sigma.web.web_cve_2021_44228_log4j")
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.stdout)
    assert shown["sigma"]["id"] == LOG4J_UUID and shown["sigma"]["level"] == "high"
    assert shown["severity"] == "high" and shown["clause"] == "3.1.3.7" and shown["category"] == "attack_web"
    assert "Florian Roth" in shown["sigma"]["author"] and shown["sigma"]["references"]
    keywords, filt = shown["match"]["all"]
    assert keywords["fields"] == ["raw"] and keywords["as_logged"] and "jndi:ldap:/" in keywords["regex"]
    assert filt["not"]["fields"] == ["raw"]
    # the rule reading cs-host: the Host header, which Tencent CDN logs carry as their domain field
    res = cli(cfg, "rules", "show",
              "sigma.web.web_exploit_cve_2023_4966_citrix_sensitive_information_disclosure_exploit_attempt")
    shown = yaml.safe_load(res.stdout)
    assert shown["field_mapping"] == {"cs-method": "method", "cs-uri-stem": "path", "cs-host": "host"}
    assert shown["field_mapping_by_format"] == {"tencent-cdn": {"cs-method": "method", "cs-uri-stem": "path",
                                                                "cs-host": "domain"}}
    default, tencent = shown["match"]["any"]
    assert default["all"][0] == {"not": {"field": "log_format", "in": ["tencent-cdn"]}}
    assert tencent["all"][0] == {"log_format": ["tencent-cdn"]}
    assert {"regex": ".{150}", "fields": ["domain"], "as_logged": True, "sigma": "cs-host|re: .{150}"} \
        in tencent["all"][1]["all"]


def test_attack_logs_open_cases_naming_the_sigma_rule_and_the_benign_log_none(
        corpus: Path, tmp_path: Path, dask_client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    folder = _sigmahq(corpus)
    paths = write_logs(corpus_records(folder), tmp_path / "attack")
    cfg = _config(tmp_path, folder, [(p, fmt) for fmt, p in paths.items()])
    res = cli(cfg, "scan")
    assert res.exit_code == 0, res.output
    opened = cases(cfg)
    rules = {c["rule_id"] for c in opened}
    assert len(rules) >= 85 and all(r.startswith("sigma.web.") for r in rules)
    assert {(c["clause"], c["category"], c["subject_type"]) for c in opened} == {("3.1.3.7", "attack_web", "client_ip")}
    [log4j, *_] = [c for c in opened if c["rule_id"] == "sigma.web.web_cve_2021_44228_log4j"]
    res = cli(cfg, "cases", "show", log4j["case_id"])
    assert res.exit_code == 0, res.output
    assert "sigma.web.web_cve_2021_44228_log4j — Log4j RCE CVE-2021-44228 Generic" in res.stdout
    # the evidence: the rule's UUID and level, the Sigma field and modifier, and the text it matched
    assert f"[sigma {LOG4J_UUID} (level high) keywords]" in res.stdout
    # and the Sigma rule's own metadata, its authors credited as the Detection Rule License asks
    assert f"sigma     {LOG4J_UUID} level high status test" in res.stdout
    assert "  author  Florian Roth (Nextron Systems)" in res.stdout and "  fp      Vulnerability scanning" in res.stdout
    assert "https://news.ycombinator.com/item?id=29504755" in res.stdout and "Detection Rule License 1.1" in res.stdout
    shown = json.loads(cli(cfg, "cases", "show", "--json", log4j["case_id"]).stdout)
    matches = [(item, mt) for item in shown["evidence"] for mt in item["matches"]]
    assert matches and log4j["severity"] == "high"
    for item, mt in matches:
        assert (mt["kind"], mt["field"], mt["pattern"]) == ("sigma", "raw", f"{LOG4J_UUID} (level high) keywords")
        assert "jndi" in mt["text"].lower() and mt["text"].lower() in item["uri"].lower()   # the text as logged

    benign = corpus / "access-logs" / "apache_combined_2015.log"
    if not benign.is_file():
        pytest.skip(f"no {benign}")
    cfg = _config(tmp_path, folder, [(benign, "combined")], name="benign.yaml")
    res = cli(cfg, "scan", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["rows_parsed"] == 10_000 and summary["cases_new"] == 0
    assert cases(cfg) == []


HOST_RULE = """title: Shop admin over its Host header
id: 6f1d1c9e-0000-4000-8000-0000000000a1
logsource: {category: webserver}
detection:
    selection:
        cs-host|startswith: 'shop.'
        cs-uri-query|contains: '/admin'
    condition: selection
level: high
"""


def test_cs_host_is_read_per_log_format(tmp_path: Path, dask_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same request in three formats: the W3C Host header and the Tencent CDN domain field are
    cs-host; a combined line's domain is the source entry's, no Host header, so cs-host is NULL there."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    sig = tmp_path / "sigma"
    sig.mkdir()
    (sig / "web_shop_admin.yml").write_text(HOST_RULE, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text('203.0.113.1 - - [01/Nov/2026:10:00:01 +0000] "GET /admin/x HTTP/1.1" 200 5 "-" '
                                '"curl/8"\n', encoding="utf-8")
    (logs / "t.log").write_text('20261101180001 203.0.113.2 shop.example.cn /admin/x 5 gd ct 200 - 3 "curl/8" '
                                '"-" GET HTTP/1.1 MISS\n', encoding="utf-8")
    (logs / "w.log").write_text("#Fields: date time c-ip cs-method cs-uri-stem sc-status cs-host\n"
                                "2026-11-01\t10:00:03\t203.0.113.3\tGET\t/admin/x\t200\tshop.example.cn\n",
                                encoding="utf-8")
    cfg = _config(tmp_path, sig, [(logs / "a.log", "combined"), (logs / "t.log", "tencent-cdn"),
                                  (logs / "w.log", "w3c")])
    res = cli(cfg, "scan")
    assert res.exit_code == 0, res.output
    assert sorted(c["subject_id"] for c in cases(cfg)) == ["203.0.113.2", "203.0.113.3"]
    # mapped otherwise in the config, combined lines read cs-host from their domain too
    cfg = _config(tmp_path, sig, [(logs / "a.log", "combined")], name="mapped.yaml",
                  extra="  logsources:\n    - category: webserver\n      formats:\n"
                        "        combined: {cs-host: domain}\n")
    res = cli(cfg, "rules", "show", "sigma.web.web_shop_admin")
    assert yaml.safe_load(res.stdout)["field_mapping_by_format"]["combined"]["cs-host"] == "domain"
    assert cli(cfg, "scan").exit_code == 0
    assert [c["subject_id"] for c in cases(cfg)] == ["203.0.113.1"]


def test_an_unknown_log_format_in_the_mapping_is_a_config_error(tmp_path: Path) -> None:
    sig = tmp_path / "sigma"
    sig.mkdir()
    cfg = _config(tmp_path, sig, extra="  logsources:\n    - category: webserver\n      formats:\n"
                                       "        nginx: {cs-host: domain}\n")
    res = cli(cfg, "rules", "lint")
    assert res.exit_code == 2
    assert f"{cfg}:" in res.stderr and "'nginx' is not a log format" in res.stderr and "tencent-cdn" in res.stderr
    cfg.write_text(cfg.read_text().replace("nginx: {cs-host: domain}", "w3c: {cs-host: hots}"), encoding="utf-8")
    res = cli(cfg, "rules", "lint")
    assert res.exit_code == 2 and "cs-host: 'hots' is not a log field" in res.stderr


CORRELATIONS = """title: Console probe
id: 6f1d1c9e-0000-4000-8000-0000000000b1
name: console_probe
logsource: {category: webserver}
detection:
    selection:
        cs-uri-query|contains: '/console/'
    condition: selection
level: medium
---
title: Login page
id: 6f1d1c9e-0000-4000-8000-0000000000b2
name: login_page
logsource: {category: webserver}
detection:
    selection:
        cs-uri-stem: '/login'
    condition: selection
level: low
---
title: Console probe burst
id: 6f1d1c9e-0000-4000-8000-0000000000b3
correlation:
    type: event_count
    rules: [console_probe]
    group-by: [c-ip]
    timespan: 1m
    condition: {gte: 3}
level: high
---
title: Console probe across many paths
id: 6f1d1c9e-0000-4000-8000-0000000000b4
correlation:
    type: value_count
    rules: [console_probe]
    group-by: [c-ip]
    timespan: 5m
    condition: {field: cs-uri-query, gt: 1}
level: high
---
title: Many logins
id: 6f1d1c9e-0000-4000-8000-0000000000b5
correlation:
    type: event_count
    rules: [login_page]
    group-by: [c-ip]
    timespan: 1m
    condition: {gte: 2}
    generate: true
level: medium
"""

TEMPORAL = """title: Probe then login
id: 6f1d1c9e-0000-4000-8000-0000000000c1
correlation:
    type: temporal
    rules: [6f1d1c9e-0000-4000-8000-0000000000b1, 6f1d1c9e-0000-4000-8000-0000000000b2]
    group-by: [c-ip]
    timespan: 10m
level: high
"""


def test_correlations_through_the_cli(tmp_path: Path, dask_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """event_count and value_count with group-by and timespan open one case per group over the threshold
    and their rules none; generate: true keeps the rule's own cases; temporal is listed as unsupported."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    sig = tmp_path / "sigma"
    sig.mkdir()
    (sig / "web_console.yml").write_text(CORRELATIONS, encoding="utf-8")
    (sig / "web_temporal.yml").write_text(TEMPORAL.replace("b2]", "b9]"), encoding="utf-8")
    line = '{ip} - - [01/Nov/2026:10:{m:02d}:{s:02d} +0000] "GET {uri} HTTP/1.1" 200 5 "-" "curl/8"\n'
    log = tmp_path / "a.log"
    log.write_text("".join([
        line.format(ip="203.0.113.5", m=0, s=s, uri="/console/a") for s in (1, 2, 3)]    # burst: 3 in 1m
        + [line.format(ip="203.0.113.6", m=m, s=0, uri=u) for m, u in ((0, "/console/a"), (2, "/console/b"))]
        + [line.format(ip="203.0.113.7", m=0, s=s, uri="/login") for s in (10, 20)]      # 2 logins
        + [line.format(ip="203.0.113.8", m=0, s=30, uri="/login")]), encoding="utf-8")
    cfg = _config(tmp_path, sig, [(log, "combined")])
    res = cli(cfg, "rules", "lint")
    assert res.exit_code == 0, res.output
    assert (f"{sig / 'web_temporal.yml'}:4: [sigma.correlation.web_temporal] unsupported: correlation type "
            "'temporal' is not supported") in res.stdout
    assert "6f1d1c9e-0000-4000-8000-0000000000b9, which did not load" not in res.stdout   # the type comes first
    res = cli(cfg, "scan")
    assert res.exit_code == 0, res.output
    assert "skipped 1 unsupported Sigma rule(s): sigma.correlation.web_temporal" in res.stdout
    got = sorted((c["rule_id"], c["subject_id"]) for c in cases(cfg))
    assert got == [("sigma.correlation.web_console_3", "203.0.113.5"),        # event_count: 3 within 1m
                   ("sigma.correlation.web_console_4", "203.0.113.6"),        # value_count: 2 paths within 5m
                   ("sigma.correlation.web_console_5", "203.0.113.7"),        # generate: true ...
                   ("sigma.web.web_console_2", "203.0.113.7"),                # ... its rule's own cases too
                   ("sigma.web.web_console_2", "203.0.113.8")]
    show = yaml.safe_load(cli(cfg, "rules", "show", "sigma.correlation.web_console_4").stdout)
    assert show["aggregate"] == {"group_by": ["client_ip"], "window_seconds": 300, "distinct_field": "uri",
                                 "distinct_gte": 2}
    assert yaml.safe_load(cli(cfg, "rules", "show", "sigma.web.web_console").stdout)["enabled"] is False


UNSUPPORTED = {
    "web_wide.yml": ("cs-uri-query|wide|base64offset|contains", "cmd"),
    "web_fieldref.yml": ("cs-referer|fieldref", "cs-host"),
    "web_minute.yml": ("sc-status|minute", "5"),
    "web_expand.yml": ("cs-uri-query|expand", "'%admin_paths%'"),
}
SUPPORTED = {
    "web_b64off.yml": ("cs-uri-query|base64offset|contains", "whoami"),
    "web_cidr.yml": ("c-ip|cidr", "10.0.0.0/8"),
    "web_exists.yml": ("cs-username|exists", "true"),
    "web_cased.yml": ("cs-user-agent|cased", "CurlBot"),
    "web_gt.yml": ("sc-bytes|gt", "1000"),
    "web_lt.yml": ("sc-status|lt", "200"),
    "web_windash.yml": ("cs-uri-query|windash|contains", "'-enc'"),
}
MODIFIER_RULE = """title: Modifier {key}
id: 6f1d1c9e-0000-4000-8000-0000000000d{n}
logsource: {{category: webserver}}
detection:
    selection:
        cs-method: GET
        {key}: {value}
    condition: selection
level: low
"""


def test_lint_names_each_unsupported_modifier_and_error_mode_stops_the_scan(tmp_path: Path) -> None:
    sig = tmp_path / "sigma"
    sig.mkdir()
    for n, (name, (key, value)) in enumerate({**UNSUPPORTED, **SUPPORTED}.items()):
        (sig / name).write_text(MODIFIER_RULE.format(key=key, value=value, n=n), encoding="utf-8")
    cfg = _config(tmp_path, sig)
    res = cli(cfg, "rules", "lint")
    assert res.exit_code == 0, res.output
    listed = sorted(line for line in res.stdout.splitlines() if "unsupported:" in line)
    assert listed == sorted(f"{sig / name}:7: [sigma.web.{name[:-4]}] unsupported: modifier "
                            f"'{key.split('|')[1]}' ({key}) is not supported" for name, (key, _) in UNSUPPORTED.items())
    assert res.stdout.strip().splitlines()[-1].startswith(
        f"{len(SUPPORTED)} rules OK ({len(SUPPORTED)} from Sigma), {len(UNSUPPORTED)} Sigma rule(s) unsupported")
    strict = _config(tmp_path, sig, extra="  unsupported: error\n", name="strict.yaml")
    for args in (("rules", "lint"), ("scan",)):
        res = cli(strict, *args)
        assert res.exit_code == 2, (args, res.output)
        assert f"{sig / 'web_wide.yml'}:7: [sigma.web.web_wide] unsupported: modifier 'wide'" in res.stderr
