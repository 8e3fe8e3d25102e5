"""The fault suite, through the CLI as a user runs it: tampered partitions refused, a full disk
during a query, a hold and a plan leaving the audit chain valid and the effect absent, every worker
killed mid-scan, SIGTERM and Ctrl-C mid-scan, a lost scheduler and database, a forbidden state folder.

A full disk is a small tmpfs where this machine lets tests mount one (root), else an ENOSPC
injected at the writes (``PIPELINE_FAIL_AT``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.config import load_settings
from pipeline.query import verify_audit

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample"
LOG = SAMPLE / "logs" / "jsonl" / "access.jsonl"
DAY = "2026-11-01"
QUERY = ["logs", "query", "--request-ref", "R-1", "--authority", "MPS", "--cidr", "0.0.0.0/1",
         "--from", DAY, "--to", "2026-11-02", "--by", "carol"]

pytestmark = pytest.mark.faults


def cli(state: Path, *args: str, env: dict[str, str] | None = None, config: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "PIPELINE_"))}
    base["COMPLIANCE_STATE_DIR"] = str(state)
    base["COMPLIANCE_RETENTION__TIMEZONE"] = "UTC"      # the days below are UTC days
    base["COMPLIANCE_SCAN__NOISY_RULE_SHARE"] = "1.0"   # the sample's dense violations are no noise here
    cmd = [sys.executable, "-m", "pipeline.cli.__main__", *(["--config", str(config)] if config else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**base, **(env or {})}, timeout=timeout)


def one_line(res: subprocess.CompletedProcess[str]) -> str:
    """The error a user sees: exactly one line, no traceback, no logging dump."""
    lines = [line for line in res.stderr.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    return lines[0]


def audit(state: Path) -> list[dict[str, object]]:
    path = state / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def chain_ok(state: Path) -> None:
    res = cli(state, "audit", "verify")
    assert res.returncode == 0 and "chain intact" in res.stdout, res.stdout + res.stderr


def data_file(state: Path, day: str = DAY) -> Path:
    (path,) = (state / "logs" / "days" / day).glob("v-*/part-*.parquet")
    return path


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("store") / "state"
    res = cli(state, "logs", "ingest", str(LOG), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    return state


# -- 1. queries read only verified data ------------------------------------------------------------------

def test_bit_flips_and_row_deletions_are_refused_and_audited(ingested: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(ingested, state)
    ok = cli(state, *QUERY, "--out", str(tmp_path / "first"))
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads((tmp_path / "first" / "manifest.json").read_text(encoding="utf-8"))
    verified = manifest["verification"]["files"]
    assert [f["day"] for f in verified] == [DAY] and verified[0]["checked"] == "hashed"
    path = data_file(state)
    original = path.read_bytes()
    rng = random.Random(16)
    for n, bit in enumerate(rng.sample(range(len(original) * 8), 4)):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(flipped))
        before = len(audit(state))
        out = tmp_path / f"flip{n}"
        res = cli(state, *QUERY, "--out", str(out))
        assert res.returncode == 2, (bit, res.stdout, res.stderr)
        line = one_line(res)
        assert f"partition {DAY}" in line and path.name in line and "compliance logs verify" in line
        assert not (out / "manifest.json").exists() and not (out / "result.csv").exists()
        entries = audit(state)
        assert len(entries) == before + 1 and entries[-1]["action"] == "query.failed"
    # a file rewritten without 100 rows; then its manifest's hash forged to match: the row count gives it away
    path.write_bytes(original)
    table = pq.read_table(path)
    pq.write_table(table.slice(100), path)
    res = cli(state, *QUERY, "--out", str(tmp_path / "deleted"))
    assert res.returncode == 2 and "was altered" in one_line(res)
    mpath = path.parent / "manifest.json"
    m = json.loads(mpath.read_text(encoding="utf-8"))
    from pipeline.files import sha256_file

    m["files"][0]["sha256"] = sha256_file(path)
    mpath.write_text(json.dumps(m), encoding="utf-8")
    res = cli(state, *QUERY, "--out", str(tmp_path / "forged"))
    assert res.returncode == 2
    assert f"holds {table.num_rows - 100} rows, its manifest says {table.num_rows}" in one_line(res)
    assert not (tmp_path / "forged").exists()
    chain_ok(state)


def test_a_verification_is_reused_until_the_file_changes(ingested: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(ingested, state)
    from pipeline.config import load_settings
    from pipeline.query import run_query

    settings = load_settings(None, {"COMPLIANCE_STATE_DIR": str(state)})
    ask = dict(request_ref="R-2", authority="CAC", cidr="0.0.0.0/1", start=DAY, end="2026-11-02")
    first = run_query(settings, **ask, out_dir=tmp_path / "a")
    second = run_query(settings, **ask, out_dir=tmp_path / "b")
    assert first.manifest["verification"]["files"][0]["checked"] == "hashed"
    assert second.manifest["verification"]["files"][0]["checked"] == "cached"
    path = data_file(state)
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: the ctime still moved
    from pipeline.errors import StoreError

    with pytest.raises(StoreError, match="was altered"):
        run_query(settings, **ask, out_dir=tmp_path / "c")


# -- 2 and 3. a full disk: the chain stays valid, the effect is absent -----------------------------------

@contextlib.contextmanager
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 6 MiB tmpfs, or None where mounting is not allowed (the injected ENOSPC is used then)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path, leave: int) -> Path:
    """Fill the file system, then give back ``leave`` bytes."""
    filler = mnt / "filler"
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 512)
                fh.flush()
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def plans(state: Path) -> int:
    con = sqlite3.connect(state / "cases.db")
    try:
        return int(con.execute("SELECT COUNT(*) FROM plans").fetchone()[0])
    finally:
        con.close()


def holds(state: Path) -> int:
    path = state / "logs" / "holds.json"
    return len(json.loads(path.read_text(encoding="utf-8"))["holds"]) if path.exists() else 0


COMMANDS = {
    "query": lambda state, n: [*QUERY, "--out", str(state.parent / f"export{n}")],
    "hold": lambda state, n: ["logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", f"R-{n}", "--by", "ann"],
    "plan": lambda state, n: ["enforce", "plan", "--out", str(state.parent / f"plan{n}.json"), "--by", "ann"],
}


def effect(state: Path, kind: str, n: int) -> bool:
    if kind == "query":
        return (state.parent / f"export{n}" / "manifest.json").exists()
    if kind == "hold":
        return any(h["reason"] == f"R-{n}" for h in json.loads((state / "logs" / "holds.json").read_text())["holds"]) \
            if (state / "logs" / "holds.json").exists() else False
    return (state.parent / f"plan{n}.json").exists()


def test_full_disk_during_query_hold_and_plan(ingested: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path) as mnt:
        base = mnt if mnt is not None else tmp_path
        state = base / "state"
        shutil.copytree(ingested, state)
        assert cli(state, "cases", "list").returncode == 0  # the case store exists before the disk fills
        assert cli(state, "logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", "R-0", "--by", "ann").returncode == 0
        n = 0
        seen_codes: dict[str, set[int]] = {}
        # free space from none to a few pages: each command fails at a different write, or succeeds
        points = [0, 6000, 40000] if mnt is not None else ["audit.write", "audit.head", "holds.write",
                                                                          "query.export", "plan.write"]
        for point in points:
            for kind in COMMANDS:
                n += 1
                before = audit(state)
                if mnt is not None:
                    filler = fill(mnt, int(point))
                    res = cli(state, *COMMANDS[kind](state, n))
                    filler.unlink()
                else:
                    res = cli(state, *COMMANDS[kind](state, n), env={"PIPELINE_FAIL_AT": str(point)})
                seen_codes.setdefault(kind, set()).add(res.returncode)
                after = audit(state)
                if res.returncode == 0:   # both: the effect and its entry
                    assert effect(state, kind, n) and len(after) == len(before) + 1, (kind, point)
                else:                     # neither, and the failure named as a full disk
                    assert res.returncode == 74, (kind, point, res.stderr)
                    line = one_line(res)
                    assert "disk full" in line, line
                    assert not effect(state, kind, n), (kind, point)
                    assert [e["action"] for e in after[len(before):]] in ([], ["query.failed"]), (kind, point)
                    assert not list(state.parent.glob(f"export{n}/*")) and not (state.parent / f"plan{n}.json").exists()
                assert verify_audit(load_settings(None, {"COMPLIANCE_STATE_DIR": str(state)})).ok, (kind, point)
        assert all(74 in codes for codes in seen_codes.values()), seen_codes
        # space again: every audited command works, and the chain holds every entry
        for kind in COMMANDS:
            n += 1
            res = cli(state, *COMMANDS[kind](state, n))
            assert res.returncode == 0 and effect(state, kind, n), res.stderr
        chain_ok(state)
        assert holds(state) == 1 + sum(1 for e in audit(state) if e["action"] == "hold.add") - 1
        assert plans(state) == sum(1 for e in audit(state) if e["action"] == "enforce.plan")


def test_sqlite_full_disk_surfaces_its_own_error(ingested: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path) as mnt:
        if mnt is None:
            pytest.skip("needs a small file system to fill (root and tmpfs)")
        state = mnt / "state"
        shutil.copytree(ingested, state)
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"rules: {ROOT / 'rules'}\nsources:\n  logs:\n  - path: {LOG}\n    format: jsonl\n",
                       encoding="utf-8")
        assert cli(state, "cases", "list", config=cfg).returncode == 0
        filler = fill(mnt, 0)
        res = cli(state, "scan", config=cfg, timeout=300)
        filler.unlink()
        assert res.returncode == 74, res.stderr
        line = one_line(res)
        # SQLite's own words: SQLITE_FULL, or SQLITE_IOERR when the full disk hits its WAL index first
        assert "database or disk is full" in line or "disk I/O error" in line, line
        assert "cannot rollback" not in res.stderr


@pytest.mark.cluster
def test_an_apply_that_cannot_be_audited_is_not_applied(tmp_path: Path) -> None:
    state = tmp_path / "state"
    caps = {"COMPLIANCE_ENFORCEMENT__CAPS__PER_RUN": "1000", "COMPLIANCE_ENFORCEMENT__CAPS__PER_ACCOUNT": "1000"}
    cfg = scan_config(tmp_path)
    assert cli(state, "scan", config=cfg, timeout=300).returncode == 0
    plan = tmp_path / "p.json"
    assert cli(state, "enforce", "plan", "--out", str(plan), "--by", "ann", env=caps, config=cfg).returncode == 0
    before = cases(state)
    for point in ("audit.write", "audit.head"):
        res = cli(state, "enforce", "apply", str(plan), "--no-dispatch", "--by", "bob", config=cfg,
                  env={**caps, "PIPELINE_FAIL_AT": point})
        assert res.returncode == 74 and "disk full" in one_line(res), (point, res.stderr)
        assert cases(state) == before and [e["action"] for e in audit(state)] == ["enforce.plan"]
        con = sqlite3.connect(state / "cases.db")
        try:
            assert con.execute("SELECT status FROM plans").fetchall() == [("planned",)]
            assert con.execute("SELECT COUNT(*) FROM actions").fetchone() == (0,)
        finally:
            con.close()
        chain_ok(state)
    res = cli(state, "enforce", "apply", str(plan), "--no-dispatch", "--by", "bob", env=caps, config=cfg)
    assert res.returncode == 0, res.stderr
    assert [e["action"] for e in audit(state)] == ["enforce.plan", "enforce.apply"]
    assert {status for _, status in cases(state).values()} == {"open", "confirmed"}
    chain_ok(state)


# -- 3. crash points: the documented order, and its recovery ---------------------------------------------

def test_kills_between_an_entry_and_its_effect(ingested: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(ingested, state)
    hold = ["logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", "R-5", "--by", "ann"]
    killed = cli(state, *hold, env={"PIPELINE_CRASH_AT": "hold.before_publish"})
    assert killed.returncode == -signal.SIGKILL
    listed = cli(state, "logs", "hold", "list")    # the entry was written: the staged hold is published
    assert "R-5" in listed.stdout
    chain_ok(state)
    killed = cli(state, *hold[:-4], "--reason", "R-6", "--by", "ann", env={"PIPELINE_CRASH_AT": "audit.before_write"})
    assert killed.returncode == -signal.SIGKILL
    assert "R-6" not in cli(state, "logs", "hold", "list").stdout   # no entry: the staged hold is dropped
    killed = cli(state, *hold[:-4], "--reason", "R-7", "--by", "ann", env={"PIPELINE_CRASH_AT": "audit.before_head"})
    assert killed.returncode == -signal.SIGKILL
    chain_ok(state)                      # the head lags one entry: no break, the next append catches it up
    assert "R-7" in cli(state, "logs", "hold", "list").stdout
    assert cli(state, "audit", "repair").stdout.startswith(f"{len(audit(state)) - 1} intact")
    killed = cli(state, "enforce", "plan", "--out", str(tmp_path / "p.json"), env={"PIPELINE_CRASH_AT": "plan.before_commit"})
    assert killed.returncode == -signal.SIGKILL
    assert plans(state) == 0 and audit(state)[-1]["action"] == "enforce.plan"  # documented: entry, no effect
    chain_ok(state)
    assert cli(state, "enforce", "plan", "--out", str(tmp_path / "p.json")).returncode == 0
    chain_ok(state)


def test_a_torn_tail_is_repaired_and_recorded(ingested: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(ingested, state)
    assert cli(state, "logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", "R-8", "--by", "ann").returncode == 0
    intact = (state / "audit" / "audit.jsonl").read_bytes()
    with open(state / "audit" / "audit.jsonl", "ab") as fh:   # what an older version left on a full disk
        fh.write(b'{"action":"hold.add","actor":"ann","det')
    assert cli(state, "audit", "verify").returncode == 1
    res = cli(state, "logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", "R-9", "--by", "ann")
    assert res.returncode == 2 and "compliance audit repair" in one_line(res) and holds(state) == 1
    res = cli(state, "audit", "repair", "--by", "ops")
    assert res.returncode == 0 and "cut back a torn tail of 39 byte(s)" in res.stdout
    assert (state / "audit" / "audit.jsonl").read_bytes().startswith(intact)
    last = audit(state)[-1]
    assert last["action"] == "audit.repair" and last["details"]["cut_text"].startswith('{"action":"hold.add"')
    chain_ok(state)
    assert cli(state, "logs", "hold", "add", "--from", DAY, "--to", DAY, "--reason", "R-9", "--by", "ann").returncode == 0
    assert cli(state, "audit", "repair").stdout.endswith("nothing to repair\n")
    lines = (state / "audit" / "audit.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = lines[0].replace('"R-8"', '"R-88"')
    (state / "audit" / "audit.jsonl").write_text("".join(lines), encoding="utf-8")
    res = cli(state, "audit", "repair")
    assert res.returncode == 2 and "restore the audit log from backup" in one_line(res)


# -- 4 and 6. scans: every worker killed, SIGTERM, Ctrl-C --------------------------------------------------

def scan_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"rules: {ROOT / 'rules'}\nsources:\n  logs:\n  - path: {LOG}\n    format: jsonl\n"
        f"  objects:\n  - path: {SAMPLE / 'objects' / 'generic.csv'}\n    format: csv\n"
        f"  - path: {SAMPLE / 'objects' / 'generic.jsonl'}\n    format: jsonl\n", encoding="utf-8")
    return cfg


def cases(state: Path) -> dict[str, tuple[int, str]]:
    con = sqlite3.connect(state / "cases.db")
    try:
        return {r[0]: (r[1], r[2]) for r in con.execute("SELECT case_id, hit_count, status FROM cases")}
    finally:
        con.close()


def runs_and_quarantine(state: Path) -> tuple[list[str], int]:
    con = sqlite3.connect(state / "cases.db")
    try:
        return ([r[0] for r in con.execute("SELECT status FROM runs ORDER BY started_at")],
                int(con.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]))
    finally:
        con.close()


@pytest.mark.cluster
def test_a_scan_survives_losing_every_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import Client, LocalCluster

    cfg = scan_config(tmp_path)
    monkeypatch.setenv("PIPELINE_PAUSE_AT", "scan.task:1.5")   # the workers' tasks take a while
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        env = {"COMPLIANCE_DASK__SCHEDULER": cluster.scheduler_address}
        reference = cli(tmp_path / "reference", "scan", config=cfg, env=env, timeout=300)
        assert reference.returncode == 0, reference.stderr
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan"],
                                cwd=ROOT, env={**os.environ, **env, "COMPLIANCE_STATE_DIR": str(tmp_path / "killed")},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not any(any(str(k).startswith("scan-context") for k in keys) for keys in client.has_what().values()):
            assert time.monotonic() < deadline and proc.poll() is None, "the scan never started"
            time.sleep(0.05)
        time.sleep(0.3)   # tasks are under way
        for pid in client.run(os.getpid).values():   # every worker, the context's holders with them
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "FutureCancelledError" not in err
    assert cases(tmp_path / "killed") == cases(tmp_path / "reference") != {}


@pytest.mark.cluster
@pytest.mark.parametrize(("signum", "group", "code", "after", "full"), [
    (signal.SIGTERM, False, 143, 2.5, False), (signal.SIGINT, True, 130, 2.5, False),
    (signal.SIGINT, True, 130, 0.2, False),   # while the cluster starts: held until it has, then it is closed
    # --full starts its cluster in a thread of its own while the rules load: a Ctrl-C then reaches
    # workers still importing (their stderr goes to workers.log) and may land in a callback
    # where Python drops its exception (the scan still stops, as interrupted)
    (signal.SIGINT, True, 130, 0.2, True), (signal.SIGINT, True, 130, 0.6, True),
    (signal.SIGTERM, False, 143, 0.4, True),
])
def test_a_signal_mid_scan_stops_it_cleanly(tmp_path: Path, signum: int, group: bool, code: int, after: float,
                                            full: bool) -> None:
    interrupt_scan(tmp_path, signum, group, code, after, full)


@pytest.mark.cluster
@pytest.mark.parametrize(("signum", "group", "code", "full"), [
    (signal.SIGINT, True, 130, False), (signal.SIGINT, True, 130, True), (signal.SIGTERM, False, 143, True),
])
def test_a_signal_stops_a_scan_on_its_one_worker_thread(tmp_path: Path, signum: int, group: bool, code: int,
                                                        full: bool) -> None:
    """One worker runs as a thread of the scan: no process is started, and a signal stops the scan
    while its task is under way (closing the cluster does not wait for the task)."""
    def no_children(pid: int) -> None:
        assert Path(f"/proc/{pid}/task/{pid}/children").read_text().split() == []

    interrupt_scan(tmp_path, signum, group, code, 2.5, full, {"COMPLIANCE_DASK__WORKERS": "1"}, no_children)


def interrupt_scan(tmp_path: Path, signum: int, group: bool, code: int, after: float, full: bool,
                   env_extra: dict[str, str] | None = None, check: Any = None) -> None:
    """Send ``signum`` ``after`` seconds into a scan (each of its tasks paused 4 s) and assert that it
    stops as interrupted, one line on stderr, nothing committed, no process left behind.
    ``check(pid)`` runs on the scan's process just before the signal."""
    cfg = scan_config(tmp_path)
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "PIPELINE_"))}
    command = ["scan", "--full"] if full else ["scan"]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), *command], cwd=ROOT,
                            env={**env, "COMPLIANCE_STATE_DIR": str(state), "PIPELINE_PAUSE_AT": "scan.task:4",
                                 **(env_extra or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()       # "scan R…: N rules, M files": the run is recorded
    assert first.startswith("INFO") and "scan R" in first, first
    time.sleep(after)   # on a loaded machine the cluster may still be starting even after 2.5 s
    if check is not None:
        check(proc.pid)
    if group:
        os.killpg(proc.pid, signum)      # Ctrl-C in a terminal: the whole process group
    else:
        proc.send_signal(signum)
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == code, rest
    lines = [line for line in rest.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"interrupted ({signal.Signals(signum).name})"), rest
    statuses, quarantined = runs_and_quarantine(state)
    assert statuses == ["interrupted"] and quarantined == 0 and cases(state) == {}
    time.sleep(1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 0)
        pytest.fail("worker processes outlived the scan")


# -- 5. other failures named as what they are -------------------------------------------------------------

def test_lost_scheduler_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bindir = Path(sys.executable).parent
    scheduler = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bindir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PIPELINE_PAUSE_AT": "scan.task:3"})
    try:
        cfg = scan_config(tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "PIPELINE_"))}
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, "COMPLIANCE_STATE_DIR": str(tmp_path / "state"),
                                     "COMPLIANCE_DASK__SCHEDULER": f"tcp://127.0.0.1:{port}"})
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "scan R" in first, first + proc.stderr.read()
        from distributed import Client

        # the scan's client connects after that line: kill the scheduler once its tasks are under way
        # (before, the scan cannot reach it at all, a failure of its own, named differently)
        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as watcher:
            deadline = time.monotonic() + 60
            while not any(watcher.processing().values()):
                assert time.monotonic() < deadline and proc.poll() is None, "the scan's tasks never started"
                time.sleep(0.1)
        scheduler.kill()
        out, rest = proc.communicate(timeout=120)
    finally:
        scheduler.kill()
        worker.kill()
        worker.wait(30)
    assert proc.returncode == 69, rest
    lines = [line for line in rest.splitlines() if line.strip()]
    assert len(lines) == 1 and "lost the connection to the Dask scheduler" in lines[0], rest
    assert "pipeline.log" in lines[0] and "Traceback" in (tmp_path / "state" / "pipeline.log").read_text()
    assert runs_and_quarantine(tmp_path / "state") == (["failed"], 0)


def test_unreachable_and_lost_database_are_named(tmp_path: Path, postgres_url: str) -> None:
    state = tmp_path / "state"
    res = cli(state, "cases", "list", env={"COMPLIANCE_CASE_STORE": "postgresql://postgres@127.0.0.1:1/test"})
    assert res.returncode == 69 and "cannot connect to the case store" in one_line(res)
    cfg = scan_config(tmp_path)
    name = f"fault-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "PIPELINE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan"], cwd=ROOT,
                            env={**env, "COMPLIANCE_STATE_DIR": str(state), "COMPLIANCE_CASE_STORE": url,
                                 "PIPELINE_PAUSE_AT": "scan.task:3"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert "scan R" in proc.stderr.readline()
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,))
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 69, rest
    # the scan's own warnings (rules skipped for want of filings, noisy rules) come before it; the error is one line
    line = one_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, rest))
    assert "PostgreSQL" in line and "connection" in line and "pipeline.log" in line, rest
    assert "Traceback" in (state / "pipeline.log").read_text(encoding="utf-8")


def test_postgresql_entry_and_effect_share_one_transaction(ingested: Path, tmp_path: Path, postgres_url: str) -> None:
    state = tmp_path / "state"
    env = {"COMPLIANCE_CASE_STORE": postgres_url}
    res = cli(state, "enforce", "plan", "--out", str(tmp_path / "p.json"), env={**env, "PIPELINE_FAIL_AT": "audit.write"})
    assert res.returncode == 74 and "disk full" in one_line(res)
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM plans").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM audit_log").fetchone() == (0,)
    assert not (tmp_path / "p.json").exists()
    assert cli(state, "enforce", "plan", "--out", str(tmp_path / "p.json"), env=env).returncode == 0
    res = cli(state, "audit", "verify", env=env)
    assert res.returncode == 0 and "1 entries" in res.stdout


def test_a_state_folder_this_user_may_not_write_is_named(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run without the right to override file modes")
    folder = tmp_path / "theirs"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    folder.chmod(0o700)
    tmp_path.chmod(0o755)
    drop = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "PIPELINE_"))}
    res = subprocess.run([*drop, sys.executable, "-m", "pipeline.cli.__main__", "logs", "hold", "list"], cwd=ROOT,
                         capture_output=True, text=True, env={**env, "COMPLIANCE_STATE_DIR": str(folder / "state")})
    assert res.returncode == 77, res.stderr
    line = one_line(res)
    assert "permission denied" in line and str(folder / "state") in line
    fallback = line.rsplit("the traceback is in ", 1)[1].rstrip(")")
    assert Path(fallback).is_file() and "PermissionError" in Path(fallback).read_text()
    Path(fallback).unlink()
    assert errno.EACCES  # the errno the message names
