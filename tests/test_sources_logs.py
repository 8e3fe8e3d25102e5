"""Access-log readers: every format on hand-written lines, quarantine reasons, line accounting,
time zones at day edges, and the real Apache log."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

import pipeline.sources.logs  # noqa: F401  (registers every format)
from pipeline.records import LOGS
from pipeline.sources.base import LOG_FORMATS, ReadResult
from pipeline.sources.logs_lines import MAX_LINE_BYTES

DATA = Path(__file__).parent / "data" / "logs"


def read(fmt: str, path: Path | str, **kw: str) -> ReadResult:
    result = LOG_FORMATS.get(fmt)(str(path), **kw)
    assert list(result.records.columns) == list(LOGS)
    assert {c: str(t) for c, t in result.records.dtypes.items()} == LOGS
    return result


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_every_format_is_registered() -> None:
    assert set(LOG_FORMATS.names()) >= {"combined", "common", "qiniu-kodo", "tencent-cdn", "s3-access", "w3c", "jsonl"}


def test_combined_good_lines_all_fields() -> None:
    r = read("combined", DATA / "combined_good.log", domain="www.example.cn", account_id="acct-1")
    assert r.rows_read == 6 and len(r.quarantine) == 0
    rec = r.records
    first = rec.iloc[0]
    # +0800 half an hour after midnight is the previous day in UTC
    assert first.ts == utc("2026-10-31 16:30:00")
    assert (first.method, first.uri, first.path, first.query) == ("GET", "/a/b?x=1&y=2", "/a/b", "x=1&y=2")
    assert (first.status, first.bytes_sent, first.referer) == (200, 512, "https://ref.example/")
    assert first.user_agent == "Mozilla/5.0 (X11)"  # the CR of a CRLF line is not part of the value
    assert (first.domain, first.account_id, first.source_line) == ("www.example.cn", "acct-1", 1)
    second = rec.iloc[1]
    assert second.ts == utc("2026-10-31 23:59:59")
    assert second.bytes_sent == 0 and pd.isna(second.referer) and pd.isna(second.user_agent)
    assert pd.isna(second.query)
    assert rec.iloc[2].uri == '/say "hi"'            # \" unescaped
    absolute = rec.iloc[3]
    assert (absolute.path, absolute.query) == ("/p", "q")
    dash = rec.iloc[4]
    assert pd.isna(dash.method) and pd.isna(dash.uri) and dash.status == 400
    last = rec.iloc[5]                                  # no final newline, closing quote lost
    assert last.source_line == 6 and last.user_agent == "truncated agent"


def test_combined_bad_lines_are_quarantined_with_reasons_and_never_swallow_the_next() -> None:
    r = read("combined", DATA / "combined_bad.log")
    reasons = dict(zip(r.quarantine.source_line, r.quarantine.reason))
    assert reasons[2].startswith("unclosed quote")
    assert reasons[4] == "bad timestamp '[32/Foo/2026:08:00:00 +0800]'"
    assert reasons[5].startswith("wrong field count: 6 fields")
    assert reasons[6] == "blank line"
    assert reasons[7] == "bad status 'abc'"
    assert reasons[8] == "invalid UTF-8"
    assert list(r.records.source_line) == [1, 3, 9]
    assert list(r.records.client_ip) == ["10.1.0.1", "10.1.0.3", "10.1.0.8"]
    raw = r.quarantine.set_index("source_line").raw
    assert raw[8] == b'10.1.0.7 - - [01/Nov/2026:08:00:00 +0800] "GET /u HTTP/1.1" 200 5 "-" "Mo\xffzilla"'
    assert r.rows_read == 9 == len(r.records) + len(r.quarantine)


def test_over_long_line_is_quarantined_alone(tmp_path: Path) -> None:
    good = '10.0.0.1 - - [01/Nov/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "UA"'
    long = good.replace("GET /", "GET /" + "a" * MAX_LINE_BYTES)
    path = tmp_path / "long.log"
    path.write_text("\n".join([good, long, good]) + "\n")
    r = read("combined", path)
    assert list(r.records.source_line) == [1, 3]
    assert r.quarantine.reason.iloc[0].startswith("line longer than 65536 bytes")


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "any-name.log"
    path.write_bytes(gzip.compress((DATA / "common.log").read_bytes()))
    r = read("common", path)
    assert len(r.records) == 1 and r.quarantine.reason.iloc[0].startswith("wrong field count: 9 fields, expected 7")


def test_common() -> None:
    r = read("common", DATA / "common.log")
    row = r.records.iloc[0]
    assert row.ts == utc("2026-10-31 16:00:00") and row.bytes_sent == 2326
    assert pd.isna(row.referer) and pd.isna(row.user_agent)


def test_qiniu_kodo() -> None:
    r = read("qiniu-kodo", DATA / "qiniu.log", domain="img.example.cn")
    a, b = r.records.iloc[0], r.records.iloc[1]
    assert a.ts == utc("2013-05-15 16:00:00") and a.request_time_ms == 12.0
    assert (a.path, a.query, a.bytes_sent) == ("/g/a.jpg", "imageView/2/w/480", 0)   # "-" sent bytes is 0
    assert (a.referer, a.user_agent, a.domain) == ("http://iovip.qiniuio.com", "Dalvik/0.0", "img.example.cn")
    assert (b.status, b.bytes_sent) == (304, 37431)


def test_tencent_cdn_beijing_time_old_and_new_layouts() -> None:
    r = read("tencent-cdn", DATA / "tencent.log")
    new, old = r.records.iloc[0], r.records.iloc[1]
    assert new.ts == utc("2025-12-31 16:00:00")      # midnight in Beijing is the previous day in UTC
    assert (new.domain, new.method, new.cache_status, new.query) == ("www.test.com", "GET", "HIT", "a=1")
    assert old.ts == utc("2025-12-31 23:59:59") and pd.isna(old.method) and old.request_time_ms == 1.5
    assert old.referer == "http://r.example/"
    assert r.quarantine.reason.tolist() == ["wrong field count: 10 fields, expected 15 or 12"]


def test_s3_access_host_header_then_configured_domain() -> None:
    r = read("s3-access", DATA / "s3.log", domain="cfg.example")
    a, b = r.records.iloc[0], r.records.iloc[1]
    assert a.domain == "my-bucket.s3.us-west-1.amazonaws.com" and a.query == "versioning"
    assert (a.bytes_sent, a.request_time_ms, a.user_agent) == (113, 7.0, "S3Console/0.4")
    assert b.domain == "cfg.example" and b.status == 404 and b.bytes_sent == 0
    assert len(read("s3-access", DATA / "s3.log").records.query("domain == 'my-bucket'")) == 1


def test_w3c_directives_are_not_rows_and_values_are_decoded() -> None:
    r = read("w3c", DATA / "w3c.log")
    assert r.rows_read == 3                             # 5 physical lines, 2 directives
    row = r.records.iloc[0]
    assert row.ts == utc("2019-12-04 21:02:31") and row.source_line == 3
    assert row.user_agent == "Mozilla/5.0 (Windows NT 10.0)"
    assert (row.uri, row.query) == ("/index.html?a=1%20b", "a=1%20b")  # uri kept as requested
    assert (row.domain, row.cache_status, row.request_time_ms) == ("d111111abcdef8.cloudfront.net", "Hit", 1.0)
    reasons = r.quarantine.reason.tolist()
    assert reasons[0].startswith("wrong field count: 18 fields, expected 19")
    assert reasons[1] == "bad timestamp '2019-12-04 25:02:31'"


def test_w3c_data_before_header(tmp_path: Path) -> None:
    path = tmp_path / "w.log"
    path.write_text("2019-12-04\t21:02:31\n#Fields: date time\n")
    r = read("w3c", path)
    assert r.rows_read == 1 and r.quarantine.reason.iloc[0] == "data line before any #Fields directive"


def test_jsonl() -> None:
    r = read("jsonl", DATA / "jsonl.log", domain="d.example")
    assert list(r.records.source_line) == [1, 6]
    first = r.records.iloc[0]
    assert first.ts == utc("2026-11-01 00:00:00") and (first.path, first.query) == ("/a", "b=1")
    assert r.records.iloc[1].ts == utc("2026-11-01 00:00:00")  # no offset: UTC
    reasons = dict(zip(r.quarantine.source_line, r.quarantine.reason))
    assert reasons == {2: "field 'status' must be an integer, got '200'",
                       3: "invalid JSON: Expecting value at column 1",
                       4: "bad timestamp '2026-13-01T00:00:00Z'",
                       5: "not a JSON object but list"}


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    for fmt in LOG_FORMATS.names():
        r = read(fmt, path)
        assert r.rows_read == 0 and r.records.empty


def test_real_apache_log_parses_completely(corpus: Path) -> None:
    r = read("combined", corpus / "access-logs" / "apache_combined_2015.log")
    assert r.rows_read == 10_000 and len(r.records) == 10_000 and r.quarantine.empty
    assert r.records.ts.min() == utc("2015-05-17 10:05:00")
    assert r.records.status.isna().sum() == 0 and r.records.source_line.tolist() == list(range(1, 10_001))


def test_formats_without_a_host_on_the_line_are_the_ones_declared_so() -> None:
    from pipeline.sources.logs_common import NO_DOMAIN_FORMATS

    assert NO_DOMAIN_FORMATS == {"combined", "common", "qiniu-kodo"}
    # Their lines give a domain only for a proxy's absolute target; a path gives none.
    for fmt, name in (("combined", "combined_good.log"), ("common", "common.log"), ("qiniu-kodo", "qiniu.log")):
        rec = read(fmt, DATA / name).records
        relative = rec[~rec["uri"].fillna("").str.contains("://")]
        assert len(relative) and relative["domain"].isna().all(), fmt
    # The others carry the host on every line (Tencent: a field; S3: Host header or bucket; W3C: cs(Host)).
    for fmt, name in (("tencent-cdn", "tencent.log"), ("s3-access", "s3.log"), ("w3c", "w3c.log")):
        rec = read(fmt, DATA / name).records
        assert len(rec) and rec["domain"].notna().all(), fmt
