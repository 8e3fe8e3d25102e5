"""The access-log generator: every file reads back with exactly the planted malformed lines
quarantined, the truth points at the lines it claims, and a seed fixes the output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

import pipeline.sources.logs  # noqa: F401  (registers every format)
from pipeline.generate.logs import generate_logs
from pipeline.sources.base import LOG_FORMATS, ReadResult


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen")
    return out, generate_logs(out, lines=3000, seed=11)


@pytest.fixture(scope="module")
def parsed(generated: tuple[Path, dict]) -> dict[str, ReadResult]:
    out, summary = generated
    return {f["path"]: LOG_FORMATS.get(f["format"])(str(out / f["path"]), domain=f["domain"])
            for f in summary["files"]}


def test_a_file_in_every_format_and_one_gzipped(generated: tuple[Path, dict]) -> None:
    out, summary = generated
    formats = {f["format"] for f in summary["files"]}
    assert formats == {"combined", "common", "qiniu-kodo", "tencent-cdn", "s3-access", "w3c", "jsonl"}
    gz = [f for f in summary["files"] if f["path"].endswith(".gz")]
    assert len(gz) == 1 and (out / gz[0]["path"]).read_bytes()[:2] == b"\x1f\x8b"


def test_counts_reconcile_with_planted_malformed_lines(generated: tuple[Path, dict],
                                                       parsed: dict[str, ReadResult]) -> None:
    out, summary = generated
    malformed = json.loads((out / "truth" / "logs_malformed.json").read_text())
    for f in summary["files"]:
        r = parsed[f["path"]]
        assert len(r.quarantine) == malformed[f["path"]] >= 5, f["path"]
        assert r.rows_read == f["lines"] - f["directives"], f["path"]
        reasons = " ".join(r.quarantine.reason)
        for kind in ("blank line", "invalid UTF-8", "line longer than", "bad timestamp"):
            assert kind in reasons, (f["path"], kind)


def _line(parsed: dict[str, ReadResult], file: str, line: int) -> pd.Series:
    rec = parsed[file].records
    return rec[rec.source_line == line].iloc[0]


def test_truth_points_at_the_planted_lines(parsed: dict[str, ReadResult], generated: tuple[Path, dict]) -> None:
    out, _ = generated
    truth = {t["id"]: t for t in map(json.loads, (out / "truth" / "logs.jsonl").read_text().splitlines())}
    scan = [_line(parsed, x["file"], x["line"]) for x in truth["scan-404"]["lines"]]
    assert len(scan) >= 60 and all(s.status == 404 and s.client_ip == "203.0.113.7" for s in scan)
    minutes = {s.ts.floor("min") for s in scan}
    assert len(minutes) == 1
    distinct = [_line(parsed, x["file"], x["line"]) for x in truth["scan-distinct"]["lines"]]
    assert len({d.path for d in distinct}) >= 150
    assert max(d.ts for d in distinct) - min(d.ts for d in distinct) < pd.Timedelta(minutes=10)
    assert len({d.ts.floor("10min") for d in distinct}) == 1
    heavy = [_line(parsed, x["file"], x["line"]) for x in truth["bandwidth"]["lines"]]
    assert sum(h.bytes_sent for h in heavy) > 50 * 10**9
    assert all(h.domain == truth["bandwidth"]["subject_id"] for h in heavy)
    injected = " ".join(str(_line(parsed, x["file"], x["line"]).uri)
                        for t in truth.values() if t["family"] == "attack_injection" for x in t["lines"])
    for payload in ("OR 1=1--", "UNION%20SELECT", "../../etc/passwd", "%3Cscript%3E", "${jndi:ldap://"):
        assert payload in injected
    formats = {x["file"].split("/")[1] for t in truth.values() for x in t["lines"]}
    assert len(formats) >= 6


def test_spike_is_ten_times_the_domains_hourly_baseline(parsed: dict[str, ReadResult],
                                                        generated: tuple[Path, dict]) -> None:
    out, _ = generated
    spike = next(t for t in map(json.loads, (out / "truth" / "logs.jsonl").read_text().splitlines())
                 if t["id"] == "spike")
    rec = pd.concat([r.records for r in parsed.values()])
    hourly = rec[rec.domain == spike["subject_id"]].ts.dt.floor("h").value_counts()
    assert hourly.max() >= 10 * hourly.drop(hourly.idxmax()).median()


def test_bindings_cover_every_domain(generated: tuple[Path, dict], parsed: dict[str, ReadResult]) -> None:
    out, _ = generated
    with open(out / "bindings.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"account_id", "resource_type", "resource", "verified_entity", "declared_filing"}
    bound = {r["resource"] for r in rows if r["resource_type"] == "domain"}
    seen = set(pd.concat([r.records.domain for r in parsed.values()]).dropna())
    assert seen <= bound and len(bound) >= 24
    assert {r["resource_type"] for r in rows} == {"domain", "bucket", "hub"}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_logs(tmp_path / "a", lines=400, seed=5)
    b = generate_logs(tmp_path / "b", lines=400, seed=5)
    c = generate_logs(tmp_path / "c", lines=400, seed=6)
    files = [f["path"] for f in a["files"]] + ["truth/logs.jsonl", "bindings.csv"]
    assert all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes() for p in files)
    assert any((tmp_path / "a" / p).read_bytes() != (tmp_path / "c" / p).read_bytes() for p in files)
    assert [f["lines"] for f in a["files"]] == [f["lines"] for f in b["files"]] != [f["lines"] for f in c["files"]]
