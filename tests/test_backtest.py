"""Backtests on generated data: a keyword added opens exactly the rows that contain it, a keyword
removed closes exactly those, retained-log windows are honoured, and nothing live is written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.backtest import BacktestError, backtest
from pipeline.cases.ids import case_id
from pipeline.config import Settings, load_settings
from pipeline.generate.logs import generate_logs
from pipeline.generate.objects import generate_objects
from pipeline.records import SCHEMAS, conform
from pipeline.retention import ingest, partitions_between
from pipeline.runner import load_formats, plan_tasks
from pipeline.sources.base import REGISTRIES

KEY_RULE = """\
rules:
  - id: objects.test.places
    title: Test rule over object keys
    clause: "3.1.3.5.4"
    category: contraband_gambling
    severity: low
    source: objects
    match:
      keywords: [{words}]
      fields: [key]
"""

STATUS_RULE = """\
rules:
  - id: logs.test.errors
    title: Test rule over response status
    clause: "3.1.3.7"
    category: attack_scanning
    severity: low
    source: logs
    match:
      field: status
      in: [{codes}]
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    out = tmp_path_factory.mktemp("bt")
    generate_objects(out, rows=1000, seed=5, rules_dir=root / "rules")
    return out


@pytest.fixture(scope="module")
def settings(generated: Path) -> Settings:
    return load_settings(str(generated / "config.yaml"))


@pytest.fixture(scope="module")
def objects(settings: Settings) -> pd.DataFrame:
    """Every canonical object record of the generated data, read independently of the backtest."""
    load_formats("objects")
    frames = []
    for task in plan_tasks(settings):
        if task.source == "objects":
            frames.append(conform(REGISTRIES["objects"].get(task.format)(task.path, **dict(task.extras)).records,
                                  SCHEMAS["objects"]))
    return pd.concat(frames, ignore_index=True)


def _subjects_with(objects: pd.DataFrame, word: str) -> set[str]:
    rows = objects[objects["key"].astype(str).str.contains(word, regex=False)]
    return set(rows["bucket"].astype(str) + "/" + rows["key"].astype(str))


def test_adding_a_keyword_opens_exactly_the_rows_that_contain_it(tmp_path: Path, settings: Settings,
                                                                  objects: pd.DataFrame) -> None:
    live = _write(tmp_path / "live" / "places.yaml", KEY_RULE.format(words="火锅, 团建"))
    draft = _write(tmp_path / "draft" / "places.yaml", KEY_RULE.format(words="火锅, 团建, 年会"))
    want = _subjects_with(objects, "年会")
    assert want, "the generated data should hold keys with the new word"

    result = backtest(settings, draft, against=live)

    assert set(result.opens["subject_id"]) == want
    assert result.closes.empty
    kept = set(result.diff.loc[result.diff["change"] == "kept", "subject_id"])
    assert kept == _subjects_with(objects, "火锅") | _subjects_with(objects, "团建")
    assert set(result.opens["case_id"]) == {case_id("objects.test.places", "object", s) for s in want}
    assert (result.opens["hits_live"] == 0).all() and (result.opens["hits_draft"] >= 1).all()
    assert result.opens["sample"].eq("年会").all()
    row = result.per_rule.set_index("rule_id").loc["objects.test.places"]
    assert (row["rule_change"], row["opens"], row["closes"], row["kept"]) == ("changed", len(want), 0, len(kept))
    assert row["draft_cases"] == len(want) + len(kept)


def test_removing_a_keyword_closes_exactly_those_rows(tmp_path: Path, settings: Settings,
                                                      objects: pd.DataFrame) -> None:
    live = _write(tmp_path / "live.yaml", KEY_RULE.format(words="火锅, 团建"))
    draft = _write(tmp_path / "draft.yaml", KEY_RULE.format(words="火锅"))

    result = backtest(settings, draft, against=live)

    assert set(result.closes["subject_id"]) == _subjects_with(objects, "团建") - _subjects_with(objects, "火锅")
    assert result.opens.empty
    assert (result.closes["hits_draft"] == 0).all()
    assert f"{len(result.closes)} would no longer be found" in result.summary()


def test_a_draft_folder_replaces_the_live_folder_and_a_file_only_its_rules(tmp_path: Path, settings: Settings) -> None:
    live = tmp_path / "live"
    _write(live / "a.yaml", KEY_RULE.format(words="火锅"))
    _write(live / "b.yaml", KEY_RULE.format(words="团建").replace("objects.test.places", "objects.test.lake"))
    draft_folder = tmp_path / "draft"
    _write(draft_folder / "a.yaml", KEY_RULE.format(words="火锅"))

    folder = backtest(settings, draft_folder, against=live)
    changes = dict(zip(folder.per_rule["rule_id"], folder.per_rule["rule_change"]))
    assert changes == {"objects.test.places": "unchanged", "objects.test.lake": "removed"}
    assert set(folder.closes["rule_id"]) == {"objects.test.lake"}

    single = backtest(settings, draft_folder / "a.yaml", against=live)
    assert list(single.per_rule["rule_id"]) == ["objects.test.places"]
    assert single.opens.empty and single.closes.empty


def test_the_live_case_store_is_neither_created_nor_written(tmp_path: Path, settings: Settings) -> None:
    live = _write(tmp_path / "live.yaml", KEY_RULE.format(words="火锅"))
    draft = _write(tmp_path / "draft.yaml", KEY_RULE.format(words="团建"))
    assert not (settings.state_path / "cases.db").exists()
    result = backtest(settings, draft, against=live)
    assert len(result.opens) and len(result.closes)
    assert result.diff["live_status"].isna().all()
    assert not settings.state_path.exists()


@pytest.fixture(scope="module")
def retained(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    out = tmp_path_factory.mktemp("bt-logs")
    truth = generate_logs(out, lines=2000, seed=3)
    state = out / "state"
    settings = load_settings(None, {"COMPLIANCE_RULES": str(out), "COMPLIANCE_STATE_DIR": str(state)})
    for f in truth["files"]:
        ingest(settings, [(str(out / f["path"]), f["format"])], domain=f.get("domain"))
    return settings


def test_a_window_of_retained_logs_is_backtested_over_exactly_that_window(tmp_path: Path, retained: Settings) -> None:
    live = _write(tmp_path / "live.yaml", STATUS_RULE.format(codes="404"))
    draft = _write(tmp_path / "draft.yaml", STATUS_RULE.format(codes="404, 403, 500"))
    start, end = pd.Timestamp("2026-11-01T12:00:00Z"), pd.Timestamp("2026-11-02T06:00:00Z")
    files = [str(f) for p in partitions_between(retained, None, None) for f in p.files]
    logs = pq.read_table(files, columns=["ts", "client_ip", "status"]).to_pandas()
    logs = logs[(logs["ts"] >= start) & (logs["ts"] < end)]
    ips = lambda codes: set(logs.loc[logs["status"].isin(codes), "client_ip"].astype(str))  # noqa: E731
    want_open = ips([403, 500]) - ips([404])
    assert want_open, "the generated logs should hold 403 / 500 responses in the window"

    result = backtest(retained, draft, against=live, start="2026-11-01T12:00:00", end="2026-11-02T14:00:00+08:00")

    assert set(result.opens["subject_id"]) == want_open
    assert set(result.diff.loc[result.diff["change"] == "kept", "subject_id"]) == ips([404])
    assert result.rows == len(logs)
    assert "retained logs" in result.data


def test_bad_windows_and_paths_are_errors_that_say_what_to_do(tmp_path: Path, settings: Settings,
                                                              retained: Settings) -> None:
    live = _write(tmp_path / "live.yaml", STATUS_RULE.format(codes="404"))
    with pytest.raises(BacktestError, match="window is empty") as exc:
        backtest(retained, live, against=live, start="2026-11-02", end="2026-11-01")
    assert exc.value.hint
    with pytest.raises(BacktestError, match="no retained log partition"):
        backtest(retained, live, against=live, start="2030-01-01", end="2030-01-02")
    with pytest.raises(BacktestError, match="no rule file or folder"):
        backtest(settings, tmp_path / "missing.yaml")
    objects_only = _write(tmp_path / "obj.yaml", KEY_RULE.format(words="火锅"))
    with pytest.raises(BacktestError, match="no log rule"):
        backtest(retained, objects_only, against=objects_only, start="2026-11-01")


def test_cli_lists_the_difference_and_writes_csv(tmp_path: Path, generated: Path, objects: pd.DataFrame) -> None:
    import pipeline.cli.backtest  # noqa: F401  (attaches the command to `rules`)
    from pipeline.cli import main

    live = _write(tmp_path / "live.yaml", KEY_RULE.format(words="火锅"))
    draft = _write(tmp_path / "draft.yaml", KEY_RULE.format(words="年会"))
    csv = tmp_path / "diff.csv"
    res = CliRunner().invoke(main, ["--config", str(generated / "config.yaml"), "rules", "backtest", str(draft),
                                    "--against", str(live), "--limit", "1", "--csv", str(csv)])
    assert res.exit_code == 0, res.output
    opens, closes = _subjects_with(objects, "年会"), _subjects_with(objects, "火锅")
    assert f"would open ({len(opens)})" in res.output
    assert f"would no longer find ({len(closes)})" in res.output
    assert len(opens) >= 2 and f"... {len(opens) - 1} more" in res.output
    written = pd.read_csv(csv, encoding="utf-8-sig")
    assert set(written.loc[written["change"] == "opens", "subject_id"]) == opens
    assert set(written.loc[written["change"] == "closes", "subject_id"]) == closes

    broken = _write(tmp_path / "broken.yaml", KEY_RULE.format(words="火锅").replace("severity: low", "severity: huge"))
    res = CliRunner().invoke(main, ["--config", str(generated / "config.yaml"), "rules", "backtest", str(broken)])
    assert res.exit_code == 2
    assert "broken.yaml:" in res.output and "severity" in res.output
