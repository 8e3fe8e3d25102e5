"""The audit log: a hash chain that names the first edited, deleted, inserted or reordered entry."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeline.cli.logs  # noqa: F401  (attaches the audit group)
from pipeline.cli import main
from pipeline.config import Settings, load_settings
from pipeline.errors import StoreError
from pipeline.query.audit import GENESIS, append_audit, audit_path, entry_hash, read_audit, verify_audit


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings(None, {"COMPLIANCE_STATE_DIR": str(tmp_path / "state")})
    for i in range(1, 7):
        append_audit(s, "alice", "query", {"request_ref": f"R-{i}", "rows": i, "note": "调取日志"})
    return s


def _lines(settings: Settings) -> list[str]:
    return audit_path(settings).read_text(encoding="utf-8").splitlines(keepends=True)


def _write(settings: Settings, lines: list[str]) -> None:
    audit_path(settings).write_text("".join(lines), encoding="utf-8")


def test_entries_are_chained_and_the_intact_chain_verifies(settings: Settings) -> None:
    entries = read_audit(settings)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(entries, entries[1:]))
    assert all(entry_hash(e) == e["hash"] for e in entries)
    assert entries[0]["details"]["note"] == "调取日志"
    report = verify_audit(settings)
    assert report.ok and report.entries == 6


def test_an_edited_entry_is_named(settings: Settings) -> None:
    lines = _lines(settings)
    lines[2] = lines[2].replace('"rows":3', '"rows":30')
    _write(settings, lines)
    report = verify_audit(settings)
    assert (report.ok, report.first_bad_seq, report.line) == (False, 3, 3) and "edited" in (report.problem or "")


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(settings: Settings) -> None:
    lines = _lines(settings)
    entry = json.loads(lines[1])
    entry["details"]["rows"] = 99
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry, ensure_ascii=False) + "\n"
    _write(settings, lines)
    assert verify_audit(settings).first_bad_seq == 3


def test_a_deleted_entry_is_named(settings: Settings) -> None:
    lines = _lines(settings)
    del lines[3]
    _write(settings, lines)
    report = verify_audit(settings)
    assert (report.first_bad_seq, report.entries) == (4, 3) and "deleted" in (report.problem or "")


def test_reordered_entries_are_named(settings: Settings) -> None:
    lines = _lines(settings)
    lines[1], lines[4] = lines[4], lines[1]
    _write(settings, lines)
    assert verify_audit(settings).first_bad_seq == 2


def test_an_inserted_entry_is_named(settings: Settings) -> None:
    lines = _lines(settings)
    forged = json.loads(lines[2])
    forged["details"] = {"request_ref": "forged"}
    forged["hash"] = entry_hash(forged)
    lines.insert(3, json.dumps(forged) + "\n")
    _write(settings, lines)
    assert verify_audit(settings).first_bad_seq == 4


def test_entries_cut_off_the_end_are_detected(settings: Settings) -> None:
    _write(settings, _lines(settings)[:4])
    report = verify_audit(settings)
    assert not report.ok and report.first_bad_seq == 5 and "cut off" in (report.problem or "")


def test_appending_to_a_broken_tail_is_refused(settings: Settings) -> None:
    _write(settings, _lines(settings) + ["{not json\n"])
    with pytest.raises(StoreError, match="refusing to extend"):
        append_audit(settings, "bob", "query", {})


def _append_many(state: str, worker: int) -> None:
    s = load_settings(None, {"COMPLIANCE_STATE_DIR": state})
    for i in range(40):
        append_audit(s, f"w{worker}", "case.transition", {"i": i})


def test_concurrent_appenders_keep_one_chain(settings: Settings) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(settings.state_path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    report = verify_audit(settings)
    assert report.ok and report.entries == 6 + 3 * 40


def test_cli_audit_verify_exits_non_zero_naming_the_seq(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(settings.state_path))
    lines = _lines(settings)
    lines[4] = lines[4].replace('"R-5"', '"R-55"')
    _write(settings, lines)
    result = CliRunner().invoke(main, ["audit", "verify"])
    assert result.exit_code == 1 and "seq 5 (line 5)" in result.output


def test_shared_chain_in_a_postgresql_case_store(tmp_path, postgres_url: str) -> None:
    """With the case store on PostgreSQL the chain lives there; tampering is caught the same way."""
    store_url = postgres_url
    from pipeline.cases.store import open_store
    from pipeline.config import load_settings
    from pipeline.query.audit import append_audit, read_audit, verify_audit

    cfg = tmp_path / "config.yaml"
    cfg.write_text("state_dir: state\n", encoding="utf-8")
    settings = load_settings(str(cfg)).model_copy(update={"case_store": store_url})
    for i in range(3):
        append_audit(settings, "alice", "query", {"n": i, "authority": "网安"})
    assert [e["seq"] for e in read_audit(settings)] == [1, 2, 3]
    assert verify_audit(settings).ok and not (tmp_path / "state" / "audit" / "audit.jsonl").exists()
    store = open_store(settings.state_path, store_url)
    line = store.db.scalar("SELECT line FROM audit_log WHERE seq = 2")
    store.db.execute("UPDATE audit_log SET line = ? WHERE seq = 2", (line.replace('"n":1', '"n":7'),))
    store.close()
    report = verify_audit(settings)
    assert not report.ok and report.first_bad_seq == 2 and "edited" in (report.problem or "")
