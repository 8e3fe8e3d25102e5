"""The object-metadata generator: every format written, deterministic, ground truth consistent with the files."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import load_settings
from pipeline.errors import PipelineError
from pipeline.generate.objects import CANONICAL, PLANTS, generate_objects, main

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
ROWS = 1500


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("objects")
    return out, generate_objects(out, rows=ROWS, seed=5, rules_dir=RULES)


def _read_all(out: Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Every file named in the config → its parsed rows (bucket, key, ...); and bad lines per file."""
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    rows: dict[str, list[dict[str, Any]]] = {}
    bad: Counter[str] = Counter()
    for entry in config["sources"]["objects"]:
        path = out / entry["path"]
        files = sorted(path.glob("*.csv.gz")) if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(out).as_posix()
            rows[rel] = list(_parse(f, entry, rel, bad))
    return rows, dict(bad)


def _parse(f: Path, entry: dict[str, str], rel: str, bad: Counter[str]) -> Any:
    fmt = entry["format"]
    if fmt == "parquet":
        yield from pq.read_table(f).to_pylist()
    elif fmt == "jsonl":
        yield from (json.loads(ln) for ln in f.read_text(encoding="utf-8").splitlines())
    elif fmt == "qiniu-json":
        for ln in f.read_text(encoding="utf-8").splitlines():
            rec = json.loads(ln)
            yield {"bucket": entry["bucket"], "key": rec["key"], "size": rec["fsize"], "etag": rec["hash"],
                   "md5": rec["md5"], "put_time_100ns": rec["putTime"]}
    elif fmt == "s3-inventory":
        text = gzip.decompress(f.read_bytes()).decode("utf-8")
        for row in csv.reader(io.StringIO(text)):
            yield {"bucket": row[0], "key": unquote_plus(row[1]), "size": int(row[5]), "etag": row[7]}
    else:  # csv (with header) and qshell (tab-separated): malformed lines are counted, not parsed
        lines = f.read_bytes().splitlines()[1 if fmt == "csv" else 0:]
        width = len(CANONICAL) if fmt == "csv" else 7
        for raw in lines:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad[rel] += 1
                continue
            fields = next(csv.reader([text])) if fmt == "csv" else text.split("\t")
            size = fields[3 if fmt == "csv" else 1] if len(fields) == width else ""
            if not size.isdigit():
                bad[rel] += 1
                continue
            if fmt == "csv":
                yield dict(zip(CANONICAL, fields))
            else:
                yield {"bucket": entry["bucket"], "key": fields[0], "size": int(fields[1]), "etag": fields[2]}


def _truth(out: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (out / "truth" / "objects.jsonl").read_text(encoding="utf-8").splitlines()]


def _rule_ids() -> set[str]:
    ids = set()
    for f in (RULES / "objects").glob("*.yaml"):
        ids |= {r["id"] for r in yaml.safe_load(f.read_text(encoding="utf-8"))["rules"]}
    return ids


def test_every_format_is_written(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    formats = {e["format"] for e in yaml.safe_load((out / "config.yaml").read_text())["sources"]["objects"]}
    assert formats == {"csv", "jsonl", "parquet", "qiniu-json", "qshell", "s3-inventory"}
    for name in ("generic.csv", "generic.jsonl", "generic.parquet"):
        assert (out / "objects" / name).stat().st_size > 0
    assert len(list((out / "objects" / "qiniu").glob("*.json"))) == 2
    assert len(list((out / "objects" / "qshell").glob("*.txt"))) == 2
    rows, _ = _read_all(out)
    assert sum(len(r) for r in rows.values()) == ROWS == summary["rows"]
    assert {k: len(v) for k, v in rows.items()} == summary["files"]
    assert all(rows.values()), "a file without rows"
    assert list(pq.read_table(out / "objects" / "generic.parquet").column_names) == list(CANONICAL)


def test_s3_inventory_manifest_describes_its_data_files(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    manifests = sorted((out / "objects" / "s3").glob("*/inv/2026-11-01T00-00Z/manifest.json"))
    assert len(manifests) == 2
    for manifest_path in manifests:
        manifest = json.loads(manifest_path.read_text())
        assert manifest["fileSchema"].split(", ")[:8] == [
            "Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag"]
        assert manifest["sourceBucket"] == manifest_path.parts[-4]
        listed = {Path(f["key"]).name: f for f in manifest["files"]}
        data = sorted((manifest_path.parent / "data").glob("*.csv.gz"))
        assert {d.name for d in data} == set(listed)
        for d in data:
            body = d.read_bytes()
            assert listed[d.name]["MD5checksum"] == hashlib.md5(body).hexdigest()
            assert listed[d.name]["size"] == len(body)
            first = gzip.decompress(body).split(b"\n", 1)[0].decode()
            assert first.startswith(f'"{manifest["sourceBucket"]}",') and "/" not in first.split(",")[1]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_objects(a, rows=1000, seed=9, rules_dir=RULES)
    generate_objects(b, rows=1000, seed=9, rules_dir=RULES)
    generate_objects(c, rows=1000, seed=10, rules_dir=RULES)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "objects/generic.csv").read_bytes() != (c / "objects/generic.csv").read_bytes()
    assert (a / "truth/objects.jsonl").read_bytes() != (c / "truth/objects.jsonl").read_bytes()


def test_rerun_into_the_same_folder_leaves_no_stale_files(tmp_path: Path) -> None:
    generate_objects(tmp_path, rows=1000, seed=1, rules_dir=RULES)
    generate_objects(tmp_path, rows=1000, seed=2, rules_dir=RULES)
    rows, _ = _read_all(tmp_path)
    assert sum(len(r) for r in rows.values()) == 1000


def test_every_planted_row_is_in_its_file_with_its_key(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    rows, _ = _read_all(out)
    subjects = {rel: {f"{r['bucket']}/{r['key']}" for r in recs} for rel, recs in rows.items()}
    truth = _truth(out)
    assert truth, "nothing planted"
    for t in truth:
        assert t["subject_id"] in subjects[t["file"]], t
        assert (t["kind"] == "violation") == bool(t["rule_ids"]), t
    kinds = Counter(t["kind"] for t in truth)
    assert kinds["violation"] == summary["violations"] and kinds["near_miss"] == summary["near_misses"]
    assert len({t["subject_id"] for t in truth}) == len(truth)


def test_subjects_are_unique_across_files(generated: tuple[Path, dict[str, Any]]) -> None:
    rows, _ = _read_all(generated[0])
    subjects = [f"{r['bucket']}/{r['key']}" for recs in rows.values() for r in recs]
    assert len(subjects) == len(set(subjects))


def test_truth_covers_every_starter_rule_in_every_format(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    truth = _truth(out)
    planted = {rid for t in truth for rid in t["rule_ids"]}
    assert planted == _rule_ids()
    files_with_violations = {t["file"].split("/")[1] for t in truth if t["rule_ids"]}
    assert {"generic.csv", "generic.jsonl", "generic.parquet", "qiniu", "qshell", "s3"} <= files_with_violations
    evasions = {t["evasion"] for t in truth if t["kind"] == "violation"}
    assert {"full-width", "traditional", "separator", "zero-width", "digit-variant", "mixed-case"} <= evasions
    near = {t["evasion"] for t in truth if t["kind"] == "near_miss"}
    assert {"latin-boundary", "allow-phrase", "exempt-bucket", "label-threshold"} <= near
    assert {(tuple(t["rule_ids"]), t["evasion"]) for t in truth} == {(p.rule_ids, p.evasion) for p in PLANTS}


def test_planted_hashes_come_from_the_block_lists(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    rows, _ = _read_all(out)
    by_subject = {f"{r['bucket']}/{r['key']}": r for recs in rows.values() for r in recs}
    lists = {name: {ln for ln in (RULES / "lexicons" / f"known_bad_{name}.txt").read_text().splitlines()
                    if ln and not ln.startswith("#")} for name in ("md5", "etag")}
    seen: Counter[str] = Counter()
    for t in _truth(out):
        rec = by_subject[t["subject_id"]]
        if t["evasion"] in ("md5", "etag"):
            assert rec[t["evasion"]] in lists[t["evasion"]], t
            seen[t["evasion"]] += 1
        if t["evasion"] == "hash-one-digit-off":
            assert rec["md5"] not in lists["md5"]
            assert any(sum(a != b for a, b in zip(rec["md5"], h)) == 1 for h in lists["md5"])
    assert seen["md5"] and seen["etag"]
    clean = [r for s, r in by_subject.items() if s not in {t["subject_id"] for t in _truth(out)}]
    assert not any(r.get("md5") in lists["md5"] or r.get("etag") in lists["etag"] for r in clean)


def test_moderation_labels_stay_under_the_threshold_except_where_planted(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    high = {t["subject_id"] for t in _truth(out) if "objects.pornography.pulp_label" in t["rule_ids"]}
    assert high
    rows = pq.read_table(out / "objects" / "generic.parquet").to_pylist()
    labelled = [r for r in rows if r["labels"]]
    assert labelled and all(r["mime_type"].startswith(("image/", "video/")) for r in labelled)
    for r in labelled:
        pulp = json.loads(r["labels"])["pulp"]
        assert (pulp >= 0.9) == (f"{r['bucket']}/{r['key']}" in high), r


def test_put_times_fall_in_october_and_november_2026(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    rows, _ = _read_all(out)
    qiniu = [r["put_time_100ns"] for rel, recs in rows.items() if "/qiniu/" in rel for r in recs]
    lo, hi = (int(datetime(2026, m, 1, tzinfo=timezone.utc).timestamp()) * 10**7 for m in (10, 12))
    assert qiniu and all(lo <= t < hi for t in qiniu)
    csv_times = [r["put_time"] for r in rows["objects/generic.csv"]]
    assert all(t.startswith(("2026-10-", "2026-11-")) and t.endswith("Z") for t in csv_times)


def test_malformed_rows_counted_per_file(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    declared = json.loads((out / "truth" / "objects_malformed.json").read_text())
    _, bad = _read_all(out)
    assert declared == bad
    assert set(declared) == {"objects/generic.csv", "objects/qshell/bluefin-downloads.txt"}
    assert all(n >= 3 for n in declared.values()) and summary["malformed"] == sum(declared.values())
    lines = (out / "objects" / "generic.csv").read_bytes().splitlines()
    assert len(lines) == 1 + summary["files"]["objects/generic.csv"] + declared["objects/generic.csv"]


def test_config_loads_and_names_every_file(generated: tuple[Path, dict[str, Any]]) -> None:
    out, summary = generated
    settings = load_settings(str(out / "config.yaml"), environ={})
    assert Path(settings.rules_dir) == RULES.resolve()
    assert settings.state_path == out / "state"
    named = set()
    for entry in settings.sources.objects:
        path = Path(settings.resolve(entry.path))
        assert path.exists(), entry
        if entry.format in ("qiniu-json", "qshell", "s3-inventory"):
            assert entry.bucket and entry.account_id, entry
        named |= {p.relative_to(out).as_posix() for p in ([path] if path.is_file() else path.glob("*.csv.gz"))}
    assert named == set(summary["files"])


def test_existing_config_sections_are_kept(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("state_dir: elsewhere\nsources:\n  logs:\n    - {path: logs/a.log, format: combined}\n")
    generate_objects(tmp_path, rows=1000, seed=1, rules_dir=RULES)
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["state_dir"] == "elsewhere"
    assert config["sources"]["logs"] == [{"path": "logs/a.log", "format": "combined"}]
    assert config["sources"]["objects"]


def test_too_few_rows_is_a_pipeline_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="at least 1000"):
        generate_objects(tmp_path, rows=10, seed=1)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--rows", "1000", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 1000 and summary["violations"] > 0
    assert main(["--out", str(tmp_path), "--rows", "5"]) == 2
    assert capsys.readouterr().err.startswith("error: rows must be at least 1000")
