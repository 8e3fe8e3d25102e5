"""Sigma rules as a user meets them: loading, lint and show, unsupported features, correlations, the log
fields Sigma needs (username, host, the raw line) and cases opened by a scan."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.errors import RuleLoadError
from pipeline.matchers.evaluate import CompiledRules
from pipeline.rules import model as m
from pipeline.rules.loader import load_rules
from pipeline.sources import logs as _formats  # noqa: F401  (registers the log formats)
from pipeline.sources.base import LOG_FORMATS
from pipeline.sources.logs_common import LOG_TABLES, RAW, keeping_raw

RULE = """title: Probe of the admin console
id: 6f1d1c9e-0000-4000-8000-00000000000a
status: test
author: Someone
references: [https://example.org/advisory]
logsource: {category: webserver}
detection:
    selection:
        cs-method: POST
        cs-uri-query|contains: '/console/%2e%2e/'
    condition: selection
falsepositives: [Unknown]
level: critical
"""

WIDE = """title: Uses wide
id: 6f1d1c9e-0000-4000-8000-00000000000b
logsource: {category: webserver}
detection:
    selection:
        cs-uri-query|wide|contains: 'cmd'
    condition: selection
level: low
"""

COMBINED = (
    '203.0.113.5 - - [01/Nov/2026:10:00:01 +0000] "POST /console/%2e%2e/x HTTP/1.1" 200 5 "-" "curl/8"\n'
    '203.0.113.6 - bob [01/Nov/2026:10:00:02 +0000] "POST /console/../x HTTP/1.1" 200 5 "-" "curl/8"\n'
)


def _sigma(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    own, sig = tmp_path / "rules", tmp_path / "sigma"
    own.mkdir(exist_ok=True)
    sig.mkdir(exist_ok=True)
    for name, text in files.items():
        (sig / name).write_text(text, encoding="utf-8")
    return own, sig


def _config(tmp_path: Path, own: Path, sig: Path, extra: str = "") -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"rules: {own}\nstate_dir: {tmp_path / 'state'}\nsigma:\n  folders: [{sig}]\n{extra}",
                   encoding="utf-8")
    return cfg


def test_a_sigma_rule_keeps_its_metadata_and_matches_as_logged(tmp_path: Path) -> None:
    own, sig = _sigma(tmp_path, {"web_console_probe.yml": RULE})
    rs = load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    rule = rs.by_id("sigma.web.web_console_probe")
    meta = rule.meta["sigma"]
    assert (meta["id"], meta["level"], meta["status"], meta["author"]) == \
        ("6f1d1c9e-0000-4000-8000-00000000000a", "critical", "test", "Someone")
    assert meta["references"] == ["https://example.org/advisory"] and meta["falsepositives"] == ["Unknown"]
    assert rule.severity == "critical" and rule.category == "attack_web" and rule.subject == "client_ip"
    log = tmp_path / "a.log"
    log.write_text(COMBINED, encoding="utf-8")
    df = LOG_FORMATS.get("combined")(str(log), domain="x.example").records
    [(_, mask, ev)] = CompiledRules(rs.for_source("logs"), "logs").evaluate(df)
    # the percent-encoded value matches the line that has it, not the decoded '../' one
    assert mask.tolist() == [True, False]
    assert set(ev["kind"]) == {"sigma"} and all("6f1d1c9e" in p and "level critical" in p for p in ev["pattern"])
    assert "/console/%2e%2e/" in set(ev["text"])


def test_unsupported_modifier_is_listed_by_lint_and_skipped_or_an_error(tmp_path: Path) -> None:
    own, sig = _sigma(tmp_path, {"web_ok.yml": RULE, "web_wide.yml": WIDE})
    cfg = _config(tmp_path, own, sig)
    res = CliRunner().invoke(main, ["--config", str(cfg), "rules", "lint"])
    assert res.exit_code == 0, res.output
    assert f"{sig / 'web_wide.yml'}:6: [sigma.web.web_wide] unsupported: modifier 'wide'" in res.stdout
    assert "2 rules OK" not in res.stdout and "1 rules OK (1 from Sigma), 1 Sigma rule(s) unsupported" in res.stdout
    assert res.stderr.count("no inline tests") == 1
    strict = _config(tmp_path, own, sig, "  unsupported: error\n")
    res = CliRunner().invoke(main, ["--config", str(strict), "rules", "lint"])
    assert res.exit_code == 2 and f"web_wide.yml:6: [sigma.web.web_wide] unsupported" in res.stderr
    assert "Traceback" not in res.output


def test_bad_regex_and_bad_condition_are_errors_naming_the_rule(tmp_path: Path) -> None:
    bad_re = RULE.replace("cs-uri-query|contains: '/console/%2e%2e/'", "cs-uri-query|re: '(?<=a)b'")
    bad_cond = RULE.replace("condition: selection", "condition: selection and not filter")
    own, sig = _sigma(tmp_path, {"web_re.yml": bad_re, "web_cond.yml": bad_cond})
    with pytest.raises(RuleLoadError) as err:
        load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    text = str(err.value)
    assert "web_re.yml:10:" in text and "[sigma.web.web_re]" in text and "not a valid RE2" in text
    assert "web_cond.yml:11:" in text and "unknown selection 'filter'" in text


def test_a_sigma_file_among_the_projects_own_rules_says_where_it_belongs(tmp_path: Path) -> None:
    own, sig = _sigma(tmp_path, {})
    (own / "web_console_probe.yml").write_text(RULE, encoding="utf-8")
    with pytest.raises(RuleLoadError) as err:
        load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    [problem] = err.value.problems
    assert "Sigma rule" in problem.message and str(sig) in (problem.hint or "")


def test_rules_show_prints_the_converted_rule_and_its_mapping(tmp_path: Path) -> None:
    own, sig = _sigma(tmp_path, {"web_console_probe.yml": RULE})
    res = CliRunner().invoke(main, ["--config", str(_config(tmp_path, own, sig)), "rules", "show",
                                    "sigma.web.web_console_probe"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.stdout)
    assert shown["field_mapping"] == {"cs-method": "method", "cs-uri-query": "uri"}
    assert shown["sigma"]["id"] == "6f1d1c9e-0000-4000-8000-00000000000a" and shown["sigma"]["author"] == "Someone"
    regexes = [c for c in shown["match"]["all"] if "regex" in c]
    assert {"regex": "(?is)/console/%2e%2e/", "fields": ["uri"], "as_logged": True,
            "sigma": "cs-uri-query|contains"} in regexes
    missing = CliRunner().invoke(main, ["--config", str(_config(tmp_path, own, sig)), "rules", "show", "console"])
    assert missing.exit_code == 2 and "did you mean: sigma.web.web_console_probe" in missing.stderr


CORRELATION = RULE + """---
title: Many console probes from one address
id: 6f1d1c9e-0000-4000-8000-00000000000c
correlation:
    type: event_count
    rules: [6f1d1c9e-0000-4000-8000-00000000000a]
    group-by: [c-ip]
    timespan: 1m
    condition: {gte: 3}
level: high
"""


def test_event_count_correlation_is_an_aggregate_over_the_rules_it_names(tmp_path: Path) -> None:
    own, sig = _sigma(tmp_path, {"web_console_probe.yml": CORRELATION,
                                 "web_temporal.yml": CORRELATION.split("---\n")[1].replace("event_count", "temporal")})
    rs = load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    base, corr = rs.by_id("sigma.web.web_console_probe"), rs.by_id("sigma.correlation.web_console_probe_2")
    assert not base.enabled and corr.enabled      # the referenced rule opens no cases of its own
    assert corr.aggregate == m.Aggregate(("client_ip",), 60, count_gte=3) and corr.match == base.match
    assert [s.rule_id for s in rs.skipped] == ["sigma.correlation.web_temporal"]
    assert "temporal" in rs.skipped[0].reason
    generated = CORRELATION.replace("condition: {gte: 3}", "condition: {gte: 3}\n    generate: true")
    (sig / "web_console_probe.yml").write_text(generated, encoding="utf-8")
    rs = load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    # as in pySigma, any correlation without generate: true silences the rule, even one that cannot run
    assert not rs.by_id("sigma.web.web_console_probe").enabled
    assert any("web_temporal" in n and "open no cases of their own" in n for n in rs.notes)
    (sig / "web_temporal.yml").unlink()
    rs = load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    assert rs.by_id("sigma.web.web_console_probe").enabled


def test_combined_common_and_w3c_keep_username_and_host(tmp_path: Path) -> None:
    comb = tmp_path / "c.log"
    comb.write_text(COMBINED, encoding="utf-8")
    assert LOG_FORMATS.get("combined")(str(comb), domain="x").records["username"].tolist() == [pd.NA, "bob"]
    common = tmp_path / "common.log"
    common.write_text('1.2.3.4 - carol [01/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5\n', encoding="utf-8")
    assert LOG_FORMATS.get("common")(str(common), domain="x").records["username"].tolist() == ["carol"]
    w3c = tmp_path / "w.log"
    w3c.write_text("#Fields: date time c-ip cs-username cs-method cs-uri-stem sc-status cs-host\n"
                   "2026-11-01\t10:00:00\t1.2.3.4\tdave\tGET\t/\t200\twww.example.cn\n", encoding="utf-8")
    rec = LOG_FORMATS.get("w3c")(str(w3c)).records.iloc[0]
    assert (rec["username"], rec["host"], rec["domain"]) == ("dave", "www.example.cn", "www.example.cn")
    assert pd.isna(LOG_FORMATS.get("combined")(str(comb), domain="x").records["host"]).all()


def test_the_raw_line_is_kept_only_while_a_scan_asks_for_it(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(COMBINED.replace("\n", "\nnot a log line\n", 1), encoding="utf-8")
    plain = LOG_TABLES.get("combined")(str(log), domain="x")
    assert plain.raw is None and RAW not in plain.to_result().records.columns
    with keeping_raw():
        table = LOG_TABLES.get("combined")(str(log), domain="x")
    assert RAW not in table.records.column_names     # the Arrow table the retained store ingests
    assert table.raw.to_pylist() == COMBINED.splitlines()   # the quarantined line is not among them
    assert table.to_result().records[RAW].tolist() == COMBINED.splitlines()


def test_allof_evidence_comes_only_from_branches_that_matched() -> None:
    a = m.Regex("alpha", ("uri",))
    b = m.Regex("beta", ("uri",))
    c = m.Regex("gamma", ("uri",))
    rule = m.Rule(id="logs.t.t", title="t", clause="3", category="c", severity="low", sources=("logs",),
                  match=m.AnyOf((m.AllOf((a, b)), c)), path="-", line=1, content_hash="x")
    df = pd.DataFrame({"uri": ["alpha gamma", "alpha beta"]})
    [(_, mask, ev)] = CompiledRules([rule], "logs").evaluate(df)
    assert mask.tolist() == [True, True]
    assert sorted(zip(ev["row"], ev["text"])) == [(0, "gamma"), (1, "alpha"), (1, "beta")]


def test_a_scan_opens_cases_naming_the_sigma_rule_and_skips_unsupported(tmp_path: Path, dask_client) -> None:
    from pipeline.cases.store import open_store
    from pipeline.runner import scan

    own, sig = _sigma(tmp_path, {"web_console_probe.yml": RULE, "web_wide.yml": WIDE,
                                 "web_jndi.yml": RULE.replace("cs-method: POST\n        cs-uri-query|contains: "
                                                              "'/console/%2e%2e/'", "").replace(
                                     "selection:\n", "keywords:\n        - '${jndi:'\n    x:\n        c-ip: 1\n"
                                 ).replace("condition: selection", "condition: keywords")})
    log = tmp_path / "a.log"
    log.write_text(COMBINED + '203.0.113.9 - - [01/Nov/2026:10:00:03 +0000] "GET / HTTP/1.1" 200 5 "-" '
                   '"${jndi:ldap://x/a}"\n', encoding="utf-8")
    cfg = _config(tmp_path, own, sig)
    cfg.write_text(cfg.read_text() + f"sources:\n  logs:\n    - {{path: {log}, format: combined, domain: x.example}}\n")
    settings = load_settings(str(cfg))
    report = scan(settings, client=dask_client)
    assert report.rules_skipped == {"sigma.web.web_wide": "modifier 'wide' (cs-uri-query|wide|contains) "
                                                              "is not supported"}
    store = open_store(settings.state_path, settings.case_store)
    try:
        cases = {c["rule_id"]: c for c in store.list_cases().to_dict("records")}
        assert set(cases) == {"sigma.web.web_console_probe", "sigma.web.web_jndi"}
        probe = cases["sigma.web.web_console_probe"]
        assert probe["subject_id"] == "203.0.113.5" and probe["severity"] == "critical"
        evidence = json.dumps(store.get_case(probe["case_id"]), default=str, ensure_ascii=False)
        assert "6f1d1c9e-0000-4000-8000-00000000000a (level critical)" in evidence and "/console/%2e%2e/" in evidence
    finally:
        store.close()


def test_a_correlation_opens_one_case_and_its_rule_none(tmp_path: Path, dask_client) -> None:
    from pipeline.cases.store import open_store
    from pipeline.runner import scan

    own, sig = _sigma(tmp_path, {"web_console_probe.yml": CORRELATION})
    line = '{ip} - - [01/Nov/2026:10:00:{s:02d} +0000] "POST /console/%2e%2e/x HTTP/1.1" 200 5 "-" "curl/8"\n'
    log = tmp_path / "a.log"
    log.write_text("".join(line.format(ip="203.0.113.5", s=s) for s in (1, 2, 3))
                   + "".join(line.format(ip="203.0.113.6", s=s) for s in (4, 5)), encoding="utf-8")
    cfg = _config(tmp_path, own, sig)
    cfg.write_text(cfg.read_text() + f"sources:\n  logs:\n    - {{path: {log}, format: combined, domain: x.example}}\n")
    settings = load_settings(str(cfg))
    scan(settings, client=dask_client)
    store = open_store(settings.state_path, settings.case_store)
    try:
        cases = store.list_cases().to_dict("records")
    finally:
        store.close()
    assert [(c["rule_id"], c["subject_id"]) for c in cases] == \
        [("sigma.correlation.web_console_probe_2", "203.0.113.5")]


def test_value_sum_is_an_aggregate_and_other_correlations_say_why_they_cannot_run(tmp_path: Path) -> None:
    body = CORRELATION.split("---\n")[1]
    docs = {
        "web_sum.yml": body.replace("type: event_count", "type: value_sum").replace(
            "condition: {gte: 3}", "condition: {field: sc-bytes, gt: 1000000}"),
        "web_avg.yml": body.replace("type: event_count", "type: value_avg"),
        "web_nogroup.yml": body.replace("    group-by: [c-ip]\n", ""),
        "web_lt.yml": body.replace("condition: {gte: 3}", "condition: {lt: 3}"),
        "web_host.yml": body.replace("group-by: [c-ip]", "group-by: [cs-host]"),
    }
    own, sig = _sigma(tmp_path, {"web_console_probe.yml": RULE, **docs})
    rs = load_rules(str(own), sigma_folders=(str(sig),), sigma=load_settings(None).sigma)
    total = rs.by_id("sigma.correlation.web_sum")
    assert total.aggregate == m.Aggregate(("client_ip",), 60, sum_field="bytes_sent", sum_gte=1000001.0)
    reasons = {s.rule_id.rsplit(".", 1)[1]: (s.line, s.reason) for s in rs.skipped}
    assert set(reasons) == {"web_avg", "web_nogroup", "web_lt", "web_host"}
    assert reasons["web_avg"][0] == 4 and "'value_avg' is not supported" in reasons["web_avg"][1]
    assert "without group-by" in reasons["web_nogroup"][1]
    assert reasons["web_lt"][0] == 8 and "only gte / gt" in reasons["web_lt"][1]
    # cs-host is the host column, but the Tencent CDN domain: an aggregate cannot group by both
    assert "'cs-host'" in reasons["web_host"][1] and "tencent-cdn: domain" in reasons["web_host"][1]
