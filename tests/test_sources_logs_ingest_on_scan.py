"""`compliance scan` parses each log line once and ingests it into the retained store in the same
pass (``retention.ingest_on_scan``): every log case's evidence is a row `logs query` finds, the
store holds every scanned line, and scanning again adds nothing. Run through the real CLI, with a
real Dask worker process, over the sample's logs in every format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from pipeline.config import load_settings
from pipeline.retention import partitions_between
from pipeline.sources.logs_common import LOG_READERS
import pipeline.sources.logs  # noqa: F401  (registers every format)

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp: Path, **retention: object) -> Path:
    """The sample's log sources and bindings only (objects and filings would only slow the scan)."""
    sample = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    logs = [{**e, "path": str(ROOT / e["path"])} for e in sample["sources"]["logs"]]
    bindings = [{**e, "path": str(ROOT / e["path"])} for e in sample["sources"]["bindings"]]
    cfg = {"rules": str(ROOT / "rules"), "state_dir": str(tmp / "state"), "dask": {"workers": 1},
           "sources": {"logs": logs, "bindings": bindings}}
    if retention:
        cfg["retention"] = retention
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def _store_lines(cfg: Path) -> list[tuple[str, int]]:
    settings = load_settings(str(cfg))
    tables = [pq.read_table(f, columns=["source_file", "source_line"]) for p in partitions_between(settings, None, None)
              for f in p.files]
    return sorted((str(a), int(b)) for t in tables for a, b in zip(t["source_file"].to_pylist(),
                                                                   t["source_line"].to_pylist()))


def _parsed_lines(cfg: Path) -> list[tuple[str, int]]:
    """Every record line of the configured files, as their formats' readers parse them (with a time)."""
    lines: list[tuple[str, int]] = []
    for e in yaml.safe_load(cfg.read_text(encoding="utf-8"))["sources"]["logs"]:
        table = LOG_READERS.get(e["format"])(e["path"], domain=e.get("domain")).records
        ok = table.filter(table["ts"].is_valid())
        lines += zip(ok["source_file"].to_pylist(), ok["source_line"].to_pylist())
    return sorted(lines)


def test_scan_ingests_every_line_so_each_case_evidence_is_found_by_a_query(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = _cli(cfg, "scan", "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    logs = report["per_source"]["logs"]
    assert report["logs_stored"]["files"] == logs["files"]
    assert report["logs_stored"]["rows_stored"] == logs["rows_parsed"] > 4000
    lines = _store_lines(cfg)
    assert lines == _parsed_lines(cfg)           # every scanned line, once
    assert len(lines) == logs["rows_parsed"]

    cases = [json.loads(line) for line in _cli(cfg, "cases", "list", "--format", "json").stdout.splitlines()
             if line.strip()]
    by_ip = [c for c in cases if c["subject_type"] == "client_ip"]
    assert len(by_ip) >= 5
    for case in by_ip:
        evidence = case["evidence"][0]
        day = datetime.fromisoformat(evidence["event_time"]).date()
        out = tmp_path / f"export-{case['case_id']}"
        res = _cli(cfg, "logs", "query", "--request-ref", "京公网安〔2026〕123号", "--authority", "某市公安局网安支队",
                   "--ip", case["subject_id"], "--from", f"{day}T00:00:00Z",
                   "--to", f"{day + timedelta(days=1)}T00:00:00Z", "--out", str(out), "--by", "test")
        assert res.returncode == 0, res.stderr
        found = pq.read_table(out / "result.parquet").to_pylist()
        assert any(r["source_file"] == evidence["source_file"] and r["source_line"] == evidence["source_line"]
                   and r["client_ip"] == case["subject_id"] for r in found), (case["case_id"], evidence)

    again = _cli(cfg, "scan", "--full", "--json")      # every file read again: nothing stored twice
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["logs_stored"] == {"files": 0, "rows_stored": 0, "files_already_ingested": 9,
                                                       "partitions_written": 0}
    assert _store_lines(cfg) == lines
    ingest = _cli(cfg, "logs", "ingest")                 # nor by an ingest after the scan
    assert ingest.returncode == 0, ingest.stderr
    assert "0 file(s) read, 9 already ingested" in ingest.stdout
    assert _store_lines(cfg) == lines


def test_a_scan_with_ingest_on_scan_off_leaves_the_store_alone(tmp_path: Path) -> None:
    cfg = _config(tmp_path, ingest_on_scan=False)
    res = _cli(cfg, "scan", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["logs_stored"] == {}
    assert not (tmp_path / "state" / "logs" / "days").exists()
    # `logs ingest` then stores the same lines the scan would have
    assert _cli(cfg, "logs", "ingest").returncode == 0
    assert _store_lines(cfg) == _parsed_lines(cfg)


def test_a_scan_killed_while_publishing_then_rerun_stores_every_line_once(tmp_path: Path) -> None:
    from pipeline.retention import verify

    cfg = _config(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PIPELINE_CRASH_AT": "partition-published:2"}
    killed = subprocess.run([sys.executable, "-m", "pipeline.cli.__main__", "--config", str(cfg), "scan"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert killed.returncode == -9, killed.stderr
    settings = load_settings(str(cfg))
    assert verify(settings).ok and len(partitions_between(settings, None, None)) == 2   # two days whole, one not yet
    rerun = _cli(cfg, "scan", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert _store_lines(cfg) == _parsed_lines(cfg)          # the days published before the kill are not doubled
    assert verify(settings).ok
