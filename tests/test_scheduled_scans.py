"""Scans from cron: incremental, locked, exit codes, and a scan killed at any point then run again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cases.store import open_store
from pipeline.config import load_settings
from pipeline.generate.objects import generate_objects
from pipeline.errors import UnavailableError
from pipeline.incremental import scan_lock
from pipeline.runner import scan

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    out = tmp_path_factory.mktemp("objects")
    generate_objects(out, rows=1000, seed=5, rules_dir=root / "rules")
    return out


def fresh(data: Path, tmp_path: Path, name: str = "run") -> Path:
    """A copy of the generated data with its own state folder."""
    dest = tmp_path / name
    shutil.copytree(data, dest)
    return dest


def cli(cfg: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def case_keys(cfg: Path) -> dict[str, int]:
    settings = load_settings(str(cfg))
    store = open_store(settings.state_path, settings.case_store)
    try:
        df = store.list_cases()
        return dict(zip(df["case_id"], df["hit_count"]))
    finally:
        store.close()


def test_incremental_skips_unchanged_files_and_rescans_changed(data: Path, tmp_path: Path, dask_client) -> None:
    d = fresh(data, tmp_path)
    settings = load_settings(str(d / "config.yaml"))
    first = scan(settings, client=dask_client)
    assert first.files > 0 and first.files_skipped == 0
    second = scan(settings, client=dask_client)
    assert second.files == 0 and second.files_skipped == first.files and second.cases_new == 0
    csv = d / "objects" / "generic.csv"
    os.utime(csv)  # touched, same content: the content hash says unchanged
    assert scan(settings, client=dask_client).files == 0
    import pandas as pd

    listed = pd.read_csv(csv, dtype=str, on_bad_lines="skip", encoding_errors="replace")
    old_bucket = listed["bucket"].dropna().iloc[0]
    with csv.open("a", encoding="utf-8") as fh:
        fh.write('"acct-9","new-bucket","promo/赌场开业.png",10,"image/png","e9","","2026-11-02T00:00:00Z",'
                 '"u","STANDARD","enabled","","","",""\n')
        # put before the bucket's watermark: an incremental scan treats it as already scanned
        fh.write(f'"acct-9","{old_bucket}","promo/赌场旧图.png",10,"image/png","e8","","2020-01-01T00:00:00Z",'
                 '"u","STANDARD","enabled","","","",""\n')
    third = scan(settings, client=dask_client)
    assert third.files == 1 and third.cases_new == 1
    assert third.rows_already_scanned == third.rows_parsed - 1
    full = scan(settings, client=dask_client, full=True)
    assert full.files == first.files and full.rows_already_scanned == 0
    assert full.cases_new == 1 and full.cases_updated == 0  # --full evaluates every object: the old one too


def test_a_full_scan_records_the_content_digests_an_incremental_scan_compares(data: Path, tmp_path: Path,
                                                                                dask_client) -> None:
    """A full scan hashes its files beside the scan: what it records is each file's real digest, so a
    file touched afterwards with the same content is skipped by the next incremental scan."""
    import hashlib

    d = fresh(data, tmp_path)
    settings = load_settings(str(d / "config.yaml"))
    first = scan(settings, client=dask_client, full=True)
    store = open_store(settings.state_path, settings.case_store)
    try:
        recorded = store.scanned_files()
    finally:
        store.close()
    assert len(recorded) == first.files > 0
    for path, record in recorded.items():
        assert record["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest(), path
        os.utime(path)
    again = scan(settings, client=dask_client)
    assert again.files == 0 and again.files_skipped == first.files


def test_exit_codes(data: Path, tmp_path: Path) -> None:
    d = fresh(data, tmp_path)
    cfg = d / "config.yaml"
    res = cli(cfg, "scan", "--json", "--exit-code")
    assert res.returncode == 3, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["cases_new"] > 0
    res = cli(cfg, "scan", "--exit-code")
    assert res.returncode == 0, res.stderr
    rules = tmp_path / "broken"
    rules.mkdir()
    (rules / "bad.yaml").write_text("rules:\n  - id: x.y\n    title: t\n", encoding="utf-8")
    res = cli(cfg, "scan", env={"COMPLIANCE_RULES": str(rules)})
    assert res.returncode == 2
    assert "bad.yaml:2:5" in res.stderr and "missing 'clause'" in res.stderr and "Traceback" not in res.stderr


def test_overlapping_scan_is_refused(data: Path, tmp_path: Path) -> None:
    d = fresh(data, tmp_path)
    settings = load_settings(str(d / "config.yaml"))
    with scan_lock(settings.state_path):
        res = cli(d / "config.yaml", "scan")
    assert res.returncode == 75
    assert "another scan is running" in res.stderr and "Traceback" not in res.stderr
    assert case_keys(d / "config.yaml") == {}


def test_two_scans_started_together(data: Path, tmp_path: Path) -> None:
    d = fresh(data, tmp_path)
    cmd = [sys.executable, "-m", "pipeline.cli.__main__", "--config", str(d / "config.yaml"), "scan", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes in ([0, 0], [0, 75])
    reference = fresh(data, tmp_path, "reference")
    assert cli(reference / "config.yaml", "scan").returncode == 0
    assert case_keys(d / "config.yaml") == case_keys(reference / "config.yaml")


@pytest.mark.parametrize("crash_at", ["scan.before_apply", "store.fold:3"])
def test_scan_killed_then_rerun_equals_uninterrupted(data: Path, tmp_path: Path, crash_at: str) -> None:
    reference = fresh(data, tmp_path, "reference")
    assert cli(reference / "config.yaml", "scan").returncode == 0
    d = fresh(data, tmp_path, "killed")
    killed = cli(d / "config.yaml", "scan", env={"PIPELINE_CRASH_AT": crash_at})
    assert killed.returncode == -9
    assert case_keys(d / "config.yaml") == {}  # nothing half-applied
    again = cli(d / "config.yaml", "scan")
    assert again.returncode == 0, again.stderr
    assert case_keys(d / "config.yaml") == case_keys(reference / "config.yaml")
    runs = open_store(d / "state").runs()
    assert list(runs["status"]) == ["interrupted", "completed"]


def test_scan_into_each_case_store(data: Path, tmp_path: Path, store_url: str, dask_client) -> None:
    """The same scan gives the same cases on SQLite and PostgreSQL, and a re-scan adds none."""
    d = fresh(data, tmp_path)
    settings = load_settings(str(d / "config.yaml")).model_copy(update={"case_store": store_url})
    first = scan(settings, client=dask_client)
    again = scan(settings, client=dask_client, full=True)
    assert first.cases_new > 0 and again.cases_new == 0 and again.cases_updated == 0
    store = open_store(settings.state_path, store_url)
    truth = [json.loads(x) for x in (d / "truth" / "objects.jsonl").read_text(encoding="utf-8").splitlines()]
    want = {(r, t["subject_id"]) for t in truth for r in t["rule_ids"]}
    df = store.list_cases()
    assert set(zip(df["rule_id"], df["subject_id"])) == want
    store.close()


def test_scan_on_an_existing_cluster_by_address(data: Path, tmp_path: Path, dask_client,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """dask.scheduler / DASK_SCHEDULER_ADDRESS: the scan connects to a running scheduler instead of starting one."""
    d = fresh(data, tmp_path)
    address = dask_client.scheduler.address
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    settings = load_settings(str(d / "config.yaml"))
    assert settings.scheduler_address == address
    report = scan(settings)  # no client passed: the runner connects by address
    assert report.cases_new > 0 and report.rows_read == report.rows_parsed + report.rows_quarantined
    # workers running other code than the scan (another version installed there) are refused, named
    import pipeline.runner as runner

    monkeypatch.setattr(runner, "_CODE_DIGEST", "0" * 16)   # this process only: the workers hash their own
    with pytest.raises(UnavailableError) as refused:
        scan(load_settings(str(d / "config.yaml")), full=True)
    assert "2 of the 2 Dask workers" in str(refused.value) and "run other pipeline code" in str(refused.value)
    assert "install this version of the pipeline" in (refused.value.hint or "")
    monkeypatch.undo()
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError) as exc:
        scan(load_settings(str(d / "config.yaml")), full=True)
    assert "cannot reach the Dask scheduler" in str(exc.value)


def test_unreadable_source_stops_a_strict_scan_with_one_line(tmp_path: Path, root: Path) -> None:
    import gzip

    good = tmp_path / "objects.csv"
    good.write_text("bucket,key\nb,promo/赌场.png\n", encoding="utf-8")
    packed = gzip.compress(good.read_bytes() * 200)
    (tmp_path / "cut.csv.gz").write_bytes(packed[: len(packed) // 2])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"rules: {root / 'rules'}\nstate_dir: state\nsources:\n  objects:\n"
                   "    - {path: objects.csv, format: csv}\n"
                   "    - {path: cut.csv.gz, format: csv}\n", encoding="utf-8")
    res = cli(cfg, "scan", "--strict")
    assert res.returncode == 2
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "cut.csv.gz" in errors[0] and "truncated" in errors[0]
    assert "Traceback" not in res.stderr and "Compute Failed" not in res.stderr
    # without --strict the file is quarantined and the scan goes on (tests/test_bad_input.py)
    assert cli(cfg, "scan").returncode == 4


def test_scans_sharing_a_postgresql_store_exclude_each_other(data: Path, tmp_path: Path, postgres_url: str) -> None:
    """Two machines (here: two state folders) scanning into one PostgreSQL case store: one at a time."""
    from pipeline.cases.store import CaseStore
    from pipeline.incremental import SCAN_LOCK_KEY, ScanLocked

    other_machine = CaseStore(postgres_url)
    assert other_machine.db.try_lock(SCAN_LOCK_KEY)
    d = fresh(data, tmp_path)
    settings = load_settings(str(d / "config.yaml")).model_copy(update={"case_store": postgres_url})
    with pytest.raises(ScanLocked):
        scan(settings)
    other_machine.db.unlock(SCAN_LOCK_KEY)
    other_machine.close()


def test_auto_resolved_case_reopens_when_its_object_is_listed_again(data: Path, tmp_path: Path, dask_client,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """auto_resolve: a full scan that no longer finds an object resolves its case; the row restored (the same
    object version, so no hit key is new), the next full scan reopens it without counting the hit twice."""
    d = fresh(data, tmp_path)
    monkeypatch.setenv("COMPLIANCE_SCAN__AUTO_RESOLVE", "true")
    settings = load_settings(str(d / "config.yaml"))
    assert settings.scan.auto_resolve
    first = scan(settings, client=dask_client, full=True)
    store = open_store(settings.state_path, settings.case_store)
    try:
        cases = store.list_cases()
        csv = d / "objects" / "generic.csv"
        one = cases[(cases["hit_count"] == 1)
                    & cases["evidence"].str.contains(str(csv).replace("\\", "\\\\"), regex=False)].iloc[0]
        line = json.loads(one["evidence"])[0]["source_line"]
    finally:
        store.close()
    original = csv.read_bytes()
    lines = original.split(b"\n")
    csv.write_bytes(b"\n".join(lines[:line - 1] + lines[line:]))
    gone = scan(settings, client=dask_client, full=True)
    assert gone.cases_resolved >= 1
    csv.write_bytes(original)
    back = scan(settings, client=dask_client, full=True)
    assert back.cases_reopened == gone.cases_resolved and back.cases_new == 0
    assert back.cases_unchanged == first.cases_new - back.cases_reopened
    store = open_store(settings.state_path, settings.case_store)
    try:
        case = store.get_case(one["case_id"])
    finally:
        store.close()
    assert case["status"] == "open" and case["hit_count"] == 1
    assert [h["action"] for h in case["history"]][-2:] == ["auto_resolved", "reopened"]
