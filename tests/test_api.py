"""The analysts' API against a real scan of generated objects and logs in a temporary state folder."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from pipeline import api  # noqa: E402
from pipeline.cases.store import open_store  # noqa: E402
from pipeline.cli.generate import _add_logs_to_config  # noqa: E402
from pipeline.errors import ConfigError, QueryError  # noqa: E402
from pipeline.generate.logs import generate_logs  # noqa: E402
from pipeline.generate.objects import generate_objects  # noqa: E402
from pipeline.query import read_audit  # noqa: E402
from pipeline.retention import partitions_between  # noqa: E402

pytestmark = [pytest.mark.cluster]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Path:
    out = tmp_path_factory.mktemp("api")
    generate_objects(out, rows=1000, seed=9, rules_dir=root / "rules")
    _add_logs_to_config(out / "config.yaml", generate_logs(out, lines=2000, seed=9))
    return out


@pytest.fixture(scope="module")
def an(generated: Path, dask_client) -> api.Analyst:  # type: ignore[no-untyped-def]
    analyst = api.connect(generated / "config.yaml")
    assert not analyst.has_scan()
    assert analyst.ensure_scanned(client=dask_client) is True
    assert analyst.ensure_scanned(client=dask_client) is False   # a completed scan exists: no second one
    return analyst


def test_find_config_walks_up_from_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("rules: rules\nstate_dir: s\n", encoding="utf-8")
    deep = tmp_path / "notebooks" / "drafts"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert api.find_config() == tmp_path / "config.yaml"
    assert api.connect().settings.state_path == tmp_path / "s"
    other = tmp_path / "other.yaml"
    other.write_text("rules: r\nstate_dir: t\n", encoding="utf-8")
    monkeypatch.setenv("COMPLIANCE_CONFIG", str(other))
    assert api.find_config() == other
    monkeypatch.delenv("COMPLIANCE_CONFIG")
    with pytest.raises(ConfigError, match="no config.yaml") as exc:
        api.find_config(Path("/"))
    assert "COMPLIANCE_CONFIG" in str(exc.value.hint)


def test_cases_filters_and_types(an: api.Analyst) -> None:
    every = an.cases()
    assert len(every) > 20 and "evidence" not in every.columns
    assert isinstance(every["first_event"].dtype, pd.DatetimeTZDtype) and str(every["first_event"].dt.tz) == "UTC"
    category = every["category"].value_counts().index[0]
    some = an.cases(category=category, status="open")
    assert len(some) == (every["category"] == category).sum() and set(some["category"]) == {category}
    account = every["account_id"].dropna().iloc[0]
    assert set(an.cases(account=account)["account_id"]) == {account}
    cut = every["first_event"].sort_values().iloc[len(every) // 2]
    early, late = an.cases(until=cut), an.cases(since=cut.isoformat())
    assert len(early) + len(late) == len(every)
    assert (early["first_event"] < cut).all() and (late["first_event"] >= cut).all()


def test_evidence_and_history_of_one_case(an: api.Analyst) -> None:
    cases = an.cases(subject_type="object")
    cid = cases["case_id"].iloc[0]
    stored = an.case(cid)
    ev = an.evidence(cid)
    assert len(ev) == sum(len(item["matches"]) for item in stored["evidence"])
    assert list(ev.columns[:4]) == ["hit_key", "source_file", "source_line", "event_time"]
    assert (ev["source_line"] >= 1).all() and ev["pattern"].notna().all()
    assert ev["text"].iloc[0] in stored["subject_id"] or ev["field"].iloc[0] != "key"
    hist = an.history(cid)
    assert hist["action"].iloc[0] == "opened" and hist["to_status"].iloc[0] == "open"
    assert isinstance(hist["at"].dtype, pd.DatetimeTZDtype)


def test_runs_carry_the_scan_counts(an: api.Analyst) -> None:
    runs = an.runs()
    assert list(runs["status"]) == ["completed"]
    run = runs.iloc[0]
    assert run["rows_read"] == run["rows_parsed"] + run["rows_quarantined"]
    assert run["cases_new"] == len(an.cases()) and run["duration_s"] > 0


def test_hits_per_rule_and_per_pattern_add_up(an: api.Analyst) -> None:
    cases = an.cases()
    per_rule = an.hits_per_rule()
    assert per_rule["cases"].sum() == len(cases) and per_rule["hits"].sum() == cases["hit_count"].sum()
    assert per_rule["hits"].is_monotonic_decreasing
    assert (per_rule["open"] == per_rule["cases"]).all()

    matches = an.matches()
    per_pattern = an.hits_per_pattern()
    assert per_pattern["matches"].sum() == len(matches)
    rule = "objects.gambling.promotion"
    one = an.hits_per_pattern(rule)
    assert set(one["rule_id"]) == {rule}
    assert one["matches"].sum() == len(an.matches(rule)) == (matches["rule_id"] == rule).sum()
    assert (one["dismissed"] == 0).all()

    # a reviewer dismisses one case: its pattern's dismissed share moves, the others' do not
    target = an.matches(rule).iloc[0]
    store = open_store(an.settings.state_path, an.settings.case_store)
    try:
        store.transition(target["case_id"], "dismissed", by="reviewer", reason="licensed operator")
    finally:
        store.close()
    after = an.hits_per_pattern(rule).set_index(["kind", "pattern"])
    row = after.loc[(target["kind"], target["pattern"])]
    assert row["dismissed"] == 1 and row["dismissed_share"] == pytest.approx(1 / row["cases"])
    assert after["dismissed"].sum() == 1
    assert an.hits_per_rule().set_index("rule_id").loc[rule, "dismissed"] == 1


def test_query_logs_is_audited_like_the_cli(an: api.Analyst, tmp_path: Path) -> None:
    with pytest.raises(QueryError):
        an.query_logs(request_ref=None, authority="网信办", domain="x.example.cn")
    assert read_audit(an.settings)[-1]["action"] == "query.refused"

    # the scan stored the logs it read (retention.ingest_on_scan): ingesting them again adds nothing
    assert an.retained_days()
    ingested = an.ingest_configured_logs()
    assert ingested["rows_stored"].sum() == 0 and ingested["files_skipped"].sum() == len(ingested) > 0

    files = [str(f) for p in partitions_between(an.settings, None, None) for f in p.files]
    everything = pq.read_table(files).to_pandas()
    domain = everything["domain"].value_counts().index[0]
    res = an.query_logs(request_ref="GA-2026-0042", authority="公安局网安支队", domain=domain,
                        fields=["ts", "client_ip", "uri"], out_dir=tmp_path / "export", requested_by="analyst")
    assert len(res.df) == (everything["domain"] == domain).sum() and list(res.df.columns) == ["ts", "client_ip", "uri"]
    assert res.manifest["rows"] == len(res.df) and res.manifest["request_ref"] == "GA-2026-0042"
    assert json.loads((res.out_dir / "manifest.json").read_text(encoding="utf-8"))["rows"] == len(res.df)
    last = read_audit(an.settings)[-1]
    assert last["action"] == "query" and last["details"]["request_ref"] == "GA-2026-0042"


def test_backtest_through_the_api_leaves_the_cases_alone(an: api.Analyst, tmp_path: Path, root: Path) -> None:
    draft = tmp_path / "gambling.yaml"
    text = (root / "rules" / "objects" / "gambling.yaml").read_text(encoding="utf-8")
    draft.write_text(text.replace("../lexicons/", str(root / "rules" / "lexicons") + "/")
                     .replace("[博彩, 赌场, 赌博, 六合彩]", "[博彩, 赌场, 赌博, 六合彩, 年会]"), encoding="utf-8")
    before = an.cases()
    result = an.backtest(draft)
    assert len(result.opens) > 0 and set(result.opens["sample"]) == {"年会"}
    assert result.closes.empty
    kept = result.diff[result.diff["change"] == "kept"]
    assert kept["live_status"].notna().all()       # annotated from the live store
    pd.testing.assert_frame_equal(an.cases().drop(columns="run_ids"), before.drop(columns="run_ids"))


def test_plots_return_axes_with_the_data(an: api.Analyst) -> None:
    ax = an.plot_cases_over_time(freq="W")
    assert len(ax.patches) > 0 and ax.get_ylabel() == "cases"
    ax = an.plot_top_accounts(n=3)
    assert len(ax.get_yticklabels()) == 3
    ax = an.plot_hits_per_pattern("objects.gambling.promotion", n=4)
    assert len(ax.patches) == min(4, len(an.hits_per_pattern("objects.gambling.promotion")))
    fig, given = plt.subplots()
    assert an.plot_top_accounts(ax=given) is given
    plt.close("all")
