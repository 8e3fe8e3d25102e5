"""Open cases about log subjects hold the days of logs they cite; purging keeps those days."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.cases.store import open_store
from pipeline.config import load_settings
from pipeline.matchers.hits import HIT_COLUMNS
from pipeline.retention import ingest, purge
from pipeline.rules import model as m


def test_open_case_holds_the_days_it_cites(tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    days = ["2026-01-05", "2026-01-06", "2026-01-07"]
    log.write_text("".join(json.dumps({"ts": f"{d}T10:00:00Z", "client_ip": "203.0.113.7", "domain": "a.example.cn",
                                       "method": "GET", "uri": "/x", "status": 404, "bytes_sent": 10}) + "\n"
                           for d in days), encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("state_dir: state\n", encoding="utf-8")
    settings = load_settings(str(cfg))
    assert ingest(settings, [(str(log), "jsonl")]).rows_stored == 3

    rule = m.Rule(id="logs.t.scan", title="t", clause="3.1.3.7", category="attack_scanning", severity="medium",
                  sources=("logs",), match=None, path="x", line=1, content_hash="h")
    rs = m.RuleSet((rule,), "d")
    store = open_store(settings.state_path)
    hit = {"rule_id": rule.id, "subject_type": "client_ip", "subject_id": "203.0.113.7", "account_id": "",
           "event_time": pd.Timestamp("2026-01-06T10:00:00Z"), "source_file": str(log), "source_line": 2,
           "hit_key": "w1", "evidence": "[]", "context": None}
    store.apply_hits(store.begin_run(None, rs.digest), pd.DataFrame([hit], columns=HIT_COLUMNS), rs, 5)
    held = store.held_days()
    assert set(held) == {date(2026, 1, 6)}

    report = purge(settings, today=date(2026, 12, 1), dry_run=True, extra_holds=held)
    assert list(report.deleted) == [date(2026, 1, 5), date(2026, 1, 7)]
    assert list(report.kept_held) == [date(2026, 1, 6)]
    cid = store.list_cases().iloc[0]["case_id"]
    store.transition(cid, "dismissed", by="reviewer", reason="a test")
    assert store.held_days() == {}
    store.close()
