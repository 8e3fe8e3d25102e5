"""The `compliance enforce` commands end to end, as a reviewer uses them, and the penalty table."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from enforcement_server import SECRET, SECRET_ENV, EnforcementServer, seed_cases, write_config  # noqa: E402

import pipeline.cli.enforce  # noqa: E402,F401  (attaches the group)
from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.enforcement.policy import PENALTIES, UNDO, decide, intended_actions  # noqa: E402


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    server = EnforcementServer(SECRET).start()
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    store = CaseStore(url)
    cfg = write_config(tmp_path, url, server.url)
    yield {"server": server, "store": store, "cfg": cfg, "tmp": tmp_path}
    store.close()
    server.stop()


def run(env: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(main, ["--config", env["cfg"], *args], catch_exceptions=False)


def test_reviewer_plans_applies_sees_delivery_and_dismisses(env: dict[str, Any]) -> None:
    cids = seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1"),
                                     ("objects.gambling", "object", "b1/casino.png", "acc1")])
    assert run(env, "cases", "confirm", cids[1], "--by", "alice", "--reason", "casino ad").exit_code == 0
    out = env["tmp"] / "plan.json"
    res = run(env, "enforce", "plan", "--out", str(out))
    assert res.exit_code == 0 and "nothing sent" in res.output and "disable_object" in res.output
    assert sum(env["server"].requests.values()) == 0
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    assert res.exit_code == 0, res.output
    assert "2 action(s) queued" in res.output and sum(line.startswith("delivered ") for line in res.output.splitlines()) == 2
    res = run(env, "enforce", "status", "--json")
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert {(r["action"], r["status"]) for r in rows} == {("disable_object", "delivered")}
    assert sorted(env["server"].applied.values()) == [1, 1]
    # a dismissal sends the undo straight away
    res = run(env, "cases", "dismiss", cids[1], "--by", "carol", "--reason", "licensed lottery")
    assert res.exit_code == 0, res.output
    assert [b["target"] for b in env["server"].bodies.values() if b["action"] == "enable_object"] == ["b1/casino.png"]
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    assert res.exit_code == 2 and "already applied" in res.output


def test_missing_secret_is_one_line_and_exit_2(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cids = seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1")])
    out = env["tmp"] / "plan.json"
    run(env, "enforce", "plan", "--out", str(out))
    monkeypatch.delenv(SECRET_ENV)
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    assert res.exit_code == 2
    assert f"error: the signing secret is not set: environment variable {SECRET_ENV}" in res.output
    assert "nothing was applied" in res.output and "queued" not in res.output.split("(")[0]
    assert sum(env["server"].requests.values()) == 0
    # refused before anything changed: no action queued, the case still open, the plan not applied
    db = env["store"].db
    assert db.scalar("SELECT COUNT(*) FROM actions") == 0
    assert db.scalar("SELECT status FROM cases WHERE case_id=?", (cids[0],)) == "open"
    assert db.scalar("SELECT status FROM plans") == "planned"
    # so the same plan goes through once the secret is set
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    assert res.exit_code == 0, res.output
    assert "1 action(s) queued" in res.output and sum(env["server"].applied.values()) == 1


def test_undo_without_secret_dismisses_nothing(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    cids = seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1")])
    out = env["tmp"] / "plan.json"
    run(env, "enforce", "plan", "--out", str(out))
    assert run(env, "enforce", "apply", str(out), "--by", "bob").exit_code == 0
    monkeypatch.delenv(SECRET_ENV)
    res = run(env, "enforce", "undo", cids[0], "--by", "carol", "--reason", "appeal granted")
    assert res.exit_code == 2 and "nothing was dismissed or queued" in res.output
    assert env["store"].db.scalar("SELECT status FROM cases WHERE case_id=?", (cids[0],)) == "enforced"
    assert env["store"].db.scalar("SELECT COUNT(*) FROM actions WHERE kind='undo'") == 0


def test_apply_without_endpoint_queues_and_says_so(env: dict[str, Any]) -> None:
    env["cfg"] = write_config(env["tmp"], f"sqlite:///{env['tmp'] / 'cases.db'}", None)
    cids = seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1")])
    out = env["tmp"] / "plan.json"
    run(env, "enforce", "plan", "--out", str(out))
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    # the plan is applied: the user is told the actions are queued, not that anything was refused
    assert res.exit_code == 3, res.output
    assert "error" not in res.output and "refused" not in res.output
    assert "1 action(s) queued" in res.output
    assert "no enforcement endpoint is configured" in res.output and "compliance enforce dispatch" in res.output
    assert env["store"].db.scalar("SELECT status FROM actions") == "pending"
    # nothing acknowledged the action yet: the case is confirmed, not enforced
    assert env["store"].db.scalar("SELECT status FROM cases WHERE case_id=?", (cids[0],)) == "confirmed"


def test_endpoint_down_exits_3_and_keeps_the_action(env: dict[str, Any], tmp_path: Path) -> None:
    env["server"].stop()
    seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1")])
    out = env["tmp"] / "plan.json"
    run(env, "enforce", "plan", "--out", str(out))
    res = run(env, "enforce", "apply", str(out), "--by", "bob")
    assert res.exit_code == 3 and "stay queued" in res.output
    assert env["store"].db.scalar("SELECT status FROM actions") == "pending"


def test_notice_is_chinese_and_cites_the_clauses(env: dict[str, Any]) -> None:
    cids = seed_cases(env["store"], [("objects.superstition", "object", "b2/fortune.txt", "acc2")])
    res = run(env, "enforce", "notice", cids[0], "--deadline", "2026-11-04T02:00:00+00:00")
    assert res.exit_code == 0, res.output
    text = res.output
    assert text.startswith("违规信息处理通知")
    for part in ("第 3.1.3.5.4 条", "3.1.3.10", "7.3.2", "2026年11月04日 10:00（北京时间）", "b2/fortune.txt",
                 "澳门赌场", "封建迷信", "封禁资源", "acc2", cids[0]):
        assert part in text, part


def test_no_notice_for_a_client_ip_case(env: dict[str, Any]) -> None:
    # a client IP attacking a customer's site: the customer (whose account the case carries) is the victim
    cids = seed_cases(env["store"], [("logs.scanning", "client_ip", "192.0.2.13", "acc1")])
    res = run(env, "enforce", "notice", cids[0])
    assert res.exit_code == 2
    assert "违规信息处理通知" not in res.output and "Traceback" not in res.output
    assert f"error: case {cids[0]} is not held against a customer" in res.output and "client IP" in res.output


def test_notice_after_delivery_says_the_resource_is_blocked(env: dict[str, Any]) -> None:
    cids = seed_cases(env["store"], [("objects.malware", "object", "b1/virus.exe", "acc1")])
    before = run(env, "enforce", "notice", cids[0])
    assert before.exit_code == 0 and "逾期未整改的，我们将对 b1/virus.exe 采取以下措施：封禁资源。" in before.output
    out = env["tmp"] / "plan.json"
    run(env, "enforce", "plan", "--out", str(out))
    assert run(env, "enforce", "apply", str(out), "--by", "bob").exit_code == 0
    res = run(env, "enforce", "notice", cids[0])
    assert res.exit_code == 0, res.output
    assert "逾期未整改" not in res.output and "我们将对" not in res.output
    delivered = env["store"].db.scalar("SELECT delivered_at FROM actions WHERE case_id=?", (cids[0],))
    from pipeline.enforcement.notices import _local
    assert f"我们已于 {_local(delivered)} 对 b1/virus.exe 采取以下措施：封禁资源，该措施已经生效。" in res.output


def test_penalty_table_and_undo_cover_every_action(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "sqlite:///x.db", None))
    actions = {a for levels in PENALTIES.values() for a in levels.values()}
    assert actions == set(UNDO)
    assert decide(settings.enforcement, "attack_malware", "critical").mode == "auto"
    assert decide(settings.enforcement, "contraband_gambling", "high").mode == "review"
    assert decide(settings.enforcement, "abuse_bandwidth", "low").level == "medium"

    def case(stype: str, sid: str, account: str | None = "acc1") -> dict[str, Any]:
        return {"subject_type": stype, "subject_id": sid, "account_id": account, "evidence": "[]"}

    def targets(c: dict[str, Any], level: str) -> list[tuple[str, str]]:
        return [(i.action, i.target) for i in intended_actions(c, level)[0]]

    assert targets(case("object", "b1/k.png"), "medium") == [("freeze_bucket", "b1")]
    assert targets(case("stream", "hub1/room"), "light") == [("disable_stream", "hub1/room")]
    assert targets(case("stream", "hub1/room"), "medium") == [("freeze_hub", "hub1")]
    assert targets(case("domain", "a.example.cn"), "medium") == [("freeze_domain", "a.example.cn")]
    assert targets(case("object", "b1/k.png"), "severe") == [("freeze_account", "acc1")]
    assert targets(case("account", "acc9", None), "light") == [("freeze_account", "acc9")]
    assert intended_actions(case("client_ip", "203.0.113.9"), "severe")[0] == []
    assert "keeps no full URL" in str(intended_actions(case("domain", "a.example.cn"), "light")[1])
    with_url = {**case("domain", "a.example.cn"), "evidence": [{"uri": "/casino/index.html", "matches": []}]}
    assert targets(with_url, "light") == [("block_url", "a.example.cn/casino/index.html")]
    assert "account" in str(intended_actions(case("object", "b1/k", None), "severe")[1])
