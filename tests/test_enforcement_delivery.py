"""Delivery through the outbox to a real local endpoint: exactly once (counted by idempotency key
at the server) across 500s, hangs, dropped connections, outages and a dispatcher killed mid-batch;
4xx fails without retry; signatures verify; no secret sends nothing; undo follows dismissal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from enforcement_server import (  # noqa: E402
    SECRET, SECRET_ENV, EnforcementServer, free_port, seed_cases, write_config,
)

from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.config import Settings, load_settings  # noqa: E402
from pipeline.enforcement import EnforcementError  # noqa: E402
from pipeline.enforcement.apply import apply_plan, undo_case  # noqa: E402
from pipeline.enforcement.dispatch import DispatchReport, dispatch  # noqa: E402
from pipeline.enforcement.plan import make_plan, save_plan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def malware(n: int) -> list[tuple[str, str, str, str]]:
    # auto mode, light: one disable_object per case, spread over accounts to stay under the caps
    return [("objects.malware", "object", f"b{i}/virus{i}.exe", f"acc{i}") for i in range(n)]


@pytest.fixture
def env(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    server = EnforcementServer(SECRET).start()
    store = CaseStore(store_url)
    cfg = write_config(tmp_path, store_url, server.url)
    yield {"server": server, "store": store, "tmp": tmp_path, "cfg": cfg, "settings": load_settings(cfg)}
    store.close()
    server.stop()


def queue_plan(env: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """Plan and apply without delivering; returns the queued action ids in the order the outbox
    hands them out (read from the outbox itself, not assumed)."""
    settings = settings or env["settings"]
    plan = make_plan(env["store"], settings, by="alice")
    out = env["tmp"] / f"{plan.plan_id}.json"
    save_plan(env["store"], plan, out)
    apply_plan(env["store"], settings, out, by="bob")
    rows = env["store"].db.all("SELECT action_id FROM actions WHERE plan_id=? ORDER BY created_at, action_id",
                               (plan.plan_id,))
    return [r["action_id"] for r in rows]


def action_of(env: dict[str, Any], case_id: str) -> str:
    """The enforcing action queued for a case."""
    rows = env["store"].db.all("SELECT action_id FROM actions WHERE case_id=? AND kind='enforce'", (case_id,))
    assert len(rows) == 1, rows
    return str(rows[0]["action_id"])


def outbox(env: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["action_id"]: r for r in env["store"].db.all("SELECT * FROM actions")}


def until_drained(env: dict[str, Any], settings: Settings | None = None, rounds: int = 6) -> list[DispatchReport]:
    reports = []
    for _ in range(rounds):
        reports.append(dispatch(env["store"], settings or env["settings"]))
        if not reports[-1].stopped:
            break
    return reports


def test_each_action_delivered_once_across_500_close_and_hang(env: dict[str, Any], tmp_path: Path) -> None:
    # The timeout is what this test is about: 2 s, while a hang lasts until the client gives up.
    settings = load_settings(write_config(tmp_path, env["store"].url, env["server"].url, timeout_s=2.0))
    seed_cases(env["store"], malware(3))
    ids = queue_plan(env, settings)
    # first action: 500, connection dropped, then applied but the answer arrives after the timeout
    env["server"].script = ["error", "close", "hang", "error"]
    reports = until_drained(env, settings)
    assert reports[0].stopped and "unavailable" in reports[0].stopped      # retries ran out on the first
    assert reports[-1].stopped is None
    assert {r["status"] for r in outbox(env).values()} == {"delivered"}
    assert dict(env["server"].applied) == dict.fromkeys(ids, 1)
    first = ids[0]
    assert env["server"].requests[first] == 5                             # 3 in round one, 500, then 409
    assert outbox(env)[first]["response_status"] == 409 and outbox(env)[first]["attempts"] == 5
    assert all(env["server"].requests[a] == 1 for a in ids[1:])


def test_outage_loses_nothing_and_sends_once_when_back(env: dict[str, Any], tmp_path: Path) -> None:
    port = free_port()
    down = load_settings(write_config(tmp_path, env["store"].url, f"http://127.0.0.1:{port}/actions"))
    seed_cases(env["store"], malware(3))
    ids = queue_plan(env, down)
    report = dispatch(env["store"], down)
    assert report.stopped and report.n("pending") == 1 and len(report.outcomes) == 1
    assert {r["status"] for r in outbox(env).values()} == {"pending"}
    server = EnforcementServer(SECRET, port=port).start()
    try:
        report = dispatch(env["store"], down)
        assert report.n("delivered") == 3 and report.stopped is None
        assert dict(server.applied) == dict.fromkeys(ids, 1) and dict(server.requests) == dict.fromkeys(ids, 1)
        assert dispatch(env["store"], down).outcomes == ()                  # nothing is sent twice
    finally:
        server.stop()


def test_4xx_fails_without_retry_and_409_counts_as_delivered(env: dict[str, Any]) -> None:
    seed_cases(env["store"], malware(3))
    ids = queue_plan(env)
    env["server"].script = ["reject", "conflict"]
    report = dispatch(env["store"], env["settings"])
    rows = outbox(env)
    assert rows[ids[0]]["status"] == "failed" and rows[ids[0]]["response_status"] == 400
    assert "unknown target" in rows[ids[0]]["response_body"] and env["server"].requests[ids[0]] == 1
    assert rows[ids[1]]["status"] == "delivered" and rows[ids[1]]["response_status"] == 409
    assert rows[ids[2]]["status"] == "delivered" and report.n("failed") == 1


def test_signature_is_hmac_of_the_body_and_a_wrong_secret_is_rejected(env: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cases(env["store"], malware(2))
    ids = queue_plan(env)
    monkeypatch.setenv(SECRET_ENV, "not-the-shared-secret")
    dispatch(env["store"], env["settings"], limit=1)
    assert env["server"].bad_signatures == 1 and outbox(env)[ids[0]]["response_status"] == 401
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    dispatch(env["store"], env["settings"])
    assert env["server"].bad_signatures == 1 and env["server"].applied[ids[1]] == 1
    body = env["server"].bodies[ids[1]]
    assert body["action"] == "disable_object" and body["target"] == outbox(env)[ids[1]]["target"]
    assert body["action_id"] == ids[1] and body["clause"] == "§3.1.3.5.4" and "deadline" in body


def test_no_secret_is_a_clear_error_and_sends_nothing(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cases(env["store"], malware(2))
    queue_plan(env)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(EnforcementError) as exc:
        dispatch(env["store"], env["settings"])
    assert SECRET_ENV in str(exc.value) and "nothing was sent" in str(exc.value)
    assert sum(env["server"].requests.values()) == 0
    assert {(r["status"], r["attempts"]) for r in outbox(env).values()} == {("pending", 0)}


def test_dismissal_after_delivery_sends_the_undo(env: dict[str, Any]) -> None:
    cids = seed_cases(env["store"], malware(2))
    queue_plan(env)
    dispatch(env["store"], env["settings"])
    first = action_of(env, cids[0])
    env["store"].transition(cids[0], "dismissed", by="erin", reason="a security researcher's sample")
    report = dispatch(env["store"], env["settings"])
    assert [(o.action, o.target, o.status) for o in report.outcomes] == [("enable_object", "b0/virus0.exe",
                                                                          "delivered")]
    undo = next(b for b in env["server"].bodies.values() if b["action"] == "enable_object")
    assert undo["undo_of"] == first and env["server"].applied[undo["action_id"]] == 1
    assert dispatch(env["store"], env["settings"]).outcomes == ()        # the undo is owed once
    # an appeal on the other case: dismissed and undone in one command
    assert undo_case(env["store"], env["settings"], cids[1], by="frank", reason="appeal granted") == 1
    dispatch(env["store"], env["settings"])
    assert env["store"].get_case(cids[1])["status"] == "dismissed"
    assert sorted(b["action"] for b in env["server"].bodies.values()) == ["disable_object", "disable_object",
                                                                          "enable_object", "enable_object"]


def test_undo_before_delivery_cancels_instead_of_sending_both(env: dict[str, Any]) -> None:
    cids = seed_cases(env["store"], malware(1))
    queue_plan(env)
    undo_case(env["store"], env["settings"], cids[0], by="frank", reason="wrong rule")
    assert {r["kind"]: r["status"] for r in outbox(env).values()} == {"enforce": "cancelled", "undo": "cancelled"}
    assert dispatch(env["store"], env["settings"]).outcomes == ()
    assert sum(env["server"].requests.values()) == 0


@pytest.mark.slow
def test_dispatcher_killed_mid_batch_and_restarted(env: dict[str, Any]) -> None:
    seed_cases(env["store"], malware(4))
    ids = queue_plan(env)
    cmd = [sys.executable, "-m", "pipeline.cli.enforce", "--config", env["cfg"], "enforce", "dispatch"]
    base = {**os.environ, SECRET_ENV: SECRET.decode()}
    killed = subprocess.run(cmd, cwd=ROOT, env={**base, "PIPELINE_CRASH_AT": "enforce.after_send:2"},
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    # the second action reached the endpoint, but the kill came before it was marked delivered
    assert sorted(env["server"].applied) == sorted(ids[:2])
    assert outbox(env)[ids[1]]["status"] == "sending"
    # restarted while the dead dispatcher's lease (2 × timeout + 1 s = 21 s here) still holds: the
    # rest goes out, the leased action waits
    early = subprocess.run(cmd, cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert early.returncode == 0, early.stderr
    assert {a: r["status"] for a, r in outbox(env).items()} == {**dict.fromkeys(ids, "delivered"), ids[1]: "sending"}
    assert env["server"].requests[ids[1]] == 1
    # the lease runs out (moved into the past rather than waited for), and a restart re-sends it
    with env["store"].transaction() as db:
        db.execute("UPDATE actions SET not_before=? WHERE action_id=?", ("2000-01-01T00:00:00+00:00", ids[1]))
    done = subprocess.run(cmd, cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {r["status"] for r in outbox(env).values()} == {"delivered"}
    assert dict(env["server"].applied) == dict.fromkeys(ids, 1)
    assert [env["server"].requests[a] for a in ids] == [1, 2, 1, 1]      # re-sent once, with the same key
