"""The case store: stable ids, idempotent re-application of hits, bounded evidence, runs."""

import json
from pathlib import Path

import pandas as pd

from pipeline.cases.db import Database
from pipeline.cases.fold import fold
from pipeline.cases.ids import case_id
from pipeline.cases.schema import MIGRATIONS, run_migrations
from pipeline.cases.store import CaseStore
from pipeline.matchers.hits import HIT_COLUMNS
from pipeline.rules import model as m


def ruleset() -> m.RuleSet:
    rule = m.Rule(id="objects.test.rule", title="t", clause="3.1.3.5.4", category="contraband_gambling",
                  severity="high", sources=("objects",), match=None, path="x.yaml", line=1, content_hash="h1")
    return m.RuleSet((rule,), "d1")


def hits(keys: list[str], subject: str = "b/k1") -> pd.DataFrame:
    rows = [{"rule_id": "objects.test.rule", "subject_type": "object", "subject_id": subject, "account_id": "acc1",
             "event_time": pd.Timestamp("2026-11-01T00:00:00Z") + pd.Timedelta(minutes=i), "source_file": "f.csv",
             "source_line": i + 2, "hit_key": k, "evidence": json.dumps([{"field": "key", "text": "赌场"}])}
            for i, k in enumerate(keys)]
    return pd.DataFrame(rows, columns=HIT_COLUMNS)


def test_case_ids_are_stable_and_distinct() -> None:
    a = case_id("r.x", "object", "b/k")
    assert a == case_id("r.x", "object", "b/k")
    assert a != case_id("r.x", "object", "b/k2") and a != case_id("r.y", "object", "b/k")


def test_a_runs_case_ids_are_those_of_ids_case_id() -> None:
    # the fold hashes each distinct (rule, subject type, subject) once and writes the ids by column
    from pipeline.cases.fold import case_ids

    subjects = ["b/k", "b/k", "桶/赌场 图片.jpg", "", "b/\u00e9\U0001f600", "b/" + "x" * 300, "b/k2"]
    rules = ["r.x", "r.x", "r.y", "r.x", "r.z", "r.x", "r.x"]
    hits = pd.DataFrame({"rule_id": rules, "subject_type": ["object"] * 6 + ["domain"], "subject_id": subjects})
    assert case_ids(hits).to_pylist() == [case_id(r, t, s) for r, t, s in
                                          zip(rules, hits["subject_type"], subjects)]


def test_reapplying_the_same_hits_opens_nothing(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    r1 = store.begin_run(None, rs.digest)
    res1 = store.apply_hits(r1, hits(["e1", "e2"]), rs, max_evidence=5)
    r2 = store.begin_run(None, rs.digest)
    res2 = store.apply_hits(r2, hits(["e1", "e2"]), rs, max_evidence=5)
    assert (res1.new, res1.updated) == (1, 0)
    assert (res2.new, res2.updated, res2.unchanged) == (0, 0, 1)
    df = store.list_cases()
    assert len(df) == 1 and df.iloc[0]["hit_count"] == 2 and df.iloc[0]["status"] == "open"
    assert df.iloc[0]["run_ids"] == sorted([r1, r2])
    case = store.get_case(df.iloc[0]["case_id"])
    assert [h["action"] for h in case["history"]] == ["opened"]


def test_new_hits_update_and_evidence_is_bounded(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1", "e2"]), rs, max_evidence=3)
    res = store.apply_hits(store.begin_run(None, rs.digest), hits(["e2", "e3", "e4", "e5"]), rs, max_evidence=3)
    assert (res.new, res.updated) == (0, 1)
    case = store.get_case(case_id("objects.test.rule", "object", "b/k1"))
    assert case["hit_count"] == 5
    assert len(case["evidence"]) == 3 and case["evidence"][0]["hit_key"] == "e1"
    assert case["evidence"][0]["source_file"] == "f.csv" and case["evidence"][0]["source_line"] == 2
    assert [h["action"] for h in case["history"]] == ["opened", "hits_added"]


def test_filters_and_runs(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    run = store.begin_run("config.yaml", rs.digest)
    store.apply_hits(run, pd.concat([hits(["a"], "b/k1"), hits(["b"], "b/k2")]), rs, max_evidence=3)
    store.finish_run(run, "completed", {"rows_read": 10, "rows_parsed": 9, "rows_quarantined": 1, "cases_new": 2})
    assert len(store.list_cases(account="acc1")) == 2
    assert len(store.list_cases(account="nobody")) == 0
    assert len(store.list_cases(severity="high", status="open")) == 2
    runs = store.runs()
    assert runs.iloc[0]["rows_quarantined"] == 1 and runs.iloc[0]["status"] == "completed"


def test_schema_is_migrated_once(store_url: str) -> None:
    CaseStore(store_url).close()
    store = CaseStore(store_url)
    assert store.schema_versions() == [1, 2, 3, 4, 5]


def test_a_store_of_schema_4_keeps_its_hits_and_runs_through_migration_5(store_url: str) -> None:
    """Migration 5 rebuilds case_hits and case_runs: every hit key and run survives, so a rescan of
    the same events adds nothing and a new event counts once."""
    db = Database(store_url)
    run_migrations(db, MIGRATIONS[:4], table="schema_version", what="case store")
    rs = ruleset()
    with db.transaction():
        db.execute("INSERT INTO runs (run_id, started_at, status) VALUES ('R1', 'now', 'completed')")
        fold(db, "R1", hits(["e1", "e2"]), rs, 5, "2026-12-01T00:00:00+00:00")
    db.close()
    store = CaseStore(store_url)
    assert store.schema_versions() == [1, 2, 3, 4, 5]
    cid = case_id("objects.test.rule", "object", "b/k1")
    assert store.db.all("SELECT case_id, hit_key, run_id FROM case_hits ORDER BY hit_key") == [
        {"case_id": cid, "hit_key": "e1", "run_id": "R1"}, {"case_id": cid, "hit_key": "e2", "run_id": "R1"}]
    again = store.apply_hits(store.begin_run(None, rs.digest), hits(["e1", "e2"]), rs, max_evidence=5)
    more = store.apply_hits(store.begin_run(None, rs.digest), hits(["e2", "e3"]), rs, max_evidence=5)
    assert (again.new, again.unchanged, more.updated) == (0, 1, 1)
    case = store.get_case(cid)
    assert case["hit_count"] == 3 and len(case["run_ids"]) == 3 and case["run_ids"][0] == "R1"
    if store.dialect == "sqlite":
        tables = {r["name"]: r["sql"] for r in store.db.all("SELECT name, sql FROM sqlite_master WHERE type='table'")}
        assert "WITHOUT ROWID" in tables["case_hits"] and "WITHOUT ROWID" in tables["case_runs"]
    else:
        assert "fillfactor=60" in store.db.scalar("SELECT array_to_string(reloptions, ',') FROM pg_class"
                                                  " WHERE oid = 'cases'::regclass")


def test_transitions_are_checked_and_recorded(store_url: str) -> None:
    import pytest

    from pipeline.errors import StoreError

    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1"]), rs, max_evidence=3)
    cid = case_id("objects.test.rule", "object", "b/k1")
    store.transition(cid, "confirmed", by="alice", reason="clear gambling ad")
    with pytest.raises(StoreError) as exc:
        store.transition(cid, "confirmed", by="bob", reason="again")
    assert "cannot become confirmed" in str(exc.value)
    store.transition(cid, "dismissed", by="bob", reason="licensed lottery")
    store.transition(cid, "open", by="carol", reason="licence expired", action="reopen")
    history = store.get_case(cid)["history"]
    assert [(h["actor"], h["from_status"], h["to_status"]) for h in history] == [
        ("scan", None, "open"), ("alice", "open", "confirmed"), ("bob", "confirmed", "dismissed"),
        ("carol", "dismissed", "open")]


def test_resolved_case_reopens_when_found_again_and_auto_resolve(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    r1 = store.begin_run(None, rs.digest)
    store.apply_hits(r1, pd.concat([hits(["a"], "b/k1"), hits(["b"], "b/k2")]), rs, max_evidence=3)
    k1, k2 = case_id("objects.test.rule", "object", "b/k1"), case_id("objects.test.rule", "object", "b/k2")
    resolved = store.auto_resolve(r1, ["objects.test.rule"], {k1})
    assert resolved == [k2] and store.get_case(k2)["status"] == "resolved"
    res = store.apply_hits(store.begin_run(None, rs.digest), hits(["c"], "b/k2"), rs, max_evidence=3)
    assert res.reopened == 1 and store.get_case(k2)["status"] == "open"


def test_auto_resolved_case_reopens_when_the_same_event_comes_back(store_url: str) -> None:
    """The object version a full scan stopped finding is back: its hit key is known, the case reopens."""
    store = CaseStore(store_url)
    rs = ruleset()
    r1 = store.begin_run(None, rs.digest)
    store.apply_hits(r1, pd.concat([hits(["a"], "b/k1"), hits(["b1", "b2"], "b/k2")]), rs, max_evidence=3)
    k2 = case_id("objects.test.rule", "object", "b/k2")
    assert store.auto_resolve(store.begin_run(None, rs.digest), ["objects.test.rule"],
                              {case_id("objects.test.rule", "object", "b/k1")}) == [k2]
    res = store.apply_hits(store.begin_run(None, rs.digest),
                           pd.concat([hits(["a"], "b/k1"), hits(["b1", "b2"], "b/k2")]), rs, max_evidence=3)
    assert (res.new, res.updated, res.unchanged, res.reopened) == (0, 1, 1, 1)
    case = store.get_case(k2)
    assert case["status"] == "open" and case["hit_count"] == 2  # the same events are not counted again
    assert [h["action"] for h in case["history"]] == ["opened", "auto_resolved", "reopened"]
    assert case["history"][-1]["from_status"] == "resolved" and case["history"][-1]["to_status"] == "open"
    # seen again while open: unchanged, no further history
    res = store.apply_hits(store.begin_run(None, rs.digest), hits(["b1", "b2"], "b/k2"), rs, max_evidence=3)
    assert (res.updated, res.unchanged, res.reopened) == (0, 1, 0)
    assert len(store.get_case(k2)["history"]) == 3


def test_reviewer_resolved_case_reopens_on_a_new_event_and_dismissed_stays_dismissed(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), pd.concat([hits(["a"], "b/k1"), hits(["b"], "b/k2")]), rs,
                     max_evidence=3)
    k1, k2 = case_id("objects.test.rule", "object", "b/k1"), case_id("objects.test.rule", "object", "b/k2")
    store.transition(k1, "resolved", by="alice", reason="customer removed the content")
    store.transition(k2, "dismissed", by="bob", reason="licensed operator")
    # the events the reviewer saw, read again (a full rescan of old data): the decision stands
    res = store.apply_hits(store.begin_run(None, rs.digest), pd.concat([hits(["a"], "b/k1"), hits(["b"], "b/k2")]),
                           rs, max_evidence=3)
    assert (res.reopened, res.updated, res.unchanged) == (0, 0, 2)
    assert store.get_case(k1)["status"] == "resolved"
    # a new event: the violation is back
    res = store.apply_hits(store.begin_run(None, rs.digest), hits(["a", "a2"], "b/k1"), rs, max_evidence=3)
    assert res.reopened == 1 and store.get_case(k1)["status"] == "open" and store.get_case(k1)["hit_count"] == 2
    assert store.get_case(k2)["status"] == "dismissed" and store.get_case(k2)["hit_count"] == 1
    # a new event on the dismissed case is recorded, and it stays dismissed
    res = store.apply_hits(store.begin_run(None, rs.digest), hits(["b", "c"], "b/k2"), rs, max_evidence=3)
    assert (res.reopened, res.updated) == (0, 1)
    case = store.get_case(k2)
    assert case["status"] == "dismissed" and case["hit_count"] == 2
    assert [h["action"] for h in case["history"]] == ["opened", "dismissed", "hits_added"]


def test_folding_takes_as_many_statements_for_many_cases_as_for_few(store_url: str) -> None:
    """Set-based folding: the statements a run sends do not grow with its cases or hits."""
    def statements(n_cases: int) -> int:
        store = CaseStore(store_url)
        rs = ruleset()
        sent = 0
        for name in ("execute", "executemany", "bulk_insert"):
            def counted(*args, _f=getattr(store.db, name), **kw):
                nonlocal sent
                sent += 1
                return _f(*args, **kw)
            setattr(store.db, name, counted)
        run = store.begin_run(None, rs.digest)
        sent = 0
        store.apply_hits(run, pd.concat([hits([f"e{i}", f"f{i}"], f"b/n{n_cases}-{i}") for i in range(n_cases)]),
                         rs, max_evidence=3)
        store.close()
        return sent

    assert statements(3) == statements(300)


def test_one_run_with_every_outcome(store_url: str) -> None:
    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest),
                     pd.concat([hits(["a"], "b/same"), hits(["b"], "b/more"), hits(["c"], "b/back")]), rs,
                     max_evidence=3)
    back = case_id("objects.test.rule", "object", "b/back")
    store.transition(back, "resolved", by="alice", reason="removed")
    changed = m.RuleSet((m.Rule(**{**ruleset().rules[0].__dict__, "content_hash": "h2"}),), "d2")
    res = store.apply_hits(store.begin_run(None, changed.digest),
                           pd.concat([hits(["a"], "b/same"), hits(["b", "b2", "b3", "b4"], "b/more"),
                                      hits(["c", "c2"], "b/back"), hits(["d"], "b/new")]), changed, max_evidence=3)
    assert (res.new, res.updated, res.unchanged, res.reopened) == (1, 2, 1, 1)
    actions = {s: [h["action"] for h in store.get_case(case_id("objects.test.rule", "object", s))["history"]]
               for s in ("b/same", "b/more", "b/back", "b/new")}
    assert actions == {"b/same": ["opened", "rule_changed"], "b/more": ["opened", "rule_changed", "hits_added"],
                       "b/back": ["opened", "resolved", "rule_changed", "hits_added", "reopened"],
                       "b/new": ["opened"]}
    more = store.get_case(case_id("objects.test.rule", "object", "b/more"))
    assert more["hit_count"] == 4 and [e["hit_key"] for e in more["evidence"]] == ["b", "b2", "b3"]
    assert more["rule_hash"] == "h2" and more["first_event"] == "2026-11-01T00:00:00+00:00"
    assert more["last_event"] == "2026-11-01T00:03:00+00:00"


def test_merged_evidence_keeps_the_stored_items_as_written(store_url: str) -> None:
    """A known case gaining hits keeps its stored evidence (however it was serialized) and appends only
    the new events' items, up to the bound."""
    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1"]), rs, max_evidence=3)
    cid = case_id("objects.test.rule", "object", "b/k1")
    stored = store.get_case(cid)["evidence"]
    with store.transaction() as db:  # as an older version wrote it: json.dumps with spaces, a newline
        db.execute("UPDATE cases SET evidence = ? WHERE case_id = ?", (json.dumps(stored, indent=1) + "\n", cid))
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1", "e2", "e3", "e4"]), rs, max_evidence=3)
    evidence = store.get_case(cid)["evidence"]
    assert evidence[0] == stored[0]
    assert [i["hit_key"] for i in evidence] == ["e1", "e2", "e3"]


def test_a_case_seen_again_unchanged_moves_only_its_sighting(store_url: str) -> None:
    """A rescan that finds a case as it was updates when it was seen and nothing else; a known event
    reported at an earlier time is no mere sighting: the case's first event moves back."""
    store = CaseStore(store_url)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1", "e2"]), rs, max_evidence=5)
    cid = case_id("objects.test.rule", "object", "b/k1")
    with store.transaction() as db:  # an earlier sighting, so the next one can be told apart
        db.execute("UPDATE cases SET last_seen = '2026-01-01T00:00:00+00:00', updated_at = '2026-01-01T00:00:00+00:00'")
    before = store.get_case(cid)
    store.apply_hits(store.begin_run(None, rs.digest), hits(["e1", "e2"]), rs, max_evidence=5)
    after = store.get_case(cid)
    assert after["last_seen"] > before["last_seen"] and after["updated_at"] > before["updated_at"]
    for column in ("hit_count", "evidence", "first_event", "last_event", "first_seen", "status", "rule_hash"):
        assert after[column] == before[column], column

    earlier = hits(["e1", "e2"])
    earlier["event_time"] = earlier["event_time"] - pd.Timedelta(days=1)
    res = store.apply_hits(store.begin_run(None, rs.digest), earlier, rs, max_evidence=5)
    moved = store.get_case(cid)
    assert (res.new, res.updated, res.unchanged) == (0, 0, 1)
    assert moved["first_event"] == "2026-10-31T00:00:00+00:00" and moved["last_event"] == before["last_event"]
    assert moved["hit_count"] == 2
