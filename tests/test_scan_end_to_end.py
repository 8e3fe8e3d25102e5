"""End to end on a real LocalCluster: generated data in every format → cases equal to the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cases.store import open_store
from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.rules.loader import load_rules
from pipeline.runner import plan_tasks, scan, split_tasks

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# which starter rule each planted log violation must trigger, by the plant's id prefix
LOG_RULES = {"scan-404": "logs.scanning.notfound_burst", "scan-distinct": "logs.scanning.path_sweep",
             "inject": "logs.injection.payload", "spike": "logs.abuse.traffic_spike",
             "bandwidth": "logs.abuse.bandwidth"}
CONTENT_RULES = {"contraband_gambling": "logs.content.gambling_url", "pornographic_adult": "logs.content.porn_url"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    """Objects, logs, bindings, filings, licences and streams, through `compliance generate`."""
    out = tmp_path_factory.mktemp("gen")
    res = CliRunner().invoke(main, ["generate", "--out", str(out), "--rows", "1500", "--log-lines", "4000",
                                    "--seed", "11", "--rules-dir", str(root / "rules")])
    assert res.exit_code == 0, res.output
    return out


def expected_cases(out: Path) -> set[tuple[str, str, str]]:
    want: set[tuple[str, str, str]] = set()
    for line in (out / "truth" / "objects.jsonl").read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        for rule_id in t["rule_ids"]:
            want.add((rule_id, "object", t["subject_id"]))
    for line in (out / "truth" / "logs.jsonl").read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        rule = CONTENT_RULES.get(t["family"]) if t["id"].startswith("content") else \
            next(r for prefix, r in LOG_RULES.items() if t["id"].startswith(prefix))
        want.add((rule, t["subject_type"], t["subject_id"]))
    for name in ("icp.jsonl", "streams.jsonl"):
        for line in (out / "truth" / name).read_text(encoding="utf-8").splitlines():
            t = json.loads(line)
            want.add((t["rule_id"], t["subject_type"], t["subject_id"]))
    return want


def test_scan_finds_exactly_the_planted_violations(generated: Path, dask_client) -> None:
    settings = load_settings(str(generated / "config.yaml"))
    report = scan(settings, client=dask_client)
    store = open_store(settings.state_path)
    cases = store.list_cases()
    got = set(zip(cases["rule_id"], cases["subject_type"], cases["subject_id"]))
    want = expected_cases(generated)
    assert got - want == set(), "cases on clean rows or near-misses"
    assert want - got == set(), "planted violations not found"
    # every row accounted for, and the quarantine matches what was planted as malformed
    malformed = json.loads((generated / "truth" / "objects_malformed.json").read_text())
    log_malformed = json.loads((generated / "truth" / "logs_malformed.json").read_text())
    assert report.rows_read == report.rows_parsed + report.rows_quarantined
    assert report.rows_quarantined >= sum(malformed.values()) + sum(log_malformed.values())
    assert report.per_source["objects"]["rows_quarantined"] == sum(malformed.values())
    assert report.per_source["logs"]["rows_quarantined"] == sum(log_malformed.values())
    assert report.cases_new == len(want)
    # evidence points back to the file and line, and the account is attributed
    one = store.get_case(cases[cases["subject_type"] == "object"].iloc[0]["case_id"])
    assert one["evidence"][0]["source_file"] and one["evidence"][0]["source_line"] >= 1
    content = cases[cases["rule_id"] == "logs.content.porn_url"]
    assert content["account_id"].notna().all()
    store.close()


def test_second_scan_creates_no_case(generated: Path, dask_client) -> None:
    settings = load_settings(str(generated / "config.yaml"))
    before = open_store(settings.state_path).list_cases()
    report = scan(settings, client=dask_client)
    after = open_store(settings.state_path).list_cases()
    assert report.cases_new == 0 and report.cases_updated == 0
    assert len(after) == len(before)
    assert (after.set_index("case_id")["hit_count"] == before.set_index("case_id")["hit_count"]).all()


def strict_json(text: str) -> object:
    """JSON as the standard has it: NaN and Infinity are errors."""
    def reject(name: str) -> object:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=reject)


def test_cli_scan_json_and_cases_commands(generated: Path, tmp_path: Path) -> None:
    """The CLI path starts its own LocalCluster, reads the config, prints JSON, lists and exports."""
    runner = CliRunner()
    cfg = str(generated / "config.yaml")
    res = runner.invoke(main, ["--config", cfg, "scan", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"run_id", "rows_read", "rows_quarantined", "cases_new", "cases_updated"} <= set(summary)
    assert summary["cases_new"] == 0
    listed = runner.invoke(main, ["--config", cfg, "cases", "list", "--category", "contraband_gambling",
                                  "--format", "json"])
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert rows and all(r["category"] == "contraband_gambling" and r["clause"] == "3.1.3.5.4" for r in rows)
    assert all(r["evidence"] for r in rows)
    # the table of every case, log cases without an account among them
    every_json = runner.invoke(main, ["--config", cfg, "cases", "list", "--format", "json"]).stdout
    every = [strict_json(x) for x in every_json.splitlines()]
    assert any(r["account_id"] is None for r in every) and any(r["account_id"] for r in every)
    table = runner.invoke(main, ["--config", cfg, "cases", "list"])
    assert table.exit_code == 0, table.output
    assert f"{len(every)} case(s)" in table.stdout and "§3.1.3.5.4" in table.stdout and "[keywords" in table.stdout
    # a category no case has: an empty list, and what the store does hold
    unknown = runner.invoke(main, ["--config", cfg, "cases", "list", "--category", "gambling"])
    assert unknown.exit_code == 0 and "0 case(s)" in unknown.stdout
    assert "no case has category 'gambling'" in unknown.stderr and "contraband_gambling" in unknown.stderr
    shown = runner.invoke(main, ["--config", cfg, "cases", "show", rows[0]["case_id"]])
    assert shown.exit_code == 0 and rows[0]["rule_id"] in shown.stdout and "history" in shown.stdout
    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"cases.{fmt}"
        res = runner.invoke(main, ["--config", cfg, "cases", "export", "--format", fmt, "--out", str(out)])
        assert res.exit_code == 0 and out.stat().st_size > 0
    assert all(strict_json(x) for x in (tmp_path / "cases.jsonl").read_text(encoding="utf-8").splitlines())
    missing = runner.invoke(main, ["--config", cfg, "cases", "show", "Cnope"])
    assert missing.exit_code != 0 and "no case 'Cnope'" in missing.stderr


def test_real_benign_access_log_opens_no_case(corpus: Path, root: Path, tmp_path: Path, dask_client) -> None:
    log = corpus / "access-logs" / "apache_combined_2015.log"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"rules: {root / 'rules'}\nstate_dir: state\nsources:\n  logs:\n"
                   f"    - {{path: {log}, format: combined, domain: www.example.com}}\n", encoding="utf-8")
    report = scan(load_settings(str(cfg)), client=dask_client)
    assert report.rows_read == 10000 and report.rows_quarantined == 0
    cases = open_store(tmp_path / "state").list_cases()
    assert list(cases["rule_id"]) == []


def config_copy(generated: Path, tmp_path: Path, drop: tuple[str, ...] = ()) -> Path:
    """The generated config with a state folder of its own under tmp_path, without the ``drop`` sources."""
    import yaml

    cfg = yaml.safe_load((generated / "config.yaml").read_text(encoding="utf-8"))
    cfg["rules"] = str((generated / cfg["rules"]).resolve()) if not Path(cfg["rules"]).is_absolute() else cfg["rules"]
    cfg["state_dir"] = str(tmp_path / "state")
    for kind in drop:
        cfg["sources"].pop(kind, None)
    for entries in cfg["sources"].values():
        for e in entries:
            e["path"] = str(generated / e["path"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "config.yaml"
    out.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return out


def cli_summary(cfg: Path, *args: str) -> dict:
    res = CliRunner().invoke(main, ["--config", str(cfg), "scan", "--json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_scan_summary_counts_every_file_read(generated: Path, tmp_path: Path, dask_client,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`files` is the sum of per_source's files: filings and licences, read on every scan, count too."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    cfg = config_copy(generated, tmp_path)
    full = cli_summary(cfg, "--full")
    assert {"icp", "licences"} <= set(full["per_source"])
    assert full["files"] == sum(s["files"] for s in full["per_source"].values())
    assert full["rows_read"] == sum(s["rows_read"] for s in full["per_source"].values())
    incremental = cli_summary(cfg)
    licensing_files = full["per_source"]["icp"]["files"] + full["per_source"]["licences"]["files"]
    assert set(incremental["per_source"]) == {"icp", "licences"}
    assert incremental["files"] == licensing_files > 0
    assert incremental["files"] + incremental["files_skipped"] == full["files"]
    assert incremental["rows_read"] == sum(s["rows_read"] for s in incremental["per_source"].values()) > 0


def test_no_icp_source_skips_the_filing_checks(generated: Path, tmp_path: Path, dask_client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects, logs and bindings only: no filing record is configured, so no case says a domain is unfiled
    or its declared number unknown; the summary names the skipped rules."""
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    cfg = config_copy(generated, tmp_path, drop=("icp", "licences", "streams"))
    summary = cli_summary(cfg)
    assert summary["cases_new"] > 0
    settings = load_settings(str(cfg))
    store = open_store(settings.state_path)
    try:
        cases = store.list_cases()
    finally:
        store.close()
    assert not cases["rule_id"].str.startswith("icp.").any()
    checks = {r.id for r in load_rules(settings.rules_dir).rules if r.check is not None and r.enabled}
    assert set(summary["checks_skipped"]) == checks
    assert all("sources.icp" in why for why in summary["checks_skipped"].values())
    # with the filings configured nothing is skipped
    assert cli_summary(config_copy(generated, tmp_path / "with-icp"))["checks_skipped"] == {}


def test_files_read_in_parts_give_exactly_the_cases_of_whole_files(generated: Path, tmp_path: Path,
                                                                     dask_client) -> None:
    """Object listings cut into parts of 4 KB: the same rows, quarantine (file, line, reason) and
    cases, hit for hit and line for line, as reading every file whole."""
    import yaml

    base = yaml.safe_load((generated / "config.yaml").read_text(encoding="utf-8"))
    outcome = {}
    for name, scan_settings in (("whole", {}), ("parts", {"part_bytes": 4096})):
        cfg = generated / f"config-{name}.yaml"
        cfg.write_text(yaml.safe_dump({**base, "state_dir": str(tmp_path / name), "scan": scan_settings},
                                      allow_unicode=True), encoding="utf-8")
        settings = load_settings(str(cfg))
        report = scan(settings, client=dask_client)
        store = open_store(settings.state_path)
        cases = store.list_cases()
        quarantine = store.db.all("SELECT source_file, source_line, reason FROM quarantine ORDER BY source_file, "
                                  "source_line, reason")
        evidence = {cid: sorted((i["source_file"], i["source_line"]) for i in store.get_case(cid)["evidence"])
                    for cid in cases["case_id"]}
        store.close()
        outcome[name] = ({k: getattr(report, k) for k in ("files", "rows_read", "rows_parsed", "rows_quarantined",
                                                            "hits", "cases_new")},
                         sorted(zip(cases["case_id"], cases["hit_count"])), [tuple(q.values()) for q in quarantine],
                         evidence)
    assert outcome["parts"] == outcome["whole"]
    assert outcome["whole"][0]["rows_quarantined"] > 0 and outcome["whole"][0]["cases_new"] > 0
    files = plan_tasks(load_settings(str(generated / "config-parts.yaml")))
    assert len(split_tasks(files, 4096)) > len(files) + 20   # the parts were there to be read


def test_a_file_cut_inside_a_quoted_value_is_read_whole(tmp_path: Path, root: Path, dask_client) -> None:
    from pipeline.sources.base import OBJECT_FORMATS, cut_inside_a_field, plan_parts, reading_part

    rows = ["bucket,key,title"]
    for i in range(200):
        title = f'"澳门赌场 第{i}期\n线上开户"' if i % 2 else f"假期照片 {i}"
        rows.append(f"b,k{i:03d}.jpg,{title}")
    listing = tmp_path / "objects.csv"
    listing.write_text("\n".join(rows) + "\n", encoding="utf-8")
    cut_inside = []
    for part in plan_parts(str(listing), 2048, header=True):
        with reading_part(part):
            cut_inside.append(cut_inside_a_field(OBJECT_FORMATS.get("csv")(str(listing)), part))
    assert any(cut_inside)
    found = {}
    for name, part_bytes in (("whole", 1 << 30), ("parts", 2048)):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(f"rules: {root / 'rules'}\nstate_dir: {tmp_path / name}\nscan: {{part_bytes: {part_bytes}}}\n"
                       f"sources:\n  objects:\n    - {{path: {listing}, format: csv}}\n", encoding="utf-8")
        report = scan(load_settings(str(cfg)), client=dask_client)
        store = open_store(tmp_path / name)
        found[name] = (report.rows_read, report.rows_quarantined, report.files,
                       sorted(zip(store.list_cases()["subject_id"], store.list_cases()["hit_count"])))
        store.close()
    assert found["parts"] == found["whole"]
    assert found["whole"][:3] == (200, 0, 1) and len(found["whole"][3]) == 100
