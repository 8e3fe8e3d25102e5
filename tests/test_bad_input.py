"""Bad input as real exports hold it, through the CLI: a scheduled run survives a bad file (exit 4,
the file quarantined and retried), every other bad input exits 2 with its place and what to do,
Chinese encodings are read, and what is shown of customer text cannot forge lines."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_LINE = ('{ip} - - [01/Nov/2026:10:{m:02d}:{s:02d} +0800] "GET /p/{n}?ref={r} HTTP/1.1" 200 {b} "-" '
             '"Mozilla/5.0 ({ua})"\n')
CSV_HEAD = "account_id,bucket,key,size,mime_type,etag,md5,put_time,uploader,storage_class,status\n"


# Root reads every file whatever its mode: without these two capabilities it is held to the mode
# bits like any user (a file of mode 000 is then unreadable to it too), its files and folders its own.
NO_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"]


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None, as_nobody: bool = False,
        held_to_modes: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pipeline.cli.__main__", *args]
    if as_nobody:   # root reads every file: run as an unprivileged user to meet a permission error
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    if held_to_modes and os.geteuid() == 0:
        cmd = [*NO_OVERRIDE, *cmd]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=300)


def log_lines(n: int, seed: int, ua: str = "X11") -> str:
    rng = random.Random(seed)
    return "".join(GOOD_LINE.format(ip=f"203.0.113.{rng.randrange(1, 250)}", m=i // 60 % 60, s=i % 60, n=i,
                                    r=rng.getrandbits(64), b=rng.randrange(100, 99999), ua=ua) for i in range(n))


def truncated_gzip(path: Path, text: str, keep: float = 0.6) -> None:
    """``text`` gzip-compressed, cut after ``keep`` of its compressed bytes (a download cut short)."""
    data = gzip.compress(text.encode("utf-8"))
    path.write_bytes(data[: int(len(data) * keep)])


def object_rows(n: int, seed: int, bucket: str) -> str:
    rng = random.Random(seed)
    return "".join(f"acct-9,{bucket},files/{rng.getrandbits(80):x}.bin,{rng.randrange(10, 10**6)},"
                   f"application/octet-stream,e{i},,2026-11-01T00:00:00Z,u,STANDARD,enabled\n" for i in range(n))


def write_config(folder: Path, text: str) -> Path:
    cfg = folder / "config.yaml"
    cfg.write_text(f"rules: {ROOT / 'rules'}\nstate_dir: state\ndask:\n  workers: 1\n{text}", encoding="utf-8")
    return cfg


# -- a scheduled run survives a bad file -----------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.slow
def test_scan_quarantines_a_truncated_gzip_reads_its_whole_lines_and_retries_it(tmp_path: Path) -> None:
    objs = tmp_path / "objs"
    objs.mkdir()
    (objs / "good.csv").write_text(CSV_HEAD + "acct-9,b1,promo/赌场开业.png,10,image/png,e1,,2026-11-01T00:00:00Z,"
                                   "u,STANDARD,enabled\n", encoding="utf-8")
    # the planted row is in the readable part; the tail of the stream is missing
    truncated_gzip(objs / "export.csv.gz", CSV_HEAD + "acct-9,b2,promo/赌场旧址.png,10,image/png,e2,,"
                   "2026-11-01T00:00:00Z,u,STANDARD,enabled\n" + object_rows(3000, 1, "b2"))
    write_config(tmp_path, "sources:\n  objects:\n  - path: objs\n    format: csv\n")
    first = cli(tmp_path, "scan", "--json")
    assert first.returncode == 4, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "completed_with_errors" and report["files"] == 2
    (bad,) = report["files_quarantined"]
    assert bad["path"].endswith("export.csv.gz") and bad["partial"] is True
    assert bad["bytes"] == (objs / "export.csv.gz").stat().st_size and "truncated" in bad["reason"]
    assert report["cases_new"] == 2   # the good file's case and the one in the readable part
    assert 1 < report["rows_read"] < 3002
    listed = cli(tmp_path, "quarantine", "list", "--format", "json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r for r in rows if r["source_line"] is None and r["source_file"].endswith("export.csv.gz")]
    # not recorded as scanned: the next run reads it again, and finds nothing new
    again = cli(tmp_path, "scan", "--json")
    assert again.returncode == 4, again.stderr
    second = json.loads(again.stdout)
    assert second["files"] == 1 and second["files_skipped"] == 1 and second["cases_new"] == 0
    strict = cli(tmp_path, "scan", "--strict")
    assert strict.returncode == 2 and "export.csv.gz" in strict.stderr and "truncated" in strict.stderr


def test_logs_ingest_of_a_folder_with_a_truncated_gzip_stores_every_good_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(log_lines(120, 1), encoding="utf-8")
    (logs / "c.log").write_text(log_lines(80, 2), encoding="utf-8")
    whole = log_lines(2000, 3)
    truncated_gzip(logs / "b.log.gz", whole)
    write_config(tmp_path, "")
    res = cli(tmp_path, "logs", "ingest", "logs", "--format", "combined", "--domain", "www.example.cn")
    assert res.returncode == 4, res.stderr
    stored = int(res.stdout.split(" read = ")[1].split(" stored")[0])
    readable = stored - 200
    assert 0 < readable < 2000, res.stdout
    assert whole.startswith(gzip.decompress(gzip.compress(whole.encode()))[:10].decode())  # sanity of the data
    assert "b.log.gz" in res.stderr and "tail not read" in res.stderr
    query = cli(tmp_path, "logs", "query", "--request-ref", "R-1", "--authority", "MPS", "--domain", "www.example.cn",
                "--out", str(tmp_path / "out"))
    assert query.returncode == 0, query.stderr
    assert query.stdout.startswith(f"{stored} row(s)")
    # the bad file is read again by the next ingest; nothing is stored twice
    again = cli(tmp_path, "logs", "ingest", "logs", "--format", "combined", "--domain", "www.example.cn")
    assert again.returncode == 4 and "b.log.gz" in again.stderr
    query = cli(tmp_path, "logs", "query", "--request-ref", "R-2", "--authority", "MPS", "--domain", "www.example.cn",
                "--out", str(tmp_path / "out2"))
    assert query.stdout.startswith(f"{stored} row(s)")
    strict = cli(tmp_path, "logs", "ingest", "logs", "--format", "combined", "--domain", "www.example.cn", "--strict")
    assert strict.returncode == 2 and "b.log.gz" in strict.stderr


def _objects(folder: Path, **files: str) -> None:
    folder.mkdir(exist_ok=True)
    for name, key in files.items():
        (folder / f"{name}.csv").write_text(CSV_HEAD + f"acct-9,b-{name},promo/{key},10,image/png,e-{name},,"
                                            "2026-11-01T00:00:00Z,u,STANDARD,enabled\n", encoding="utf-8")


def _subjects(cwd: Path) -> set[str]:
    listed = cli(cwd, "cases", "list", "--format", "json")
    return {json.loads(line)["subject_id"] for line in listed.stdout.splitlines()}


@pytest.mark.cluster
@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to hold root to modes")
def test_scan_quarantines_a_file_it_may_not_read_and_reads_it_once_it_may(tmp_path: Path) -> None:
    _objects(tmp_path / "objs", good="赌场开业.png", locked="赌场旧址.png")
    (tmp_path / "objs" / "locked.csv").chmod(0o000)
    write_config(tmp_path, "sources:\n  objects:\n  - path: objs\n    format: csv\n")
    try:
        res = cli(tmp_path, "scan", "--json", held_to_modes=True)
    finally:
        (tmp_path / "objs" / "locked.csv").chmod(0o644)
    assert res.returncode == 4, res.stderr
    report = json.loads(res.stdout)
    (bad,) = report["files_quarantined"]
    assert bad["path"].endswith("locked.csv") and bad["reason"].startswith("permission denied")
    assert report["status"] == "completed_with_errors" and report["files"] == 2 and report["cases_new"] == 1
    assert "Traceback" not in res.stderr and _subjects(tmp_path) == {"b-good/promo/赌场开业.png"}
    again = cli(tmp_path, "scan", "--json")   # readable now: retried, the other file unchanged
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["files"] == 1 and second["files_skipped"] == 1 and second["cases_new"] == 1
    assert _subjects(tmp_path) == {"b-good/promo/赌场开业.png", "b-locked/promo/赌场旧址.png"}


@pytest.mark.cluster
def test_scan_quarantines_a_file_that_vanishes_mid_scan_and_reads_it_when_it_is_back(tmp_path: Path) -> None:
    _objects(tmp_path / "objs", kept="赌场开业.png", gone="赌场旧址.png")
    saved = (tmp_path / "objs" / "gone.csv").read_bytes()
    write_config(tmp_path, "sources:\n  objects:\n  - path: objs\n    format: csv\n")
    # each task waits a little on the worker: the file is listed and fingerprinted, then removed before it is read
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.__main__", "scan", "--json"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "PIPELINE_PAUSE_AT": "scan.task:1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert "2 changed file(s) to read" in first, first
    (tmp_path / "objs" / "gone.csv").unlink()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 4, err
    report = json.loads(out)
    (bad,) = report["files_quarantined"]
    assert bad["path"].endswith("gone.csv") and "vanished" in bad["reason"]
    assert report["files"] == 2 and report["cases_new"] == 1 and "Traceback" not in err
    (tmp_path / "objs" / "gone.csv").write_bytes(saved)
    again = cli(tmp_path, "scan", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["cases_new"] == 1
    assert _subjects(tmp_path) == {"b-kept/promo/赌场开业.png", "b-gone/promo/赌场旧址.png"}


# -- every bad input exits 2 with its place and what to do -----------------------------------------

def _unreadable(path: Path) -> bool:
    """Make ``path`` unreadable to the user the CLI runs as; whether that user is not root."""
    os.chmod(path, 0o000)
    return os.geteuid() == 0


@pytest.fixture()
def open_folder() -> Iterator[Path]:
    """A folder every user can enter and write (pytest's own is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="compliance-perm-"))
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_unreadable_log_and_rule_files_are_located_errors(open_folder: Path) -> None:
    tmp_path = open_folder
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o777)
    os.chmod(logs, 0o777)
    (logs / "ok.log").write_text(log_lines(30, 4), encoding="utf-8")
    (logs / "secret.log").write_text(log_lines(30, 5), encoding="utf-8")
    nobody = _unreadable(logs / "secret.log")
    (tmp_path / "config.yaml").write_text("state_dir: state\n", encoding="utf-8")
    (tmp_path / "state").mkdir(mode=0o777)
    os.chmod(tmp_path / "state", 0o777)
    res = cli(tmp_path, "logs", "ingest", "logs", "--format", "combined", "--domain", "www.example.cn",
              as_nobody=nobody)
    assert res.returncode == 4, res.stderr
    assert "secret.log" in res.stderr and "permission denied" in res.stderr and "30 read = 30 stored" in res.stdout
    rules = tmp_path / "rules"
    rules.mkdir()
    os.chmod(rules, 0o777)
    (rules / "locked.yaml").write_text("rules: []\n", encoding="utf-8")
    _unreadable(rules / "locked.yaml")
    lint = cli(tmp_path, "rules", "lint", "rules", as_nobody=nobody)
    assert lint.returncode == 2, lint.stderr
    assert f"{Path('rules') / 'locked.yaml'}: cannot read the rule file: Permission denied" in lint.stderr
    assert "internal error" not in lint.stderr


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_an_s3_path_without_s3fs_names_the_extra(tmp_path: Path) -> None:
    write_config(tmp_path, "sources:\n  objects:\n  - path: s3://bucket/listing/*.csv\n    format: csv\n")
    res = cli(tmp_path, "scan")
    assert res.returncode == 2, res.stderr
    assert "sources.objects entry 1" in res.stderr and 'pip install -e ".[s3]"' in res.stderr
    ingest = cli(tmp_path, "logs", "ingest", "s3://bucket/a.log", "--format", "combined", "--domain", "x.cn")
    assert ingest.returncode == 2 and ".[s3]" in ingest.stderr and "internal error" not in ingest.stderr


RULE_HEAD = ("rules:\n- id: drafts.{name}\n  title: t\n  clause: \"3.1.3.10\"\n  category: contraband_gambling\n"
             "  severity: low\n  source: objects\n")


def test_rule_files_past_a_bound_fail_fast_with_their_place(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    bomb = RULE_HEAD.format(name="bomb") + "  match:\n    fields: [key]\n    keywords: &a0 [k, k, k, k, k, k, k, k, k]\n"
    for i in range(1, 10):   # 9^10 keywords once expanded
        bomb += f"  x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n"
    (rules / "bomb.yaml").write_text(bomb, encoding="utf-8")
    deep = "{any: [" * 500 + "{keywords: [x], fields: [key]}" + "]}" * 500
    (rules / "deep.yaml").write_text(RULE_HEAD.format(name="deep") + f"  match: {deep}\n", encoding="utf-8")
    (rules / "long.yaml").write_text(RULE_HEAD.format(name="long") + "  match: {regex: '" + "a" * 200_000
                                     + "', fields: [key]}\n", encoding="utf-8")
    write_config(tmp_path, "")
    res = cli(tmp_path, "rules", "lint", "rules")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert any(line.startswith("rules/bomb.yaml:") and "aliases expand past" in line for line in lines)
    assert any(line.startswith("rules/deep.yaml:8:") and "nested more than 64 levels" in line for line in lines)
    assert any(line.startswith("rules/long.yaml:8:18:") and "200000 characters" in line for line in lines)
    assert "internal error" not in res.stderr and "MemoryError" not in res.stderr


def test_a_lexicon_must_lie_under_the_rules_folder_or_a_configured_one(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shared = tmp_path / "shared-lists"
    shared.mkdir()
    (shared / "words.txt").write_text("赌场\n", encoding="utf-8")
    rule = RULE_HEAD + "  match: {{keywords_file: {path}, fields: [key]}}\n"
    (rules / "a.yaml").write_text(rule.format(name="etc", path="/etc/passwd")
                                  + rule.format(name="up", path="../shared-lists/words.txt")[len("rules:\n"):],
                                  encoding="utf-8")
    write_config(tmp_path, "")
    res = cli(tmp_path, "rules", "lint", "rules")
    assert res.returncode == 2
    assert "/etc/passwd lies outside the rules folder" in res.stderr
    assert "shared-lists/words.txt lies outside the rules folder" in res.stderr and "rule_list_dirs" in res.stderr
    (rules / "a.yaml").write_text(rule.format(name="up", path="../shared-lists/words.txt"), encoding="utf-8")
    write_config(tmp_path, "rule_list_dirs: [shared-lists]\n")
    ok = cli(tmp_path, "rules", "lint", "rules")
    assert ok.returncode == 0, ok.stderr


def test_a_glob_naming_no_file_warns_and_stops_a_strict_scan(tmp_path: Path) -> None:
    write_config(tmp_path, "sources:\n  objects:\n  - path: exports/*.csv\n    format: csv\n")
    res = cli(tmp_path, "scan", "--strict")
    assert res.returncode == 2 and "sources.objects entry 1 (exports/*.csv): names no file" in res.stderr
    ingest = cli(tmp_path, "logs", "ingest", "none/*.log", "--format", "combined", "--domain", "x.cn")
    assert ingest.returncode == 2 and "none/*.log: names no file" in ingest.stderr


def test_without_a_config_file_state_changing_commands_are_refused(tmp_path: Path) -> None:
    res = cli(tmp_path, "scan")
    assert res.returncode == 2
    assert "no config file found: looked for --config, $COMPLIANCE_CONFIG, ./config.yaml" in res.stderr
    assert "--state-dir" in res.stderr and not (tmp_path / ".compliance").exists()
    for reading in (["cases", "list"], ["quarantine", "list"], ["audit", "verify"], ["users", "list"]):
        res = cli(tmp_path, *reading)   # nothing to read: said so, and no empty state made to show nothing
        assert res.returncode == 2, (reading, res.stderr)
        assert f"looked for --config, $COMPLIANCE_CONFIG, ./config.yaml (in {tmp_path})" in res.stderr
        assert f"there is no state folder {tmp_path / '.compliance'} to read" in res.stderr
        assert "Traceback" not in res.stderr and not (tmp_path / ".compliance").exists()
    lint = cli(tmp_path, "rules", "lint", str(ROOT / "rules"))   # rule files need no state
    assert lint.returncode == 0 and "no config file found" in lint.stderr, lint.stderr
    assert not (tmp_path / ".compliance").exists()
    assert cli(tmp_path, "--help").returncode == 0 and not (tmp_path / ".compliance").exists()
    repair = cli(tmp_path, "audit", "repair")
    assert repair.returncode == 2 and "changes state" in repair.stderr
    purge = cli(tmp_path, "--state-dir", "st", "logs", "purge", "--by", "ops")
    assert purge.returncode == 0, purge.stderr
    audit = cli(tmp_path, "--state-dir", "st", "audit", "list", "--action", "logs.purge")
    assert "logs.purge" in audit.stdout and "ops" in audit.stdout   # a purge that deleted nothing is audited too
    users = cli(tmp_path, "--state-dir", "st", "users", "list")
    assert users.returncode == 0, users.stderr


# -- encodings, and text shown as it is -----------------------------------------------------------

@pytest.mark.cluster
@pytest.mark.slow
def test_gbk_and_utf16_exports_are_read_and_customer_text_is_escaped(tmp_path: Path) -> None:
    objs = tmp_path / "objs"
    objs.mkdir()
    gbk = (CSV_HEAD + "acct-9,gbk-bucket,promo/赌场开业.png,10,image/png,e1,,2026-11-01T00:00:00Z,u,STANDARD,"
           "enabled\n").encode("gbk")
    (objs / "gbk.csv").write_bytes(gbk)
    (objs / "gbk-unsaid.csv").write_bytes(gbk)
    (objs / "utf16.csv").write_bytes((CSV_HEAD + "acct-9,u16-bucket,promo/赌场旧址.png,10,image/png,e2,,"
                                      "2026-11-01T00:00:00Z,u,STANDARD,enabled\n").encode("utf-16"))
    (objs / "spoof.csv").write_text(CSV_HEAD + 'acct-9,spoof,"promo/赌场.png\nstatus: dismissed by admin\x1b[2K",10,'
                                    "image/png,e3,,2026-11-01T00:00:00Z,u,STANDARD,enabled\n", encoding="utf-8")
    write_config(tmp_path, "sources:\n  objects:\n"
                 "  - {path: objs/gbk.csv, format: csv, encoding: gbk}\n"
                 "  - {path: objs/utf16.csv, format: csv, encoding: auto}\n"
                 "  - {path: objs/gbk-unsaid.csv, format: csv}\n"
                 "  - {path: objs/spoof.csv, format: csv}\n")
    res = cli(tmp_path, "scan")
    assert res.returncode == 4, res.stderr   # gbk-unsaid.csv: no line decodes as UTF-8
    assert "no line decodes as utf-8" in res.stdout
    cases = [json.loads(line) for line in cli(tmp_path, "cases", "list", "--format", "json").stdout.splitlines()]
    subjects = {c["subject_id"] for c in cases}
    assert {"gbk-bucket/promo/赌场开业.png", "u16-bucket/promo/赌场旧址.png"} <= subjects
    listed = cli(tmp_path, "quarantine", "list", "--file", "gbk-unsaid.csv")
    assert "decoded as utf-8; set `encoding:` in its source entry" in listed.stdout
    # a key holding a newline and a terminal escape is shown escaped, on one line
    table = cli(tmp_path, "cases", "list").stdout
    assert "\nstatus: dismissed by admin" not in table and "\x1b" not in table
    spoof = next(c for c in cases if c["subject_id"].startswith("spoof/"))
    shown = cli(tmp_path, "cases", "show", spoof["case_id"]).stdout
    assert "promo/赌场.png\\nstatus: dismissed by admin\\x1b[2K" in shown
    assert not any(line.startswith("status: dismissed") for line in shown.splitlines())
    notice = cli(tmp_path, "enforce", "notice", spoof["case_id"]).stdout
    assert "\\nstatus: dismissed by admin" in notice and "\x1b" not in notice


@pytest.mark.cluster
def test_utf16_files_read_as_utf8_are_quarantined_as_files_naming_utf16(tmp_path: Path) -> None:
    # UTF-16 text read as UTF-8 mostly decodes (NULs and all) and only fails to parse: the
    # byte-order mark is what tells, and the advice names the setting that reads it
    (tmp_path / "objs.csv").write_bytes((CSV_HEAD + object_rows(3, 1, "b16")).encode("utf-16"))
    (tmp_path / "a.log").write_bytes(log_lines(20, 2).encode("utf-16"))
    (tmp_path / "good.log").write_text(log_lines(20, 3), encoding="utf-8")
    write_config(tmp_path, "sources:\n  objects:\n  - {path: objs.csv, format: csv}\n"
                 "  logs:\n  - {path: a.log, format: combined, domain: www.example.cn}\n"
                 "  - {path: good.log, format: combined, domain: www.example.cn}\n")
    res = cli(tmp_path, "scan", "--json")
    assert res.returncode == 4, res.stderr
    summary = json.loads(res.stdout)
    troubled = {Path(f["path"]).name: f["reason"] for f in summary["files_quarantined"]}
    assert set(troubled) == {"objs.csv", "a.log"}, troubled
    for reason in troubled.values():
        assert "UTF-16 (little-endian) byte-order mark" in reason and "`encoding: utf-16`" in reason, reason
    assert summary["rows_parsed"] == 20   # good.log, read as ever
    # the advice, taken, reads them
    write_config(tmp_path, "sources:\n  objects:\n  - {path: objs.csv, format: csv, encoding: utf-16}\n"
                 "  logs:\n  - {path: a.log, format: combined, domain: www.example.cn, encoding: utf-16}\n"
                 "  - {path: good.log, format: combined, domain: www.example.cn}\n")
    again = cli(tmp_path, "scan", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files_quarantined"] == []


def test_logs_ingest_reads_gb18030_with_encoding(tmp_path: Path) -> None:
    (tmp_path / "gbk.log").write_bytes(log_lines(20, 6, ua="测试浏览器").encode("gb18030"))
    write_config(tmp_path, "")
    plain = cli(tmp_path, "logs", "ingest", "gbk.log", "--format", "combined", "--domain", "a.example.cn")
    assert "20 read = 0 stored + 20 quarantined" in plain.stdout
    assert "gbk.log" in plain.stderr   # no line parsed: reported, not marked as ingested
    assert "read as utf-8" in plain.stderr and "--encoding" in plain.stderr
    good = cli(tmp_path, "logs", "ingest", "gbk.log", "--format", "combined", "--domain", "a.example.cn",
               "--encoding", "gb18030")
    assert good.returncode == 0, good.stderr
    assert "20 read = 20 stored + 0 quarantined" in good.stdout
    # auto: a UTF-16 BOM, a UTF-8 BOM, and gb18030 for bytes that are not UTF-8
    text = log_lines(20, 8, ua="测试浏览器")
    (tmp_path / "u16.log").write_bytes(text.encode("utf-16"))
    (tmp_path / "bom.log").write_bytes(b"\xef\xbb\xbf" + log_lines(20, 9, ua="测试浏览器").encode("utf-8"))
    (tmp_path / "gb.log").write_bytes(log_lines(20, 10, ua="测试浏览器").encode("gb18030"))
    auto = cli(tmp_path, "logs", "ingest", "u16.log", "bom.log", "gb.log", "--format", "combined",
               "--domain", "a.example.cn", "--encoding", "auto")
    assert auto.returncode == 0, auto.stderr
    assert "60 read = 60 stored + 0 quarantined" in auto.stdout


def test_the_readme_regulator_query_returns_the_sample_rows(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    ingest = cli(ROOT, "--config", "config.yaml", "--state-dir", state, "logs", "ingest")
    assert ingest.returncode == 0, ingest.stderr
    res = cli(ROOT, "--config", "config.yaml", "--state-dir", state, "logs", "query",
              "--request-ref", "京公网安〔2026〕123号", "--authority", "某市公安局网安支队", "--ip", "203.0.113.7",
              "--from", "2026-11-01", "--to", "2026-11-03", "--out", str(tmp_path / "req-123"))
    assert res.returncode == 0, res.stderr
    rows = int(res.stdout.split(" row(s)")[0])
    assert rows > 0
    assert "window: 2026-11-01T00:00:00+08:00 .. 2026-11-03T00:00:00+08:00 (Asia/Shanghai)" in res.stdout


def _with_blank_lines(text: str) -> str:
    """Two empty lines after the first data line."""
    head, first, rest = text.split("\n", 2)
    return f"{head}\n{first}\n\n\n{rest}"


@pytest.mark.cluster
@pytest.mark.slow
def test_filing_licence_and_stream_files_are_isolated_and_decoded_like_the_others(tmp_path: Path) -> None:
    """Filings, licences and streams: one unreadable file is quarantined as a file and the rest read;
    `encoding: auto` takes UTF-16 and UTF-8 BOMs and falls back to gb18030; a reason for bytes that do
    not decode names the encoding tried; blank lines land in the one figure every format adds to."""
    from pipeline.sources.icp import read_filings_csv, read_licences_csv

    sample = ROOT / "examples" / "sample"
    filings = (sample / "icp" / "filings.csv").read_text(encoding="utf-8")
    reference = read_filings_csv(str(sample / "icp" / "filings.csv"))
    licences = (sample / "icp" / "licences.csv").read_text(encoding="utf-8")
    streams = (sample / "streams" / "streams.csv").read_text(encoding="utf-8")
    d = tmp_path / "in"
    d.mkdir()
    (d / "f-gbk.csv").write_bytes(filings.encode("gbk"))                           # no encoding: not read
    (d / "f-utf16.csv").write_bytes(_with_blank_lines(filings).encode("utf-16"))   # auto: the BOM says UTF-16
    (d / "f-bom.csv").write_bytes(b"\xef\xbb\xbf" + filings.encode("utf-8"))       # auto: a UTF-8 BOM
    (d / "l-gbk.csv").write_bytes(licences.encode("gbk"))                          # auto: not UTF-8, so gb18030
    data = gzip.compress((licences * 40).encode("utf-8"))
    (d / "l-cut.csv.gz").write_bytes(data[: len(data) // 2])                      # truncated download
    (d / "s-gbk.csv").write_bytes(streams.encode("gbk"))
    (d / "s-utf16.csv").write_bytes(_with_blank_lines(streams).encode("utf-16"))
    (d / "gbk.log").write_bytes(log_lines(20, 7, ua="测试浏览器").encode("gb18030"))   # auto: gb18030
    write_config(tmp_path, f"sources:\n  bindings:\n  - {{path: {sample / 'bindings.csv'}, format: csv}}\n"
                 "  icp:\n  - {path: in/f-gbk.csv, format: csv}\n"
                 "  - {path: in/f-utf16.csv, format: csv, encoding: auto}\n"
                 "  - {path: in/f-bom.csv, format: csv, encoding: auto}\n"
                 "  licences:\n  - {path: in/l-gbk.csv, format: csv, encoding: auto}\n"
                 "  - {path: in/l-cut.csv.gz, format: csv}\n"
                 "  streams:\n  - {path: in/s-gbk.csv, format: csv}\n"
                 "  - {path: in/s-utf16.csv, format: csv, encoding: auto}\n"
                 "  logs:\n  - {path: in/gbk.log, format: combined, domain: a.example.cn, encoding: auto}\n")
    env = {"COMPLIANCE_SCAN__NOISY_RULE_SHARE": "1.0"}
    res = cli(tmp_path, "scan", "--json", env=env)
    assert res.returncode == 4, res.stderr
    report = json.loads(res.stdout)
    assert report["status"] == "completed_with_errors"
    bad = {Path(f["path"]).name: f for f in report["files_quarantined"]}
    assert set(bad) == {"f-gbk.csv", "l-cut.csv.gz", "s-gbk.csv"}
    assert "no line decodes as utf-8" in bad["f-gbk.csv"]["reason"] and bad["l-cut.csv.gz"]["partial"] is True
    icp = report["per_source"]["icp"]
    data_lines = filings.count("\n") - 1
    assert icp["files"] == 3 and icp["rows_parsed"] == 2 * len(reference.records)
    assert icp["rows_quarantined"] == 2 * len(reference.quarantine) + data_lines
    lic = report["per_source"]["licences"]
    held = len(read_licences_csv(str(sample / "icp" / "licences.csv")).records)
    assert lic["rows_parsed"] > held and lic["rows_read"] == lic["rows_parsed"] + lic["rows_quarantined"]  # + the tail
    assert report["per_source"]["streams"]["rows_parsed"] == streams.count("\n") - 1
    assert report["per_source"]["logs"]["rows_parsed"] == 20
    assert report["blank_lines"] == 4       # two in the filings, two in the streams, whichever reader
    # one count of files: the JSON, the per-source counts, the log line
    assert report["files"] == 8 == sum(c["files"] for c in report["per_source"].values())
    assert f"completed with errors: {report['files']} file(s)" in res.stderr
    listed = cli(tmp_path, "quarantine", "list", "--file", "f-gbk.csv", "--format", "json")
    reasons = [json.loads(line)["reason"] for line in listed.stdout.splitlines()]
    assert len(reasons) == data_lines + 1   # every line, and the file
    assert all("decoded as utf-8; set `encoding:` in its source entry" in r for r in reasons if "file (" not in r)
    # an incremental run: its table, its closing line and its log line give one count (the stream file
    # read well is unchanged, skipped; the one that was not is read again, as are the filings and licences)
    table = cli(tmp_path, "scan", env=env)
    assert table.returncode == 4
    counts = {line.split("│")[1].strip(): int(line.split("│")[2]) for line in table.stdout.splitlines()
              if line.count("│") == 3 and line.split("│")[2].strip().isdigit()}
    assert counts["files scanned"] == 6 and counts["files unchanged"] == 2 and counts["files quarantined"] == 3
    assert "completed with errors: 6 file(s)" in table.stdout and "completed with errors: 6 file(s)" in table.stderr
    assert "1 changed file(s) to read and 5 filing / licence file(s)" in table.stderr
    strict = cli(tmp_path, "scan", "--strict", env=env)
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "s-gbk.csv: no line decodes as utf-8" in strict.stderr.splitlines()[-1]   # the first bad file read
    only_filings = tmp_path / "filings.yaml"
    only_filings.write_text((tmp_path / "config.yaml").read_text(encoding="utf-8").split("  streams:")[0],
                            encoding="utf-8")
    strict = cli(tmp_path, "--config", str(only_filings), "scan", "--strict", env=env)
    assert strict.returncode == 2 and "f-gbk.csv: no line decodes as utf-8" in strict.stderr.splitlines()[-1]


@pytest.mark.cluster
def test_the_api_takes_a_scan_completed_with_errors_as_a_scan(tmp_path: Path, dask_client) -> None:  # type: ignore[no-untyped-def]
    from pipeline import api

    _objects(tmp_path / "objs", good="赌场开业.png")
    truncated_gzip(tmp_path / "objs" / "cut.csv.gz", CSV_HEAD + object_rows(3000, 2, "b-cut"))
    (tmp_path / "gbk.log").write_bytes(log_lines(20, 11, ua="测试浏览器").encode("gb18030"))
    truncated_gzip(tmp_path / "cut.log.gz", log_lines(2000, 12))
    # the scan stores no log (ingest_on_scan: false): the API's own ingest is what is tried here
    cfg = write_config(tmp_path, "retention:\n  ingest_on_scan: false\n"
                       "sources:\n  objects:\n  - path: objs\n    format: csv\n  logs:\n"
                       "  - {path: gbk.log, format: combined, domain: a.example.cn, encoding: gb18030}\n"
                       "  - {path: cut.log.gz, format: combined, domain: a.example.cn}\n")
    an = api.connect(cfg)
    assert not an.has_scan()
    assert an.ensure_scanned(client=dask_client) is True
    assert an.runs()["status"].tolist() == ["completed_with_errors"]
    assert an.has_scan() and an.ensure_scanned(client=dask_client) is False   # its cases stand: no second scan
    assert "b-good/promo/赌场开业.png" in set(an.cases()["subject_id"])
    ingested = an.ingest_configured_logs().set_index("path")
    assert ingested.loc["gbk.log", "rows_stored"] == 20 and ingested.loc["gbk.log", "rows_quarantined"] == 0
    assert ingested.loc["cut.log.gz", "files_quarantined"] == 1 and ingested.loc["gbk.log", "files_quarantined"] == 0
