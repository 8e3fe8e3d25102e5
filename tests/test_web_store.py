"""What the review app shares with the CLI and what keeps it fast on a large store: a CLI decision
writes the same hash-chained audit entry as a button does; the queue's counts (also "unassigned",
counted as every case less the claimed ones) and the rules page's per-rule counts equal a direct
count of the store; and on SQLite those counts are answered from indexes, never the case rows."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from web_server import add_users, seed, write_config  # noqa: E402

from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.query.audit import read_audit, verify_audit  # noqa: E402
from pipeline.web import assign  # noqa: E402
from pipeline.web.ops import rule_stats  # noqa: E402
from pipeline.web.queue import CountCache, Filters, _where, facet_counts  # noqa: E402
from pipeline.web.users import User, migrate  # noqa: E402


@pytest.fixture
def seeded(tmp_path: Path, store_url: str) -> Any:
    cfg = write_config(tmp_path, store_url)
    store = CaseStore(store_url)
    ids = seed(store, extra_objects=6)
    add_users(store)
    yield {"cfg": cfg, "settings": load_settings(cfg), "store": store, "ids": ids}
    store.close()


def test_cli_decisions_write_the_audit_entry_with_the_users_name(seeded: dict[str, Any]) -> None:
    runner, store, ids = CliRunner(), seeded["store"], seeded["ids"]
    cid = ids["gambling"]
    steps = [("confirm", "confirmed"), ("reopen", "open"), ("dismiss", "dismissed"), ("reopen", "open"),
             ("resolve", "resolved")]
    for action, to in steps:
        before = store.db.scalar("SELECT status FROM cases WHERE case_id=?", (cid,))
        r = runner.invoke(main, ["--config", seeded["cfg"], "cases", action, cid, "--by", "carol",
                                 "--reason", f"{action} from a script"])
        assert r.exit_code == 0, r.output
        assert f"{before} → {to}" in r.output
        last = store.get_case(cid)["history"][-1]
        assert (last["actor"], last["action"], last["to_status"]) == ("carol", action, to)
        entry = read_audit(seeded["settings"])[-1]
        assert (entry["actor"], entry["action"]) == ("carol", f"case.{action}")
        assert entry["details"] == {"case_id": cid, "from": before, "to": to, "reason": f"{action} from a script",
                                    "via": "cli"}
    assert verify_audit(seeded["settings"]).ok


def test_a_refused_cli_decision_changes_nothing_and_logs_nothing(seeded: dict[str, Any]) -> None:
    runner, store, ids = CliRunner(), seeded["store"], seeded["ids"]
    cid = ids["malware"]
    n = len(read_audit(seeded["settings"]))
    blank = runner.invoke(main, ["--config", seeded["cfg"], "cases", "confirm", cid, "--by", "carol", "--reason", "  "])
    assert blank.exit_code == 2 and "a reason is required" in blank.output
    nobody = runner.invoke(main, ["--config", seeded["cfg"], "cases", "confirm", cid, "--by", " ", "--reason", "x"])
    assert nobody.exit_code == 2 and "--by" in nobody.output
    # open → open is no move: refused by the store, and its audit entry goes with it
    again = runner.invoke(main, ["--config", seeded["cfg"], "cases", "reopen", cid, "--by", "carol", "--reason", "x"])
    assert again.exit_code == 2 and "cannot become open" in again.output and "Traceback" not in again.output
    missing = runner.invoke(main, ["--config", seeded["cfg"], "cases", "dismiss", "C0000", "--by", "carol",
                                   "--reason", "x"])
    assert missing.exit_code == 2 and "no case" in missing.output
    assert store.get_case(cid)["status"] == "open"
    assert len(read_audit(seeded["settings"])) == n and verify_audit(seeded["settings"]).ok


def _direct_counts(store: CaseStore, where: str = "1=1", args: tuple[Any, ...] = ()) -> Counter[tuple[str, str, str]]:
    rows = store.db.all(f"SELECT status, severity, category FROM cases WHERE {where}", args)
    return Counter((r["status"], r["severity"], r["category"]) for r in rows)


def _grouped(rows: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter({(r["status"], r["severity"], r["category"]): int(r["n"]) for r in rows if int(r["n"])})


def test_counts_per_filter_equal_a_direct_count_also_unassigned(seeded: dict[str, Any]) -> None:
    store, ids = seeded["store"], seeded["ids"]
    alice, bob = User("alice", "reviewer"), User("bob", "approver")
    assign.claim(store.db, ids["gambling"], alice, 30)
    assign.claim(store.db, ids["log"], bob, 30)
    assign.claim(store.db, ids["stream"], bob, 30)
    store.db.execute("UPDATE web_claims SET expires_at='2000-01-01T00:00:00+00:00' WHERE case_id=?", (ids["stream"],))
    cc = CountCache(0)
    claimed = (ids["gambling"], ids["log"])
    assert _grouped(cc.grouped(store.db, Filters(assigned="unassigned"), alice)[0]) == \
        _direct_counts(store, "case_id NOT IN (?, ?)", claimed)
    assert _grouped(cc.grouped(store.db, Filters(assigned="me"), alice)[0]) == \
        _direct_counts(store, "case_id = ?", (ids["gambling"],))
    assert _grouped(cc.grouped(store.db, Filters(source="objects", assigned="unassigned"), alice)[0]) == \
        _direct_counts(store, "source = 'objects' AND case_id NOT IN (?, ?)", claimed)
    assert _grouped(cc.grouped(store.db, Filters(source="logs"), alice)[0]) == _direct_counts(store, "source = 'logs'")
    assert _grouped(cc.grouped(store.db, Filters(source="icp"), alice)[0]) == Counter()
    counts, total = facet_counts(cc.grouped(store.db, Filters(assigned="unassigned"), alice)[0], Filters())
    assert total == store.db.scalar("SELECT COUNT(*) FROM cases WHERE status IN ('open','confirmed')") - 2


def test_rule_stats_equal_a_direct_count(seeded: dict[str, Any]) -> None:
    store, ids = seeded["store"], seeded["ids"]
    store.transition(ids["gambling"], "confirmed", by="t", reason="r")
    per, changed, rows_read = rule_stats(store.db)
    rows = store.db.all("SELECT rule_id, status, hit_count FROM cases")
    for rule in {r["rule_id"] for r in rows}:
        mine = [r for r in rows if r["rule_id"] == rule]
        assert per[rule] == {"cases": len(mine), "open": sum(r["status"] == "open" for r in mine),
                             "hits": sum(r["hit_count"] for r in mine)}
    assert per["objects.gambling"]["open"] == per["objects.gambling"]["cases"] - 1
    assert changed == {}    # no scan has seen a rule change yet


def _plan(store: CaseStore, sql: str, args: tuple[Any, ...] = ()) -> str:
    return " | ".join(str(r["detail"]) for r in store.db.all("EXPLAIN QUERY PLAN " + sql, args))


def test_counts_read_indexes_not_case_rows_on_sqlite(tmp_path: Path) -> None:
    store = CaseStore(f"sqlite:///{tmp_path / 'cases.db'}")
    seed(store, extra_objects=2)
    migrate(store.db)
    user = User("alice", "reviewer")
    for f, index in ((Filters(), "web_queue_facets2"), (Filters(source="objects"), "web_queue_source"),
                     (Filters(rule="objects.gambling"), "web_rules_stats"),
                     (Filters(assigned="claimed"), "web_queue_facets2")):
        where, args = _where(f, user, with_facets=False, db=store.db)
        sql = ("SELECT status, severity, category, COUNT(*) AS n FROM cases" + (" WHERE " + " AND ".join(where)
               if where else "") + " GROUP BY status, severity, category")
        plan = _plan(store, sql, tuple(args))
        assert f"COVERING INDEX {index}" in plan or "USING INDEX sqlite_autoindex_cases_1" in plan, (f, plan)
        assert not re.search(r"SCAN cases(?! USING)", plan), plan    # never every case row
    plan = _plan(store, "SELECT rule_id, status, COUNT(*) AS n, SUM(hit_count) AS hits FROM cases GROUP BY rule_id, status")
    assert "COVERING INDEX web_rules_stats" in plan, plan
    plan = _plan(store, "SELECT c.rule_id, MAX(h.at) AS at FROM case_history h JOIN cases c ON c.case_id = h.case_id"
                        " WHERE h.action = 'rule_changed' GROUP BY c.rule_id")
    assert "web_history_action" in plan, plan
    store.close()


def test_web_tables_use_the_case_stores_migration_runner(tmp_path: Path) -> None:
    store = CaseStore(f"sqlite:///{tmp_path / 'cases.db'}")
    migrate(store.db)
    migrate(store.db)   # idempotent
    from pipeline.web.users import MIGRATIONS

    assert store.db.scalar("SELECT MAX(version) FROM web_schema_version") == len(MIGRATIONS)
    assert store.db.scalar("SELECT COUNT(*) FROM web_schema_version") == len(MIGRATIONS)
    store.db.execute("INSERT INTO web_schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="the review app's part of the case store has schema version"):
        migrate(store.db)
    store.close()


@pytest.mark.parametrize("f", [Filters(category="contraband_gambling"), Filters(category="contraband_gambling",
                                                                              status="open"),
                               Filters(category="attack_malware", sort="hits"), Filters(source="objects"),
                               Filters(category="contraband_gambling", source="objects", sort="last_seen")])
def test_keyset_pages_under_filters_cover_every_case_once_in_order(seeded: dict[str, Any], f: Filters) -> None:
    from dataclasses import replace

    from pipeline.web.queue import page

    store, user = seeded["store"], User("alice", "reviewer")
    store.transition(seeded["ids"]["gambling"], "confirmed", by="t", reason="r")   # two statuses to merge
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        p = page(store.db, replace(f, after=after), user, 2)
        seen += p.rows
        if p.next_after is None:
            break
        after = p.next_after
    where, args = _where(replace(f, status=None), user, with_facets=True, db=store.db)
    marks = ",".join("?" * len(f.statuses()))
    want = store.db.all(f"SELECT case_id, severity, hit_count, last_seen FROM cases WHERE status IN ({marks})"
                        + "".join(f" AND {w}" for w in where), (*f.statuses(), *args))
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    key, desc = {"severity": (lambda r: (rank[r["severity"]], r["case_id"]), False),
                 "hits": (lambda r: (r["hit_count"], r["case_id"]), True),
                 "last_seen": (lambda r: (r["last_seen"], r["case_id"]), True)}[f.sort]
    assert want
    assert [r["case_id"] for r in seen] == [r["case_id"] for r in sorted(want, key=key, reverse=desc)]


def test_a_cursor_of_another_sort_gives_the_first_page(seeded: dict[str, Any]) -> None:
    from pipeline.web.queue import encode_cursor, page

    store, user = seeded["store"], User("alice", "reviewer")
    text, number, flag = (encode_cursor("2026-11-01T00:00:00+00:00", "C1"), encode_cursor(7, "C1"),
                          encode_cursor(True, "C1"))
    for f, bad in ((Filters(sort="hits"), (text, flag)),
                   (Filters(sort="severity", category="contraband_gambling"), (text, flag)),
                   (Filters(sort="severity"), (text, flag)), (Filters(sort="last_seen"), (number, flag))):
        first = page(store.db, f, user, 3)
        assert first.rows
        for cursor in bad:
            got = page(store.db, Filters(**{**f.__dict__, "after": cursor}), user, 3)
            assert [r["case_id"] for r in got.rows] == [r["case_id"] for r in first.rows], (f, cursor)
