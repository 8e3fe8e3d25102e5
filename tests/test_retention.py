"""The retained store: partitions, manifests, idempotent and crash-safe ingest, verify, purge, holds.

Run as a program (``python tests/test_retention.py STATE FILE...``) it ingests FILEs, so the crash
tests can SIGKILL a real ingest in a child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from importlib import import_module
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.config import Settings, load_settings
from pipeline.errors import SourceError, StoreError
from pipeline.records import LOGS
from pipeline.retention import (LEGAL_FLOOR_DAYS, hold_add, hold_list, hold_release, ingest, partitions_between,
                                purge, verify)
from pipeline.retention import partition as partition_mod
import pipeline.sources.logs  # noqa: F401  (registers every format)

DAY0 = datetime(2026, 8, 1, tzinfo=timezone.utc)


FORMAT = "jsonl"


def make_settings(state: Path, **env: str) -> Settings:
    return load_settings(None, {"COMPLIANCE_STATE_DIR": str(state), **env})


def write_log(path: Path, n: int, *, start: datetime = DAY0, span: timedelta = timedelta(days=3), seed: int = 0,
              garbage: int = 0) -> Path:
    """``n`` requests spread over ``span`` from ``start``, plus ``garbage`` unparseable lines."""
    import random

    rng = random.Random(seed)
    bad_after = set(range(0, n, max(1, n // garbage))[:garbage]) if garbage else set()
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            ts = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
            fh.write(json.dumps({
                "ts": ts.isoformat(), "client_ip": f"10.{rng.randrange(4)}.{rng.randrange(8)}.{rng.randrange(256)}",
                "domain": rng.choice(["img.example.cn", "WWW.Example.cn"]), "method": "GET",
                "uri": f"/p/{i}?q=1", "status": 200, "bytes_sent": i,
            }) + "\n")
            if i in bad_after:
                fh.write("{truncated\n")
    return path


def stored(settings: Settings) -> pd.DataFrame:
    parts = partitions_between(settings, None, None)
    tables = [pq.read_table(f).to_pandas() for p in parts for f in p.files]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(LOGS))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "state")


def test_ingest_writes_sorted_day_partitions_with_manifests(settings: Settings, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_mod, "ROW_GROUP_ROWS", 500)
    log = write_log(tmp_path / "a.jsonl", 3000, garbage=3)
    report = ingest(settings, [(log, FORMAT)])
    assert (report.rows_read, report.rows_stored, report.rows_quarantined) == (3003, 3000, 3)
    assert report.reconciled and report.partitions_written == (date(2026, 8, 1), date(2026, 8, 2), date(2026, 8, 3))

    parts = partitions_between(settings, None, None)
    assert sum(p.rows for p in parts) == 3000
    for part in parts:
        manifest = part.manifest
        assert manifest["schema_version"] == 1 and manifest["day"] == part.day.isoformat()
        assert manifest["sources"] == [{"sha256": manifest["sources"][0]["sha256"], "file": str(log),
                                        "format": FORMAT, "rows": part.rows}]
        meta = pq.ParquetFile(part.files[0]).metadata
        assert meta.num_row_groups == -(-part.rows // 500)
        col = meta.schema.to_arrow_schema().get_field_index("ip_key")
        group = meta.row_group(0).column(col)
        assert group.compression == "ZSTD" and group.statistics.has_min_max
        df = pq.read_table(part.files[0]).to_pandas()
        keys = list(zip(df["ip_key"], df["ts"]))
        assert keys == sorted(keys)
        assert (df["ts"].dt.date == part.day).all()
        assert set(df["domain"]) == {"img.example.cn", "www.example.cn"}   # domains folded to lower case

    q = pq.read_table(settings.state_path / "logs" / "quarantine" / f"{parts[0].manifest['sources'][0]['sha256']}.parquet")
    assert q.num_rows == 3 and q.column("raw").to_pylist()[0] == b"{truncated"
    assert sorted(q.column("source_line").to_pylist())[0] == 2


def test_same_file_twice_adds_nothing(settings: Settings, tmp_path: Path) -> None:
    log = write_log(tmp_path / "a.jsonl", 500)
    ingest(settings, [(log, FORMAT)])
    before = {p.day: p.folder for p in partitions_between(settings, None, None)}
    copy = tmp_path / "copy-of-a.jsonl"
    copy.write_bytes(log.read_bytes())
    again = ingest(settings, [(log, FORMAT), (copy, FORMAT)])
    assert again.files_skipped == (str(log), str(copy))
    assert (again.rows_read, again.rows_stored, again.partitions_written) == (0, 0, ())
    assert {p.day: p.folder for p in partitions_between(settings, None, None)} == before
    assert len(stored(settings)) == 500


def _runs_sorted(part: object) -> dict[int, int]:
    """Rows of each run of a partition, after checking that each run's files are in store order."""
    rows: dict[int, int] = {}
    for entry in part.manifest["files"]:
        df = pq.read_table(part.folder / entry["name"]).to_pandas()
        assert list(zip(df["ip_key"], df["ts"])) == sorted(zip(df["ip_key"], df["ts"]))
        rows[entry["run"]] = rows.get(entry["run"], 0) + len(df)
    return rows


def test_a_new_file_for_an_existing_day_is_a_run_of_its_own_until_the_runs_are_merged(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = [write_log(tmp_path / f"{name}.jsonl", n, span=timedelta(hours=20), seed=seed)
            for name, n, seed in (("a", 400, 1), ("b", 300, 2), ("c", 200, 3))]
    ingest(settings, [(logs[0], FORMAT)])
    (first,) = partitions_between(settings, None, None)
    inode = first.files[0].stat().st_ino
    report = ingest(settings, [(logs[1], FORMAT)])
    assert report.partitions_written == (date(2026, 8, 1),)
    (part,) = partitions_between(settings, None, None)
    assert part.rows == 700 and sorted(s["rows"] for s in part.manifest["sources"]) == [300, 400]
    # the first file's rows are not rewritten: its data file is carried into the new version as it
    # was (the same file, linked), and the new rows are a sorted run of their own
    assert _runs_sorted(part) == {0: 400, 1: 300}
    assert part.manifest["files"][0]["sha256"] == first.manifest["files"][0]["sha256"]
    assert part.files[0].stat().st_ino == inode and not first.folder.exists()
    # the replaced version is gone; only the published one remains, and it verifies
    assert [p.name for p in part.folder.parent.iterdir() if p.name != "CURRENT"] == [part.folder.name]
    assert verify(settings).ok
    assert sorted(zip(stored(settings)["source_file"], stored(settings)["source_line"])) == _expected(logs[:2])

    # a day at MAX_RUNS runs is merged whole, with the new rows, into one run in store order
    monkeypatch.setattr(import_module("pipeline.retention.ingest"), "MAX_RUNS", 2)
    ingest(settings, [(logs[2], FORMAT)])
    (merged,) = partitions_between(settings, None, None)
    assert merged.rows == 900 and _runs_sorted(merged) == {0: 900} and len(merged.files) == 1
    assert sorted(s["rows"] for s in merged.manifest["sources"]) == [200, 300, 400]
    assert verify(settings).ok
    assert sorted(zip(stored(settings)["source_file"], stored(settings)["source_line"])) == _expected(logs)


def test_bindings_fill_missing_accounts(settings: Settings, tmp_path: Path) -> None:
    log = write_log(tmp_path / "a.jsonl", 200)
    ingest(settings, [(log, FORMAT)], bindings={"www.example.cn": "acct-7"})
    df = stored(settings)
    assert (df.loc[df["domain"] == "www.example.cn", "account_id"] == "acct-7").all()
    assert df.loc[df["domain"] == "img.example.cn", "account_id"].isna().all()


def test_verify_names_flipped_deleted_and_unexpected_files(settings: Settings, tmp_path: Path) -> None:
    ingest(settings, [(write_log(tmp_path / "a.jsonl", 900), FORMAT)])
    assert verify(settings).ok
    p1, p2, p3 = partitions_between(settings, None, None)
    data = bytearray(p1.files[0].read_bytes())
    data[len(data) // 2] ^= 0x01
    p1.files[0].write_bytes(bytes(data))
    p2.files[0].unlink()
    (p3.folder / "extra.parquet").write_bytes(b"PAR1")
    report = verify(settings)
    kinds = {(pr.kind, pr.path) for pr in report.problems}
    assert ("altered", str(p1.files[0])) in kinds
    assert ("missing", str(p2.files[0])) in kinds
    assert ("unexpected", str(p3.folder / "extra.parquet")) in kinds
    assert not report.ok


def test_verify_notices_a_whole_partition_removed(settings: Settings, tmp_path: Path) -> None:
    import shutil

    ingest(settings, [(write_log(tmp_path / "a.jsonl", 300), FORMAT)])
    part = partitions_between(settings, None, None)[1]
    shutil.rmtree(part.folder.parent)
    problems = verify(settings).problems
    assert [(p.kind, Path(p.path).name) for p in problems] == [("missing", part.day.isoformat())]


def _three_month_store(settings: Settings, tmp_path: Path) -> None:
    log = write_log(tmp_path / "old.jsonl", 400, start=DAY0, span=timedelta(days=40))
    ingest(settings, [(log, FORMAT)])


def test_purge_deletes_old_days_but_keeps_held_ones(settings: Settings, tmp_path: Path) -> None:
    _three_month_store(settings, tmp_path)
    days = [p.day for p in partitions_between(settings, None, None)]
    assert len(days) == 40
    hold_add(settings, "2026-08-05", "2026-08-06", "PSB request 2026-017", "legal")
    today = date(2026, 8, 1) + timedelta(days=180 + 20)      # cutoff 2026-08-21
    dry = purge(settings, today=today, dry_run=True, extra_holds=[date(2026, 8, 10)])
    assert dry.cutoff == date(2026, 8, 21) and len(dry.deleted) == 17
    assert len(partitions_between(settings, None, None)) == 40

    report = purge(settings, today=today, extra_holds=[date(2026, 8, 10)])
    assert report.kept_held == (date(2026, 8, 5), date(2026, 8, 6), date(2026, 8, 10))
    left = [p.day for p in partitions_between(settings, None, None)]
    assert left == [date(2026, 8, 5), date(2026, 8, 6), date(2026, 8, 10)] + [d for d in days if d >= report.cutoff]
    assert verify(settings).ok   # purged days are not reported as lost

    (hold,) = hold_list(settings)
    hold_release(settings, hold.id, "legal", "request closed")
    assert purge(settings, today=today, extra_holds=[date(2026, 8, 10)]).deleted == (date(2026, 8, 5), date(2026, 8, 6))
    assert hold_list(settings, include_released=False) == []


def test_purge_refuses_retention_below_the_legal_floor(tmp_path: Path) -> None:
    short = make_settings(tmp_path / "s", COMPLIANCE_RETENTION__DAYS="30")
    with pytest.raises(StoreError, match="below the legal floor") as err:
        purge(short)
    assert err.value.hint and "below_floor_reason" in err.value.hint
    allowed = make_settings(tmp_path / "s", COMPLIANCE_RETENTION__DAYS="60",
                            COMPLIANCE_RETENTION__BELOW_FLOOR_REASON="news service under 互联网信息服务管理办法 Art. 14")
    assert purge(allowed, today=date(2026, 8, 1)).deleted == ()
    assert LEGAL_FLOOR_DAYS == 180


def test_hold_errors_say_what_to_do(settings: Settings) -> None:
    with pytest.raises(StoreError, match="before it starts"):
        hold_add(settings, "2026-08-05", "2026-08-01", "x", "y")
    with pytest.raises(StoreError, match="not a day"):
        hold_add(settings, "5 Aug", "2026-08-01", "x", "y")
    with pytest.raises(StoreError, match="no hold"):
        hold_release(settings, "hold-9999", "y", "z")


# --- a killed ingest -------------------------------------------------------------------------

def _child(state: Path, files: list[Path], **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, str(state), *map(str, files)],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _expected(files: list[Path]) -> list[tuple[str, int]]:
    return sorted((str(f), n) for f in files for n in range(1, sum(1 for _ in open(f)) + 1))


@pytest.mark.slow
@pytest.mark.parametrize("step", ["quarantine-written", "file-written", "version-written", "published",
                                  "partition-published:2", "partition-published:4", "before-ledger"])
def test_ingest_killed_at_a_step_then_rerun_stores_every_row_once(tmp_path: Path, step: str) -> None:
    state = tmp_path / "state"
    settings = make_settings(state)
    ingest(settings, [(write_log(tmp_path / "seed.jsonl", 200, seed=9), FORMAT)])   # existing days get merged
    files = [write_log(tmp_path / "a.jsonl", 700, seed=1), write_log(tmp_path / "b.jsonl", 500, seed=2,
                                                                      start=DAY0 + timedelta(days=2))]
    child = _child(state, files, PIPELINE_CRASH_AT=step)
    assert child.wait(60) == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    visible = stored(settings)   # whatever is visible now is whole: each partition matches its manifest
    assert verify(settings).ok   # no partition is half-written; remains of the kill are only leftovers
    for part in partitions_between(settings, None, None):
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in part.files) == part.rows
    assert len(visible) >= 200

    rerun = _child(state, files)
    assert rerun.wait(60) == 0, rerun.stderr.read() if rerun.stderr else ""
    df = stored(settings)
    got = sorted(zip(df["source_file"], df["source_line"]))
    assert got == sorted(_expected(files) + _expected([tmp_path / "seed.jsonl"]))
    report = verify(settings)
    assert report.ok and report.leftovers == ()


@pytest.mark.slow
def test_ingest_killed_at_random_instants_then_rerun_stores_every_row_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    files = [write_log(tmp_path / f"{i}.jsonl", 3000, seed=i, start=DAY0 + timedelta(days=i)) for i in range(3)]
    for delay in (0.0, 0.05, 0.1, 0.2, 0.3):
        child = _child(state, files)
        assert child.stdout is not None and child.stdout.readline() == b"ingesting\n"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        for part in partitions_between(make_settings(state), None, None):
            assert sum(pq.ParquetFile(f).metadata.num_rows for f in part.files) == part.rows
    final = _child(state, files)
    assert final.wait(60) == 0
    df = stored(make_settings(state))
    assert sorted(zip(df["source_file"], df["source_line"])) == _expected(files)


if __name__ == "__main__":
    print("ingesting", flush=True)   # the parent times its kill from here, not from interpreter start
    report = ingest(make_settings(Path(sys.argv[1])), [(Path(p), FORMAT) for p in sys.argv[2:]])
    assert report.reconciled


# -- formats without a domain, files of which nothing parses ------------------------------------------

LOG_DATA = Path(__file__).parent / "data" / "logs"
NO_DOMAIN = [("combined", "combined_good.log"), ("common", "common.log"), ("qiniu-kodo", "qiniu.log")]


@pytest.mark.parametrize(("fmt", "name"), NO_DOMAIN)
def test_a_format_without_a_domain_is_refused_without_one_and_stored_with_it(settings: Settings, fmt: str,
                                                                             name: str) -> None:
    path = LOG_DATA / name
    for missing in (None, "  "):
        with pytest.raises(SourceError, match=f"format {fmt} carries no domain") as err:
            ingest(settings, [(path, fmt)], domain=missing)
        assert err.value.hint and "--domain" in err.value.hint and "domain:" in err.value.hint
        assert str(err.value.location) == str(path)
    assert not (settings.state_path / "logs" / "sources").exists()   # nothing recorded: it can still be ingested
    report = ingest(settings, [(path, fmt)], domain="WWW.Example.cn")
    assert report.files_read == 1 and report.rows_stored > 0
    domains = stored(settings)["domain"]
    assert domains.notna().all() and (domains == "www.example.cn").sum() >= report.rows_stored - 1  # one proxy line


def _config(tmp_path: Path, entries: list[dict[str, str]]) -> Path:
    import yaml

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state"), "sources": {"logs": entries}}),
                   encoding="utf-8")
    return cfg


def test_cli_ingest_of_a_config_entry_without_a_domain_ingests_nothing_and_says_to_add_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import pipeline.cli.logs  # noqa: F401  (attaches the logs group)
    from pipeline.cli import main

    good = {"path": str(write_log(tmp_path / "a.jsonl", 50)), "format": FORMAT}
    bad = {"path": str(LOG_DATA / "common.log"), "format": "common"}
    res = CliRunner().invoke(main, ["--config", str(_config(tmp_path, [good, bad])), "logs", "ingest"])
    assert res.exit_code == 2, res.output
    assert "sources.logs entry 2" in res.output and "add `domain:` to that entry" in res.output
    assert "internal error" not in res.output
    assert not (tmp_path / "state" / "logs" / "days").exists()      # the good entry before it was not ingested
    ok = CliRunner().invoke(main, ["--config", str(_config(tmp_path, [good, {**bad, "domain": "video.example.cn"}])),
                                   "logs", "ingest"])
    assert ok.exit_code == 0, ok.output
    res = CliRunner().invoke(main, ["--config", str(_config(tmp_path, [bad])), "logs", "ingest",
                                    str(LOG_DATA / "combined_good.log"), "--format", "combined"])
    assert res.exit_code == 2 and "give --domain" in res.output


def test_a_file_of_which_no_line_parses_is_warned_about_and_can_be_ingested_again(settings: Settings) -> None:
    from loguru import logger

    w3c = LOG_DATA / "w3c.log"
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        wrong = ingest(settings, [(w3c, "combined")], domain="cdn.example.cn")
    finally:
        logger.remove(sink)
    assert (wrong.rows_stored, wrong.rows_quarantined) == (0, wrong.rows_read)
    assert wrong.files_unparsed == ((str(w3c), "combined", wrong.rows_read),)
    assert len(warnings) == 1 and "no line of" in warnings[0] and "check --format" in warnings[0]
    assert not (settings.state_path / "logs" / "sources").exists()   # not marked as ingested
    right = ingest(settings, [(w3c, "w3c")])
    assert right.files_skipped == () and right.files_read == 1 and right.rows_stored > 0 and not right.files_unparsed
    (quarantine,) = (settings.state_path / "logs" / "quarantine").glob("*.parquet")
    assert pq.read_table(quarantine).num_rows == right.rows_quarantined  # the wrong format's lines are gone
    assert ingest(settings, [(w3c, "w3c")]).files_skipped == (str(w3c),)
    assert verify(settings).ok


def test_every_column_a_query_filters_on_has_row_group_statistics(settings: Settings, tmp_path: Path) -> None:
    """Statistics are written only for QUERIED_COLUMNS: a query filter on any other column could
    prune nothing, so every column the query's WHERE names (but the URL substring) must be listed."""
    import re

    from pipeline.query.request import build_request
    from pipeline.query.run import _where

    request = build_request(request_ref="R-1", authority="a", requested_by=None, ip=None, cidr="10.0.0.0/8",
                            domain="www.example.cn", url_contains="/x", account="acct-1",
                            start="2026-08-01T00:00:00Z", end="2026-08-02T00:00:00Z", fields=None)
    where, _ = _where(request)
    filtered = set(re.findall(r"\b([a-z_]+)\b\s*(?:=|>=|<|BETWEEN)", where)) | set(re.findall(r"contains\((\w+)", where))
    assert filtered - {"uri"} <= set(partition_mod.QUERIED_COLUMNS), where
    assert {"ip_key", "ts", "domain", "account_id"} <= filtered

    log = tmp_path / "a.jsonl"
    write_log(log, 2000)
    ingest(settings, [(log, FORMAT)], bindings={"www.example.cn": "acct-1", "img.example.cn": "acct-2"})
    for part in partitions_between(settings, None, None):
        meta = pq.ParquetFile(part.files[0]).metadata
        names = meta.schema.to_arrow_schema().names
        for g in range(meta.num_row_groups):
            for name in partition_mod.QUERIED_COLUMNS:
                stats = meta.row_group(g).column(names.index(name)).statistics
                assert stats is not None and stats.has_min_max, (part.day, g, name)
