"""Commands as a user types them, through the `compliance` CLI in a subprocess, on real files:
the README's case id, `cases resolve|reopen`, `logs hold add|list|release`, `logs purge` with an
open case and a legal hold each keeping a day, `logs verify` after tampering, `rules test`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cases.ids import case_id
from pipeline.cases.store import open_store
from pipeline.config import load_settings
from pipeline.matchers.hits import HIT_COLUMNS
from pipeline.retention import partitions_between
from pipeline.rules import model as m

ROOT = Path(__file__).resolve().parent.parent

# The case the README shows (`compliance cases show C00577080d733f651`): the sample's firearms
# listing. Its id is sha256 of (rule id, subject type, subject id) joined by U+001F, cut to 16 hex
# digits, so that ids stay the same across runs, machines and versions.
README_CASE = ("objects.contraband.weapons", "object", "bluefin-game-assets/shop/仿真枪出售_0000494.jpg")
README_CASE_ID = "C00577080d733f651"


def cli(*args: str, cfg: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli.__main__", *(["--config", str(cfg)] if cfg else []), *args]
    # os.environ holds no PYTHONHASHSEED here (conftest removes the one distributed's Nanny sets)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_cli_subprocesses_get_no_fixed_hash_seed(dask_client) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('PYTHONHASHSEED'))"],
                         capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "None"


def test_case_id_is_pinned() -> None:
    assert case_id(*README_CASE) == README_CASE_ID
    assert README_CASE_ID in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, dask_client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The README's first command's scan of the bundled sample, into a state folder of its own, on
    the suite's cluster."""
    env = {"COMPLIANCE_STATE_DIR": str(tmp_path_factory.mktemp("sample-state")),
           "DASK_SCHEDULER_ADDRESS": dask_client.scheduler.address}
    done = cli("scan", env=env)
    assert done.returncode == 0, done.stderr
    return env


def show(case: str, env: dict[str, str]) -> dict[str, object]:
    done = cli("cases", "show", case, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.cluster
def test_readme_case_is_opened_under_its_literal_id(sample: dict[str, str]) -> None:
    case = show(README_CASE_ID, sample)
    assert case["rule_id"] == README_CASE[0] and case["subject_id"] == README_CASE[2]


@pytest.mark.cluster
def test_cases_resolve_and_reopen(sample: dict[str, str]) -> None:
    listed = cli("cases", "list", "--format", "json", "--category", "contraband_gambling", env=sample)
    assert listed.returncode == 0, listed.stderr
    target = json.loads(listed.stdout.splitlines()[0])["case_id"]
    done = cli("cases", "resolve", target, "--by", "alice", "--reason", "object deleted by the customer", env=sample)
    assert done.returncode == 0, done.stderr
    case = show(target, sample)
    assert case["status"] == "resolved"
    assert cli("cases", "reopen", target, "--by", "bob", "--reason", "re-uploaded", env=sample).returncode == 0
    case = show(target, sample)
    assert case["status"] == "open"
    history = json.dumps(case["history"], ensure_ascii=False)
    assert "object deleted by the customer" in history and "re-uploaded" in history and "alice" in history
    # a transition the lifecycle does not have is refused and changes nothing
    bad = cli("cases", "reopen", target, "--by", "bob", "--reason", "twice", env=sample)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert show(target, sample)["status"] == "open"


# --- the retained store ----------------------------------------------------------------------------

DAYS = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08"]   # all past the 180 days kept


@pytest.fixture()
def store_cfg(tmp_path: Path) -> Path:
    """A state folder whose retained store holds four old days of logs, ingested through the CLI."""
    log = tmp_path / "access.jsonl"
    log.write_text("".join(json.dumps({"ts": f"{d}T0{h}:00:00Z", "client_ip": f"203.0.113.{h}", "domain": "a.example.cn",
                                       "method": "GET", "uri": f"/p{h}", "status": 200, "bytes_sent": 10}) + "\n"
                           for d in DAYS for h in range(1, 4)), encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("state_dir: state\nrules: rules\n", encoding="utf-8")
    done = cli("logs", "ingest", str(log), "--format", "jsonl", cfg=cfg)
    assert done.returncode == 0, done.stderr
    return cfg


def stored_days(cfg: Path) -> list[str]:
    settings = load_settings(str(cfg))
    return [str(p.day) for p in partitions_between(settings, None, None)]


def open_log_case(cfg: Path, day: str) -> str:
    """An open case about a client IP whose evidence is a request on ``day``."""
    settings = load_settings(str(cfg))
    rule = m.Rule(id="logs.t.scan", title="t", clause="3.1.3.7", category="attack_scanning", severity="medium",
                  sources=("logs",), match=None, path="x", line=1, content_hash="h")
    rs = m.RuleSet((rule,), "d")
    hit = {"rule_id": rule.id, "subject_type": "client_ip", "subject_id": "203.0.113.2", "account_id": "",
           "event_time": pd.Timestamp(f"{day}T02:00:00Z"), "source_file": "access.jsonl", "source_line": 5,
           "hit_key": "w1", "evidence": "[]", "context": None}
    store = open_store(settings.state_path, settings.case_store)
    try:
        store.apply_hits(store.begin_run(None, rs.digest), pd.DataFrame([hit], columns=HIT_COLUMNS), rs, 5)
    finally:
        store.close()
    return case_id(rule.id, "client_ip", "203.0.113.2")


def test_purge_keeps_the_days_an_open_case_and_a_legal_hold_hold(store_cfg: Path) -> None:
    assert stored_days(store_cfg) == DAYS
    cid = open_log_case(store_cfg, "2026-01-06")
    added = cli("logs", "hold", "add", "--from", "2026-01-07", "--to", "2026-01-07", "--reason", "京公网安〔2026〕7号",
                "--by", "legal", cfg=store_cfg)
    assert added.returncode == 0, added.stderr
    hold_id = added.stdout.split(":")[0].strip()
    listed = cli("logs", "hold", "list", cfg=store_cfg)
    assert hold_id in listed.stdout and "2026-01-07" in listed.stdout and "京公网安〔2026〕7号" in listed.stdout

    dry = cli("logs", "purge", "--dry-run", cfg=store_cfg)
    assert dry.returncode == 0, dry.stderr
    assert re.findall(r"would delete: (\S+)", dry.stdout) == ["2026-01-05", "2026-01-08"]
    assert cid in dry.stdout                                     # the held day names the case holding it
    assert stored_days(store_cfg) == DAYS                         # a dry run deletes nothing

    done = cli("logs", "purge", "--by", "ops", cfg=store_cfg)
    assert done.returncode == 0, done.stderr
    assert stored_days(store_cfg) == ["2026-01-06", "2026-01-07"]

    released = cli("logs", "hold", "release", hold_id, "--by", "legal", "--reason", "request answered", cfg=store_cfg)
    assert released.returncode == 0, released.stderr
    assert "no holds" in cli("logs", "hold", "list", cfg=store_cfg).stdout
    assert "request answered" in cli("logs", "hold", "list", "--all", cfg=store_cfg).stdout
    assert cli("logs", "purge", cfg=store_cfg).returncode == 0
    assert stored_days(store_cfg) == ["2026-01-06"]               # still held by the open case

    resolved = cli("cases", "resolve", cid, "--by", "alice", "--reason", "scanner blocked", cfg=store_cfg)
    assert resolved.returncode == 0, resolved.stderr
    assert cli("logs", "purge", cfg=store_cfg).returncode == 0
    assert stored_days(store_cfg) == []


def test_verify_names_a_flipped_byte_and_a_deleted_file(store_cfg: Path) -> None:
    ok = cli("logs", "verify", cfg=store_cfg)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    parts = {str(p.day): p for p in partitions_between(load_settings(str(store_cfg)), None, None)}
    flipped = Path(parts["2026-01-05"].files[0])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    bad = cli("logs", "verify", cfg=store_cfg)
    assert bad.returncode == 1 and flipped.name in bad.stdout and "Traceback" not in bad.stderr
    deleted = Path(parts["2026-01-07"].files[0])
    deleted.unlink()
    worse = cli("logs", "verify", cfg=store_cfg)
    assert worse.returncode == 1 and flipped.name in worse.stdout and deleted.name in worse.stdout
    assert "2 problem(s)" in worse.stderr


RULE_FILE = """\
rules:
  - id: objects.t.gambling
    title: Gambling promotion
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: high
    source: objects
    match:
      keywords: [百家乐]
      fields: [key, title]
    tests:
      - record: {{key: "promo/百家乐下载.apk"}}
        expect: match
      - record: {{key: "photos/{negative}.jpg"}}
        expect: no_match
"""


def test_rules_test_fails_on_a_failing_inline_test(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "gambling.yaml").write_text(RULE_FILE.format(negative="beach"), encoding="utf-8")
    good = cli("rules", "test", str(rules))
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith("2 passed, 0 failed")
    (rules / "gambling.yaml").write_text(RULE_FILE.format(negative="百家乐"), encoding="utf-8")
    bad = cli("rules", "test", str(rules))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "objects.t.gambling" in bad.stderr and "FAIL" in bad.stderr
    assert bad.stdout.strip().endswith("1 passed, 1 failed")
