"""Streams adapter: canonical STREAMS records, bad rows quarantined with their line, account from the config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.records import QUARANTINE, STREAMS
from pipeline.sources import streams  # noqa: F401  (registers the formats)
from pipeline.sources.base import STREAM_FORMATS, ReadResult


def _check(result: ReadResult) -> ReadResult:
    assert list(result.records.columns) == list(STREAMS)
    assert [str(t) for t in result.records.dtypes] == list(STREAMS.values())
    assert list(result.quarantine.columns) == list(QUARANTINE)
    assert result.rows_read == len(result.records) + len(result.quarantine)
    return result


def test_streams_csv(tmp_path: Path) -> None:
    path = tmp_path / "streams.csv"
    path.write_text("account_id,hub,stream_key,title,description,started_at,status\n" + "\n".join([
        "acct-1,live-1,room-1,周末户外直播,,2026-11-01T12:00:00+08:00,live",
        ",live-1,room-2,\"百家乐, 真人荷官\",带你赢,1793419200,ended",
        "acct-1,live-1,,no key,,2026-11-01T12:00:00Z,live",
        "acct-1,live-1,room-4,bad time,,yesterday,live",
        "acct-1,live-1,room-5,bad status,,2026-11-01T12:00:00Z,paused",
        "acct-1,live/2,room-6,slash in hub,,2026-11-01T12:00:00Z,live",
        "acct-1,live-1,room-7,too,many,fields,2026-11-01T12:00:00Z,live",
    ]) + "\n", encoding="utf-8")
    r = _check(STREAM_FORMATS.get("csv")(str(path), account_id="acct-9"))
    assert r.records["stream_key"].tolist() == ["room-1", "room-2"]
    assert r.records["account_id"].tolist() == ["acct-1", "acct-9"]      # the config fills the blank one
    assert r.records["started_at"].tolist() == [pd.Timestamp("2026-11-01T04:00:00Z"),
                                                 pd.Timestamp(1793419200, unit="s", tz="UTC")]
    assert r.records["title"].iloc[1] == "百家乐, 真人荷官"
    why = dict(zip(r.quarantine["source_line"].tolist(), r.quarantine["reason"].tolist()))
    assert set(why) == {4, 5, 6, 7, 8}
    assert "stream_key is missing" in why[4] and "started_at" in why[5] and "status" in why[6]
    assert "'/'" in why[7] and "expected 7" in why[8]


def test_streams_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "streams.jsonl"
    path.write_bytes(b"\n".join([
        json.dumps({"account_id": "acct-2", "hub": "live-2", "stream_key": "r1", "title": "\u6e38\u620f\u76f4\u64ad",
                    "started_at": "2026-11-01T00:00:00Z", "status": "LIVE"}).encode(),
        b"",
        json.dumps({"hub": "live-2", "stream_key": "r2", "title": ["a"]}).encode(),
        b"{\"hub\": \"live-2\", \"stream_key\": \"r3\", \"title\": \"\xff\xfe\"}",
    ]) + b"\n")
    r = _check(STREAM_FORMATS.get("jsonl")(str(path)))
    assert r.records["status"].tolist() == ["live"]
    assert r.records["source_line"].tolist() == [1]
    assert sorted(r.quarantine["source_line"].tolist()) == [3, 4]
