"""Enforcement plans: what the policy plans per mode, caps, and apply's checks (hash, case states)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from enforcement_server import SECRET, SECRET_ENV, EnforcementServer, seed_cases, write_config  # noqa: E402

from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.enforcement import EnforcementError  # noqa: E402
from pipeline.enforcement.apply import apply_plan  # noqa: E402
from pipeline.enforcement.dispatch import dispatch  # noqa: E402
from pipeline.enforcement.plan import make_plan, save_plan  # noqa: E402

MIXED = [
    ("objects.malware", "object", "b1/virus.exe", "acc1"),
    ("objects.gambling", "object", "b1/casino.png", "acc1"),
    ("objects.superstition", "object", "b2/fortune.txt", "acc2"),
    ("logs.scanning", "client_ip", "203.0.113.9", ""),
    ("streams.porn", "stream", "hub1/room7", "acc3"),
]


@pytest.fixture
def env(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    server = EnforcementServer(SECRET).start()
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    store = CaseStore(store_url)
    yield {"server": server, "store": store, "tmp": tmp_path, "url": store_url,
           "settings": load_settings(write_config(tmp_path, store_url, server.url))}
    store.close()
    server.stop()


def plan_file(env: dict[str, Any], now: datetime | None = None, name: str = "plan.json", **caps: int) -> Path:
    settings = env["settings"]
    if caps:
        settings = load_settings(write_config(env["tmp"], env["url"], env["server"].url, caps=caps))
    plan = make_plan(env["store"], settings, by="alice", now=now)
    out = env["tmp"] / name
    save_plan(env["store"], plan, out)
    return out


def test_plan_follows_policy_per_mode_and_sends_nothing(env: dict[str, Any]) -> None:
    ids = seed_cases(env["store"], MIXED)
    out = plan_file(env)
    data = json.loads(out.read_text(encoding="utf-8"))
    got = sorted((a["case_id"], a["kind"], a["action"], a["target"]) for a in data["actions"])
    assert got == sorted([(ids[0], "enforce", "disable_object", "b1/virus.exe"),
                          (ids[2], "notice", "send_notice", "acc2"),
                          (ids[4], "enforce", "disable_stream", "hub1/room7")])
    assert {w["case_id"] for w in data["waiting"]} == {ids[1]}          # review: not confirmed yet
    assert [s["case_id"] for s in data["skipped"]] == [ids[3]]          # a client IP is no customer's fault
    assert data["cases"][ids[0]]["status"] == "open"
    notice = next(a for a in data["actions"] if a["kind"] == "notice")
    assert "违规信息处理通知" in notice["notice"] and "3.1.3.10" in notice["notice"]
    assert sum(env["server"].requests.values()) == 0
    assert env["store"].db.scalar("SELECT COUNT(*) FROM actions") == 0
    assert {c: env["store"].get_case(c)["status"] for c in ids} == dict.fromkeys(ids, "open")


def test_apply_delivers_once_and_enforces_then_replanning_is_empty(env: dict[str, Any]) -> None:
    ids = seed_cases(env["store"], MIXED)
    out = plan_file(env)
    done = apply_plan(env["store"], env["settings"], out, by="bob")
    assert set(done.enforced_cases) == {ids[0], ids[4]} and done.queued == 3
    report = dispatch(env["store"], env["settings"])
    assert report.n("delivered") == 3 and report.stopped is None
    assert sorted(env["server"].applied.values()) == [1, 1, 1]
    assert env["store"].get_case(ids[0])["status"] == "enforced"
    assert env["store"].get_case(ids[0])["history"][-1]["actor"] == "bob"
    with pytest.raises(EnforcementError, match="already applied"):
        apply_plan(env["store"], env["settings"], out, by="bob")
    again = make_plan(env["store"], env["settings"], by="alice")
    assert again.actions == ()


def test_review_case_is_planned_once_confirmed(env: dict[str, Any]) -> None:
    ids = seed_cases(env["store"], MIXED[1:2])
    assert make_plan(env["store"], env["settings"], by="a").actions == ()
    env["store"].transition(ids[0], "confirmed", by="carol", reason="casino ad")
    plan = make_plan(env["store"], env["settings"], by="a")
    assert [(a.action, a.target, a.mode) for a in plan.actions] == [("disable_object", "b1/casino.png", "review")]


def test_caps_refuse_the_whole_plan(env: dict[str, Any]) -> None:
    seed_cases(env["store"], [("objects.malware", "object", f"b{i}/m{i}.exe", "acc1") for i in range(3)])
    with pytest.raises(EnforcementError) as exc:
        plan_file(env, per_run=2, per_account=5)
    assert "3 enforcement actions exceed the cap per run of 2" in str(exc.value)
    with pytest.raises(EnforcementError) as exc:
        plan_file(env, per_run=10, per_account=2)
    assert "3 enforcement actions against account acc1 exceed the cap per account of 2" in str(exc.value)
    assert not (env["tmp"] / "plan.json").exists()
    assert env["store"].db.scalar("SELECT COUNT(*) FROM plans") == 0
    plan_file(env, per_run=3, per_account=3)


def test_apply_refuses_a_plan_whose_cases_changed(env: dict[str, Any]) -> None:
    ids = seed_cases(env["store"], MIXED)
    out = plan_file(env)
    env["store"].transition(ids[4], "dismissed", by="dave", reason="a documentary, not porn")
    with pytest.raises(EnforcementError) as exc:
        apply_plan(env["store"], env["settings"], out, by="bob")
    assert f"{ids[4]} (open → dismissed)" in str(exc.value) and ids[0] not in str(exc.value)
    assert env["store"].db.scalar("SELECT COUNT(*) FROM actions") == 0
    assert env["store"].get_case(ids[0])["status"] == "open"
    # same status, but it moved and came back: still a change
    out2 = plan_file(env, name="plan2.json")
    env["store"].transition(ids[0], "confirmed", by="x", reason="y")
    env["store"].transition(ids[0], "open", by="x", reason="z")
    with pytest.raises(EnforcementError, match="changed since"):
        apply_plan(env["store"], env["settings"], out2, by="bob")
    assert sum(env["server"].requests.values()) == 0


def test_apply_refuses_an_edited_plan(env: dict[str, Any]) -> None:
    seed_cases(env["store"], MIXED)
    out = plan_file(env)
    data = json.loads(out.read_text(encoding="utf-8"))
    data["actions"][0]["target"] = "b1/someone-elses-file"
    out.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EnforcementError, match="changed after it was made"):
        apply_plan(env["store"], env["settings"], out, by="bob")
    assert env["store"].db.scalar("SELECT COUNT(*) FROM actions") == 0


def test_notice_then_enforcement_after_the_deadline(env: dict[str, Any]) -> None:
    ids = seed_cases(env["store"], MIXED[2:3])
    t0 = datetime.now(timezone.utc)
    apply_plan(env["store"], env["settings"], plan_file(env, now=t0), by="bob")
    assert dispatch(env["store"], env["settings"]).n("delivered") == 1
    sent = next(iter(env["server"].bodies.values()))
    assert sent["action"] == "send_notice" and sent["deadline"].startswith((t0 + timedelta(days=3)).date().isoformat())
    assert env["store"].get_case(ids[0])["status"] == "open"
    early = make_plan(env["store"], env["settings"], by="a", now=t0 + timedelta(days=1))
    assert early.actions == () and "notice sent" in early.waiting[0]["reason"]
    late = plan_file(env, now=t0 + timedelta(days=4), name="late.json")
    apply_plan(env["store"], env["settings"], late, by="bob")
    dispatch(env["store"], env["settings"])
    assert sorted(b["action"] for b in env["server"].bodies.values()) == ["disable_object", "send_notice"]
    assert env["store"].get_case(ids[0])["status"] == "enforced"
