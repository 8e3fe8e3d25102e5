"""Object-metadata adapters: every format on small fixtures, every kind of bad row, counts reconciling."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import PipelineError, SourceError
from pipeline.records import OBJECTS, QUARANTINE
from pipeline.sources.base import OBJECT_FORMATS, ReadResult
from pipeline.sources.objects import split_lines

DATA = Path(__file__).parent / "data" / "objects"
S3_DATA = DATA / "s3/inventory/photos/daily/data/4f1c.csv.gz"


def read(fmt: str, path: Path | str, **kwargs: object) -> ReadResult:
    result = OBJECT_FORMATS.get(fmt)(str(path), **kwargs)
    assert list(result.records.columns) == list(OBJECTS)
    assert [str(t) for t in result.records.dtypes] == list(OBJECTS.values())
    assert list(result.quarantine.columns) == list(QUARANTINE)
    assert result.rows_read == len(result.records) + len(result.quarantine)
    return result


def reasons(result: ReadResult) -> dict[int, str]:
    return dict(zip(result.quarantine["source_line"].tolist(), result.quarantine["reason"].tolist()))


def row(result: ReadResult, key: str) -> pd.Series:
    match = result.records[result.records["key"] == key]
    assert len(match) == 1, f"{key!r} found {len(match)} times"
    return match.iloc[0]


def test_every_object_format_is_registered() -> None:
    assert set(OBJECT_FORMATS.names()) >= {"csv", "jsonl", "parquet", "qiniu-json", "qshell", "s3-inventory"}


def test_unknown_format_lists_the_valid_ones() -> None:
    with pytest.raises(PipelineError) as info:
        OBJECT_FORMATS.get("xml")
    assert "xml" in str(info.value)
    assert "qiniu-json" in str(info.value.hint) and "s3-inventory" in str(info.value.hint)


# ---- generic CSV -------------------------------------------------------------------------------

def test_csv_maps_canonical_columns_and_fills_bucket_and_account_only_where_missing() -> None:
    result = read("csv", DATA / "generic.csv", bucket="cfg-bucket", account_id="cfg-acc")
    assert result.rows_read == 3 and result.quarantine.empty  # header and trailing blank lines are not rows
    beach = row(result, "img/beach.jpg")
    assert (beach["account_id"], beach["bucket"], beach["size"]) == ("acc-1", "photos", 1024)
    assert beach["put_time"] == pd.Timestamp("2026-03-01T00:00:00Z")  # +08:00 converted to UTC
    assert beach["tags"] == "beach,sea" and json.loads(beach["labels"]) == {"pulp": 0.01}
    assert beach["source_file"] == str(DATA / "generic.csv") and beach["source_line"] == 2
    promo = row(result, "promo/百家乐.apk")
    assert promo["title"] == "line one\nline two" and promo["source_line"] == 3
    readme = row(result, "docs/readme.txt")
    assert readme["source_line"] == 5  # the quoted newline above makes this physical line 5
    assert (readme["account_id"], readme["bucket"]) == ("cfg-acc", "cfg-bucket")
    assert pd.isna(readme["size"]) and pd.isna(readme["etag"]) and pd.isna(readme["labels"])
    assert readme["put_time"] == pd.Timestamp("2026-03-03T10:00:00Z")  # no offset: UTC


def test_csv_bad_rows_are_quarantined_with_line_and_reason() -> None:
    result = read("csv", DATA / "generic_bad.csv")
    assert result.rows_read == 14
    assert result.records["key"].tolist() == ["ok/1.jpg", "ok/2.jpg", "ok/3.jpg", "ok/5.jpg"]
    assert result.records["source_line"].tolist() == [2, 7, 8, 16]
    got = reasons(result)
    assert got[3] == "size is not an integer: 'abc'"
    assert got[4].startswith("labels is not valid JSON:")
    assert got[5] == "expected 5 fields, got 2"
    assert got[6].startswith("unterminated quoted field")
    assert got[10] == "key is missing"
    assert got[11] == "size is negative: -5"
    assert got[12] == "invalid UTF-8 at byte 10"
    assert got[13] == "put_time is not an ISO 8601 timestamp: 'yesterday'"
    assert got[14] == "labels is not a JSON object: got list"
    assert got[15] == "unterminated quoted field (the file ends inside it)"
    raw = dict(zip(result.quarantine["source_line"], result.quarantine["raw"]))
    assert raw[12] == b"bad/utf8-\xff\xfe.jpg,6,,t,"  # raw bytes kept as they were, not replaced
    assert row(result, "ok/3.jpg")["title"] == "multi\nline"


def test_csv_unclosed_quote_does_not_swallow_following_lines(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('key,title\na,"open\nb,x\nc,y\nd,"also open\n', encoding="utf-8")
    result = read("csv", path)
    assert result.records["key"].tolist() == ["b", "c"]
    assert result.records["source_line"].tolist() == [3, 4]
    assert sorted(reasons(result)) == [2, 5]
    assert all(r.startswith("unterminated quoted field") for r in reasons(result).values())


def test_csv_literal_quote_inside_unquoted_field_is_a_value(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('key,title\nscreens/27" monitor.jpg,ok\nnext.jpg,fine\n', encoding="utf-8")
    result = read("csv", path)
    assert result.records["key"].tolist() == ['screens/27" monitor.jpg', "next.jpg"]


def test_csv_crlf_bom_and_stray_cr(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"\xef\xbb\xbfkey,size\r\na.jpg,1\r\nb\rjpg,2\r\nc.jpg,3\r\n\r\n")
    result = read("csv", path)
    assert result.records["key"].tolist() == ["a.jpg", "c.jpg"]
    assert result.records["size"].tolist() == [1, 3]
    assert list(reasons(result)) == [3]  # a lone CR inside a row is not a row break


def test_csv_header_without_key_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "nokey.csv"
    path.write_text("\nname,size\nx,1\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read("csv", path)
    assert info.value.location is not None and info.value.location.line == 2
    assert "key" in str(info.value) and "canonical" in str(info.value.hint)


def test_empty_csv_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("\n\n", encoding="utf-8")
    result = read("csv", path)
    assert result.rows_read == 0 and result.records.empty


# ---- generic JSONL -----------------------------------------------------------------------------

def test_jsonl_lists_objects_and_numbers() -> None:
    result = read("jsonl", DATA / "generic.jsonl", bucket="cfg-bucket")
    assert result.rows_read == 3 and result.quarantine.empty
    video = row(result, "v/赌场.mp4")
    assert video["tags"] == "casino,video" and video["size"] == 99 and video["bucket"] == "media"
    assert json.loads(video["labels"]) == {"pulp": 0.97, "terror": 0.01}
    plain = row(result, "v/plain.mp4")
    assert plain["size"] == 100 and json.loads(plain["labels"]) == {"pulp": 0.1}
    assert plain["bucket"] == "cfg-bucket" and pd.isna(plain["account_id"])
    assert row(result, "v/nolabels.mp4")["source_line"] == 4  # the blank line 3 is not a row


def test_jsonl_bad_lines() -> None:
    result = read("jsonl", DATA / "generic_bad.jsonl")
    assert result.rows_read == 10
    assert result.records["source_line"].tolist() == [1, 11]
    got = reasons(result)
    assert got[2] == "line is not a JSON object: Expecting ',' delimiter at column 30"
    assert got[3] == "line is not a JSON object: got array"
    assert got[4] == "invalid UTF-8 at byte 14"
    assert got[5] == "labels is not a JSON object: got list"
    assert got[6] == "size is not an integer: '12x'"
    assert got[7] == "key is missing"
    assert got[8] == "key is not a scalar: got object"
    assert got[10] == "put_time is not an ISO 8601 timestamp: 'not a time'"


# ---- generic Parquet ---------------------------------------------------------------------------

def test_parquet_lists_structs_maps_and_naive_timestamps(tmp_path: Path) -> None:
    table = pa.table({
        "key": ["a.jpg", "b.jpg", None, "d.jpg"],
        "size": pa.array([1, 2, 3, None], pa.int64()),
        "put_time": pa.array([pd.Timestamp("2026-03-01 08:00"), None, None, None], pa.timestamp("ms")),
        "tags": pa.array([["x", "y"], [], None, ["z"]], pa.list_(pa.string())),
        "labels": pa.array([{"pulp": 0.9, "terror": None}, None, None, {"pulp": 0.1, "terror": 0.2}],
                           pa.struct([("pulp", pa.float64()), ("terror", pa.float64())])),
        "unused": [1, 2, 3, 4],
    })
    path = tmp_path / "o.parquet"
    pq.write_table(table, path)
    result = read("parquet", path, account_id="acc-7")
    assert result.records["key"].tolist() == ["a.jpg", "b.jpg", "d.jpg"]
    assert result.records["source_line"].tolist() == [1, 2, 4]
    a = row(result, "a.jpg")
    assert a["tags"] == "x,y" and json.loads(a["labels"]) == {"pulp": 0.9}
    assert a["put_time"] == pd.Timestamp("2026-03-01T08:00:00Z") and a["account_id"] == "acc-7"
    assert json.loads(row(result, "d.jpg")["labels"]) == {"pulp": 0.1, "terror": 0.2}
    assert reasons(result) == {3: "key is missing"}
    assert json.loads(result.quarantine["raw"].iloc[0])["size"] == 3


def test_parquet_map_labels_and_invalid_json_labels(tmp_path: Path) -> None:
    table = pa.table({
        "key": ["m.jpg", "s.jpg"],
        "labels": pa.array([[("pulp", 0.5)], None], pa.map_(pa.string(), pa.float64())),
    })
    pq.write_table(table, tmp_path / "map.parquet")
    result = read("parquet", tmp_path / "map.parquet")
    assert json.loads(row(result, "m.jpg")["labels"]) == {"pulp": 0.5}
    pq.write_table(pa.table({"key": ["t.jpg"], "labels": ["{oops"]}), tmp_path / "str.parquet")
    bad = read("parquet", tmp_path / "str.parquet")
    assert bad.records.empty and reasons(bad)[1].startswith("labels is not valid JSON")


def test_unreadable_parquet_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match="broken.parquet"):
        read("parquet", path)


# ---- Qiniu -------------------------------------------------------------------------------------

def test_qiniu_json_maps_fields_and_100ns_put_time() -> None:
    result = read("qiniu-json", DATA / "qiniu.jsonl", bucket="kodo-b", account_id="1380000")
    assert result.rows_read == 5  # the marker-only v2 line (3) is not an object row
    first = row(result, "a/假期.jpg")
    # 16000000000000000 * 100 ns = 1600000000 s
    assert first["put_time"] == pd.Timestamp(1_600_000_000, unit="s", tz="UTC")
    assert (first["etag"], first["size"], first["mime_type"]) == ("FhQ1", 3, "image/jpeg")
    assert (first["uploader"], first["storage_class"], first["status"]) == ("user-9", "ARCHIVE", "disabled")
    assert first["md5"] == "5d41402abc4b2a76b9719d911017c592"
    assert (first["bucket"], first["account_id"]) == ("kodo-b", "1380000")
    wrapped = row(result, "b/b.txt")  # v2 {"item": ...} line; type and status absent mean 0
    assert (wrapped["storage_class"], wrapped["status"], wrapped["source_line"]) == ("STANDARD", "enabled", 2)
    got = reasons(result)
    assert got[4].startswith("putTime out of range: 1700000000")
    assert got[5].startswith("type is not a known storage class: '9'")
    assert got[6] == "fsize is not an integer: 'big'"


@pytest.mark.parametrize("name", ["qshell.txt", "qshell.txt.gz"])
def test_qshell_tab_separated_and_gzip(name: str) -> None:
    result = read("qshell", DATA / name, bucket="kodo-b")
    assert result.rows_read == 6
    assert result.records["key"].tolist() == ["a/假期 photo.jpg", "b/deep.bin", 'c/"quoted".txt']
    first = row(result, "a/假期 photo.jpg")
    assert first["put_time"] == pd.Timestamp(1_600_000_000, unit="s", tz="UTC")
    assert (first["size"], first["etag"], first["uploader"], first["storage_class"]) == (3, "FhQ1", "user-9", "STANDARD")
    deep = row(result, "b/deep.bin")
    assert deep["storage_class"] == "DEEP_ARCHIVE" and pd.isna(deep["uploader"]) and pd.isna(deep["status"])
    assert reasons(result) == {
        4: "expected 7 tab-separated fields, got 5",
        5: "FileSize is not an integer: 'abc'",
        6: "PutTime is negative: -5",
    }


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    whole = (DATA / "qshell.txt.gz").read_bytes()
    path = tmp_path / "cut.txt.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SourceError, match="cut.txt.gz"):
        read("qshell", path)


# ---- S3 Inventory ------------------------------------------------------------------------------

def test_s3_inventory_with_manifest_in_dated_sibling_folder() -> None:
    result = read("s3-inventory", S3_DATA, account_id="aws-1")
    assert result.rows_read == 5
    current, older = result.records.iloc[0], result.records.iloc[1]
    assert current["key"] == older["key"] == "假期 photo one.jpg"  # '+' and '%20' are both spaces
    assert (current["status"], older["status"]) == ("enabled", "noncurrent")
    assert (current["size"], current["etag"], current["bucket"]) == (2048, "d41d8cd98f00b204e9800998ecf8427e", "photos")
    assert current["put_time"] == pd.Timestamp("2026-02-28T10:00:00Z") and current["account_id"] == "aws-1"
    marker = row(result, "old/removed.png")
    assert marker["status"] == "deleted" and pd.isna(marker["size"])
    got = reasons(result)
    assert got[4].startswith("Key is not URL-encoded UTF-8")
    assert got[5] == "Size is not an integer: 'x'"


def test_s3_manifest_next_to_the_file_and_explicit(tmp_path: Path) -> None:
    manifest = {"fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    data = tmp_path / "part.csv"
    data.write_bytes(b'"b","%E8%B5%8C%E5%9C%BA%2B1.png","7","2026-01-01T00:00:00.000Z","e"\n')
    result = read("s3-inventory", data)
    assert row(result, "赌场+1.png")["status"] == "enabled"  # %2B is a literal plus
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(data, other / "part.csv")
    (tmp_path / "manifest.json").rename(tmp_path / "m.json")
    with pytest.raises(SourceError, match="no manifest.json"):
        read("s3-inventory", other / "part.csv")
    assert read("s3-inventory", other / "part.csv", manifest=str(tmp_path / "m.json")).rows_read == 1


def test_s3_orc_inventory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"fileFormat": "ORC", "fileSchema": "struct<>"}))
    (tmp_path / "x.orc").write_bytes(b"")
    with pytest.raises(SourceError, match="ORC"):
        read("s3-inventory", tmp_path / "x.orc")


# ---- shared machinery --------------------------------------------------------------------------

def test_split_lines_ignores_final_newline_and_strips_cr() -> None:
    lines = split_lines(b"a\r\nb\n\nc")
    assert [lines.raw(i) for i in range(len(lines))] == [b"a", b"b", b"", b"c"]
    assert len(split_lines(b"a\n")) == 1 and len(split_lines(b"")) == 0


def test_counts_reconcile_on_a_larger_generated_csv(tmp_path: Path) -> None:
    lines = ["key,size,title,labels"]
    expected_bad = set()
    for i in range(3000):
        if i % 97 == 5:
            lines.append(f"k{i},x{i},t,")
            expected_bad.add(i + 2)
        elif i % 211 == 7:
            lines.append(f'k{i},{i},"open')
            expected_bad.add(i + 2)
        else:
            lines.append(f'k{i},{i},"t, {i}","{{""pulp"": 0.5}}"')
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = read("csv", path)
    assert result.rows_read == 3000
    assert set(result.quarantine["source_line"]) == expected_bad
    good = result.records
    assert (good["key"].str[1:].astype(int) + 2 == good["source_line"]).all()
    assert (good["size"] == good["key"].str[1:].astype(int)).all()


@pytest.mark.parametrize("extra", ["", "bad/utf8-\udcff.jpg,1,t,\n"])
def test_a_file_of_many_blocks_keeps_line_numbers_of_rows_with_a_wrong_field_count(tmp_path: Path,
                                                                                    extra: str) -> None:
    """A file bigger than several CSV blocks is parsed on all cores, and read again in one thread
    when a row has a wrong field count (the threaded read does not number rows)."""
    from pipeline.sources.objects import CSV_BLOCK

    filler = "描述" * 40
    n = 3 * CSV_BLOCK // (len(filler.encode()) + 20) + 1000
    wrong = {7, n // 2, n - 1}
    lines = ["key,size,title,description"]
    for i in range(n):
        lines.append(f"k{i},{i}" if i in wrong else f"k{i},{i},标题{i},{filler}")
    text = "\n".join(lines) + "\n" + extra
    path = tmp_path / "many-blocks.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    assert path.stat().st_size > 3 * CSV_BLOCK
    result = read("csv", path)
    assert result.rows_read == n + (1 if extra else 0)
    expected = {i + 2: "expected 4 fields, got 2" for i in wrong}
    if extra:
        expected[n + 2] = "invalid UTF-8 at byte 10"
    assert reasons(result) == expected
    good = result.records
    assert len(good) == n - len(wrong)
    assert (good["key"].str[1:].astype(int) + 2 == good["source_line"]).all()
    assert (good["title"] == "标题" + good["key"].str[1:]).all()


@pytest.mark.parametrize("bad", ["x,12x,2026-11-01T00:00:00Z", "x,1,yesterday"])
def test_sizes_and_put_times_type_alike_whether_or_not_a_row_is_bad(tmp_path: Path, bad: str) -> None:
    """A clean column is typed in one pass; one bad row sends the whole column through the
    row-by-row checks, and every other row comes out the same either way."""
    good = ["a,0,2026-11-01T00:00:00Z", "b, 42 ,2026-11-01T08:00:00+08:00", "c,,2026-11-01T00:00:00.123456789Z",
            "d,000000000000000012,2026-11-01T00:00Z", "e,7,"]
    results = []
    for name, lines in (("clean", good), ("mixed", [*good, bad])):
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(["key,size,put_time", *lines]) + "\n", encoding="utf-8")
        results.append(read("csv", path))
    clean, mixed = results
    assert clean.quarantine.empty and len(mixed.quarantine) == 1
    assert row(clean, "b")["size"] == 42 and row(clean, "d")["size"] == 12 and pd.isna(row(clean, "c")["size"])
    assert row(clean, "b")["put_time"] == pd.Timestamp("2026-11-01T00:00:00Z") and pd.isna(row(clean, "e")["put_time"])
    assert row(clean, "c")["put_time"] == pd.Timestamp("2026-11-01T00:00:00.123456789Z")
    pd.testing.assert_frame_equal(clean.records.drop(columns=["source_file"]), mixed.records.drop(columns=["source_file"]))
