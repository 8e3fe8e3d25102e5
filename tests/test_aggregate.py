"""Aggregate rules: windows, thresholds at the edge, partials combining across files exactly."""

import json

import numpy as np
import pandas as pd

from pipeline.matchers import aggregate
from pipeline.records import LOGS, conform
from pipeline.rules import model as m


def rule(agg: m.Aggregate) -> m.Rule:
    return m.Rule(id="logs.t.r", title="t", clause="3.1.3.7", category="attack_scanning", severity="low",
                  sources=("logs",), match=None, path="x", line=1, content_hash="h", aggregate=agg)


def logs(times: list[str], ip: str = "1.2.3.4", **extra: object) -> pd.DataFrame:
    df = pd.DataFrame({"ts": pd.to_datetime(times, utc=True, format="ISO8601"), "client_ip": ip, "source_file": "a.log",
                       "source_line": range(1, len(times) + 1), **extra})
    return conform(df, LOGS)


def burst(n: int, start: str, spacing_s: float) -> list[str]:
    t0 = pd.Timestamp(start)
    return [(t0 + pd.Timedelta(seconds=i * spacing_s)).isoformat() for i in range(n)]


COUNT = rule(m.Aggregate(("client_ip",), 60, count_gte=50))


def run(r: m.Rule, *frames: pd.DataFrame) -> pd.DataFrame:
    parts = [aggregate.partials(r, f, [True] * len(f)) for f in frames]
    return aggregate.evaluate(r, pd.concat(parts, ignore_index=True))


def test_threshold_exactly_met_and_just_missed() -> None:
    assert len(run(COUNT, logs(burst(50, "2026-11-01T10:00:05Z", 0.5)))) == 1
    assert len(run(COUNT, logs(burst(49, "2026-11-01T10:00:05Z", 0.5)))) == 0


def test_burst_across_a_minute_boundary_is_caught() -> None:
    # 60 requests from 10:00:40 to 10:01:09.5: no calendar minute holds 50 of them
    got = run(COUNT, logs(burst(60, "2026-11-01T10:00:40Z", 0.5)))
    assert len(got) == 1 and got.iloc[0]["value"] >= 50


def test_slow_traffic_is_not_a_burst() -> None:
    assert len(run(COUNT, logs(burst(200, "2026-11-01T10:00:00Z", 5)))) == 0


def test_partials_from_two_files_combine() -> None:
    times = burst(60, "2026-11-01T10:00:00Z", 0.5)
    whole = run(COUNT, logs(times))
    split = run(COUNT, logs(times[:25]), logs(times[25:]))
    assert len(whole) == len(split) == 1 and whole.iloc[0]["value"] == split.iloc[0]["value"]


def test_groups_are_separate() -> None:
    times = burst(30, "2026-11-01T10:00:00Z", 1)
    assert len(run(COUNT, logs(times, ip="1.1.1.1"), logs(times, ip="2.2.2.2"))) == 0


def test_distinct_and_daily_sum() -> None:
    distinct = rule(m.Aggregate(("client_ip",), 600, distinct_field="path", distinct_gte=100))
    times = burst(150, "2026-11-01T10:00:00Z", 2)
    many = logs(times, path=[f"/p{i % 120}" for i in range(150)])
    few = logs(times, path=[f"/p{i % 20}" for i in range(150)])
    assert len(run(distinct, many)) == 1 and len(run(distinct, few)) == 0
    daily = rule(m.Aggregate(("domain",), 86400, sum_field="bytes_sent", sum_gte=1e9))
    day = logs(burst(10, "2026-11-01T01:00:00Z", 3600), domain="a.com", bytes_sent=[2e8] * 10)
    got = run(daily, day)
    assert len(got) == 1 and got.iloc[0]["value"] == 2e9
    assert got.iloc[0]["window_start"] == pd.Timestamp("2026-11-01T00:00:00Z")
    assert got.iloc[0]["window_end"] == pd.Timestamp("2026-11-02T00:00:00Z")


def test_spike_above_own_baseline() -> None:
    spike = rule(m.Aggregate(("domain",), 3600, count_gte=50, baseline_factor=10))
    hours = [f"2026-11-01T{h:02d}:10:00Z" for h in range(24) for _ in range(8)]  # 8 an hour
    quiet = logs(hours, domain="a.com")
    loud = logs(burst(120, "2026-11-01T13:20:00Z", 10), domain="a.com")
    busy_everyday = logs([f"2026-11-01T{h:02d}:10:00Z" for h in range(24) for _ in range(130)], domain="b.com")
    got = run(spike, quiet, loud, busy_everyday)
    assert list(got["domain"]) == ["a.com"]
    assert got.iloc[0]["window_start"] <= pd.Timestamp("2026-11-01T13:20:00Z") < got.iloc[0]["window_end"]


def test_a_file_evaluated_in_batches_gives_the_hits_and_episodes_of_one_pass(root) -> None:
    # the scan evaluates big files scan.batch_rows records at a time; batches must not change a thing
    from pipeline.runner import aggregate_hits, compiled_for, evaluate_batches
    from pipeline.rules.loader import load_rules
    from pipeline.sources.base import REGISTRIES
    import pipeline.sources.logs  # noqa: F401  (registers the log formats)

    ruleset = load_rules(root / "rules")
    path = root / "examples" / "sample" / "logs" / "combined" / "www.shop00.com.cn.access.log"
    records = conform(REGISTRIES["logs"].get("combined")(str(path), domain="www.shop00.com.cn").records, LOGS)
    compiled = compiled_for(ruleset, "logs")
    whole_hits, whole_parts = evaluate_batches(compiled, records, len(records))
    batch_hits, batch_parts = evaluate_batches(compiled, records, 37)
    assert len(whole_hits) and whole_parts

    def canon(hits: pd.DataFrame) -> pd.DataFrame:
        return hits.sort_values(["rule_id", "hit_key"]).reset_index(drop=True).astype(str)

    pd.testing.assert_frame_equal(canon(batch_hits), canon(whole_hits))
    assert batch_parts.keys() == whole_parts.keys()
    episodes = 0
    for rule_id in whole_parts:
        rule = ruleset.by_id(rule_id)
        whole, batched = aggregate_hits(rule, whole_parts[rule_id]), aggregate_hits(rule, batch_parts[rule_id])
        pd.testing.assert_frame_equal(canon(batched), canon(whole))
        episodes += len(whole)
    assert episodes   # the sample file holds aggregate violations: the comparison above compared some


# --- the window's guarantee, as a property --------------------------------------------------------

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

T0 = pd.Timestamp("2026-11-01T00:00:00Z")


@st.composite
def bursts(draw: st.DrawFn) -> tuple[int, int, list[pd.Timestamp], list[int]]:
    """A window below a day, a threshold, and ``threshold`` events at random instants inside a
    span of at most the window less a quarter, starting anywhere, cut into files at random."""
    window = draw(st.sampled_from([1, 7, 60, 61, 90, 300, 3599, 3600, 7200]) | st.integers(1, 86399))
    count = draw(st.integers(1, 40))
    start_ms = draw(st.integers(0, 2 * 86400 * 1000))
    span_ms = draw(st.integers(0, window * 750))                        # ≤ 3/4 of the window
    offsets = sorted(draw(st.lists(st.integers(0, span_ms), min_size=count, max_size=count)))
    offsets[0], offsets[-1] = 0, span_ms                                # the burst spans all of it
    times = [T0 + pd.Timedelta(milliseconds=start_ms + o) for o in offsets]
    cuts = sorted(draw(st.lists(st.integers(0, count), max_size=3)))
    return window, count, times, cuts


def files_of(times: list[pd.Timestamp], cuts: list[int]) -> list[pd.DataFrame]:
    bounds = [0, *cuts, len(times)]
    return [logs([t.isoformat() for t in times[a:b]]) for a, b in zip(bounds, bounds[1:]) if b > a]


@settings(max_examples=300, deadline=None)
@given(bursts())
# a window that is no whole number of 4 s: buckets of whole seconds (15 s for 61 s) missed this one
@example((61, 2, [T0 + pd.Timedelta(milliseconds=14_900), T0 + pd.Timedelta(milliseconds=60_650)], []))
def test_a_burst_within_three_quarters_of_a_window_is_always_caught(case: tuple[int, int, list[pd.Timestamp],
                                                                                 list[int]]) -> None:
    window, count, times, cuts = case
    caught = run(rule(m.Aggregate(("client_ip",), window, count_gte=count)), *files_of(times, cuts))
    assert len(caught) == 1 and caught.iloc[0]["value"] == count
    assert caught.iloc[0]["window_start"] <= times[0] and times[-1] < caught.iloc[0]["window_end"]
    if count > 1:   # one event fewer than the threshold is never a burst, wherever it falls
        assert run(rule(m.Aggregate(("client_ip",), window, count_gte=count + 1)), *files_of(times, cuts)).empty
        assert run(rule(m.Aggregate(("client_ip",), window, count_gte=count)), *files_of(times[1:], [])).empty


def test_a_short_window_is_not_widened() -> None:
    # a 1 s window once had 1 s buckets, four to a window: two requests 3 s apart were a burst
    one_second = rule(m.Aggregate(("client_ip",), 1, count_gte=2))
    assert run(one_second, logs(burst(2, "2026-11-01T10:00:00Z", 3))).empty
    assert len(run(one_second, logs(burst(2, "2026-11-01T10:00:00.100Z", 0.7)))) == 1


# --- partials against a row-by-row reduction ------------------------------------------------------

FILES = ["a.log", 'we"ird\\名.log', None]   # a quote, a backslash and CJK must be escaped as json.dumps does


def reference_partials(r: m.Rule, df: pd.DataFrame, mask: list[bool]) -> list[tuple[object, ...]]:
    """The partials as one would write them by hand: a row at a time, groups in order of first row."""
    agg = r.aggregate
    assert agg is not None
    size, _ = aggregate.sub_buckets(agg)
    out: dict[tuple[object, ...], list[object]] = {}
    for keep, row in zip(mask, df.itertuples(index=False)):
        ts, ip = row.ts, row.client_ip
        if not keep or pd.isna(ts) or pd.isna(ip) or (agg.distinct_field and pd.isna(row.path)):
            continue
        bucket = int(ts.value // 1_000_000) // size
        sample = ("" if pd.isna(row.source_file) else row.source_file) + ":" + \
                 ("" if pd.isna(row.source_line) else str(row.source_line))
        if agg.distinct_field:
            out.setdefault((ip, bucket, row.path), [sample])
            continue
        add = (0.0 if pd.isna(row.bytes_sent) else float(row.bytes_sent)) if agg.sum_field else 1.0
        entry = out.setdefault((ip, bucket), [0.0, []])
        entry[0] += add
        entry[1].append(sample)
    if agg.distinct_field:
        return [(*key, s[0]) for key, s in out.items()]
    return [(*key, v, json.dumps(s[:aggregate.SAMPLE_LINES])) for key, (v, s) in out.items()]


@st.composite
def batches(draw: st.DrawFn) -> tuple[pd.DataFrame, list[bool]]:
    n = draw(st.integers(0, 60))
    ms = draw(st.lists(st.none() | st.integers(0, 600_000), min_size=n, max_size=n))
    df = pd.DataFrame({
        "ts": pd.Series([None if x is None else T0 + pd.Timedelta(milliseconds=x) for x in ms], dtype="datetime64[ns, UTC]"),
        "client_ip": draw(st.lists(st.sampled_from(["1.1.1.1", "2.2.2.2", "3.3.3.3", None]), min_size=n, max_size=n)),
        "path": draw(st.lists(st.sampled_from(["/a", "/b", "/c", None]), min_size=n, max_size=n)),
        "bytes_sent": draw(st.lists(st.none() | st.integers(0, 10**9), min_size=n, max_size=n)),
        "source_file": draw(st.lists(st.sampled_from(FILES), min_size=n, max_size=n)),
        "source_line": draw(st.lists(st.none() | st.integers(1, 10**6), min_size=n, max_size=n)),
    })
    return conform(df, LOGS), draw(st.lists(st.booleans(), min_size=n, max_size=n))


@settings(max_examples=150, deadline=None)
@given(batches(), st.sampled_from([1, 7, 60, 86400]))
def test_partials_are_those_of_a_row_by_row_reduction(batch: tuple[pd.DataFrame, list[bool]], window: int) -> None:
    df, mask = batch
    for agg in (m.Aggregate(("client_ip",), window, count_gte=3),
                m.Aggregate(("client_ip",), window, sum_field="bytes_sent", sum_gte=1.0),
                m.Aggregate(("client_ip",), window, distinct_field="path", distinct_gte=2)):
        got = aggregate.partials(rule(agg), df, mask)
        assert list(got.columns) == ["client_ip", "bucket", "value", "samples"]
        assert [tuple(row) for row in got.itertuples(index=False)] == reference_partials(rule(agg), df, mask)


def test_episode_samples_are_the_first_lines_of_its_buckets() -> None:
    # two files of one burst: the evidence names each bucket's first lines, in bucket order, ten at most
    times = burst(60, "2026-11-01T10:00:00Z", 0.5)
    first, second = logs(times[:30]), logs(times[30:]).assign(source_file='b "2".log')
    got = run(COUNT, first, second)
    samples = json.loads(got.iloc[0]["samples"])
    # 15 s buckets of 30 lines each: the first five of bucket 10:00:00 (a.log) then of 10:00:15 (b "2".log)
    assert samples == [f"a.log:{i}" for i in range(1, 6)] + [f'b "2".log:{i}' for i in range(1, 6)]


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 12), st.integers(-1, 6)), min_size=1, max_size=60),
       k=st.sampled_from([1, 4]))
def test_distinct_windows_packed_as_by_rows(rows: list[tuple[int, int, int]], k: int) -> None:
    """Codes packed into one integer count the distinct values per window as the frame of rows does
    (a group code too large to pack takes that path)."""
    from pipeline.matchers.aggregate import _distinct_per_window

    gid, bucket, value = (np.array(c, dtype=np.int64) for c in zip(*rows))
    packed = _distinct_per_window(gid, bucket, value, k)
    by_rows = _distinct_per_window(gid + 2**60, bucket, value, k).assign(g=lambda f: f["g"] - 2**60)
    order = ["g", "wstart"]
    pd.testing.assert_frame_equal(packed.sort_values(order).reset_index(drop=True),
                                  by_rows.sort_values(order).reset_index(drop=True))
    # and as counted a window at a time, keeping the windows of at least ``at_least`` values
    by_window: dict[tuple[int, int], set[int]] = {}
    for g, b, v in rows:
        for offset in range(k):
            by_window.setdefault((g, b - offset), set()).add(v)
    for at_least in (1, 2, 3):
        want = sorted((g, w, len(vs)) for (g, w), vs in by_window.items() if len(vs) >= at_least)
        for got in (_distinct_per_window(gid, bucket, value, k, at_least),
                    _distinct_per_window(gid + 2**60, bucket, value, k, at_least).assign(g=lambda f: f["g"] - 2**60)):
            assert sorted(map(tuple, got[["g", "wstart", "value"]].to_numpy().tolist())) == want


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=1, max_size=40),
       spans=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30), st.integers(1, 8)), min_size=1, max_size=8))
def test_rows_inside_spans_as_by_pairs(rows: list[tuple[int, int]], spans: list[tuple[int, int, int]]) -> None:
    """The rows of an episode's group and buckets, found by one search, are those a pairwise check finds
    (spans of one group may overlap; a group too large to pack takes the merge)."""
    from pipeline.matchers.aggregate import _inside_spans

    gid, bucket = (np.array(c, dtype=np.int64) for c in zip(*rows))
    sg, begin, length = (np.array(c, dtype=np.int64) for c in zip(*spans))
    want = [i for i, (g, b) in enumerate(rows) if any(g == s and f <= b < f + n for s, f, n in spans)]
    assert _inside_spans(gid, bucket, sg, begin, begin + length).tolist() == want
    assert _inside_spans(gid + 2**61, bucket, sg + 2**61, begin, begin + length).tolist() == want
