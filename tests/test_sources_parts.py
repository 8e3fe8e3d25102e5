"""Files read in parts read exactly as when read whole: every record, quarantined row, line number
and count; a part cut inside a quoted CSV value says so, and its file is then read whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import pipeline.sources.objects  # noqa: F401  (registers the object formats)
from pipeline.generate.objects import generate_objects
from pipeline.sources.base import (OBJECT_FORMATS, ReadResult, cut_inside_a_field, plan_parts, reading_part,
                                   shift_lines)

# format → file in the generated data, and whether its first line names the columns
SPLIT = {"csv": ("objects/generic.csv", True), "jsonl": ("objects/generic.jsonl", False),
         "qiniu-json": ("objects/qiniu/xinghe-media.json", False),
         "qshell": ("objects/qshell/bluefin-downloads.txt", False)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    generate_objects(out, rows=1500, seed=11)
    return out


def in_parts(fmt: str, path: str, part_bytes: int, header: bool) -> tuple[list[ReadResult], bool]:
    """Every part's result with the file's line numbers, and whether one was cut inside a field."""
    reader = OBJECT_FORMATS.get(fmt)
    parts = plan_parts(path, part_bytes, header=header)
    assert len(parts) > 1
    results, cut = [], False
    for part in parts:
        with reading_part(part):
            result = reader(path)
        cut |= cut_inside_a_field(result, part)
        results.append(shift_lines(result, part))
    return results, cut


def joined(results: list[ReadResult]) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    records = pd.concat([r.records for r in results], ignore_index=True)
    quarantine = pd.concat([r.quarantine for r in results], ignore_index=True)
    return records, quarantine.sort_values("source_line", kind="stable").reset_index(drop=True), \
        sum(r.rows_read for r in results)


@pytest.mark.parametrize("fmt", sorted(SPLIT))
@pytest.mark.parametrize("parts", [2, 3, 11])
def test_parts_read_as_the_whole_file(generated: Path, fmt: str, parts: int) -> None:
    rel, header = SPLIT[fmt]
    path = str(generated / rel)
    whole = OBJECT_FORMATS.get(fmt)(path)
    results, cut = in_parts(fmt, path, Path(path).stat().st_size // parts + 1, header)
    assert not cut and len(results) == parts
    records, quarantine, rows_read = joined(results)
    assert rows_read == whole.rows_read
    if fmt in ("csv", "qshell"):
        assert len(whole.quarantine) > 0   # the generator plants bad rows there: their lines are compared too
    pd.testing.assert_frame_equal(records, whole.records)
    pd.testing.assert_frame_equal(quarantine, whole.quarantine.sort_values("source_line", kind="stable")
                                  .reset_index(drop=True))


def test_a_quoted_value_across_a_cut_is_noticed(tmp_path: Path) -> None:
    rows = ["bucket,key,title"]
    for i in range(60):
        title = f'"two\nlines {i}"' if i % 10 == 5 else f"title {i}"
        rows.append(f"b,k{i}.jpg,{title}")
    rows.insert(30, 'b,stray.jpg,"a quote that never closes')
    path = tmp_path / "multi.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    whole = OBJECT_FORMATS.get("csv")(str(path))
    assert whole.rows_read == 61
    outcomes = set()
    for part_bytes in range(60, 900, 13):
        results, cut = in_parts("csv", str(path), part_bytes, True)
        outcomes.add(cut)
        if not cut:   # nothing was cut inside a value: exactly the whole file's reading
            records, quarantine, rows_read = joined(results)
            assert rows_read == whole.rows_read
            pd.testing.assert_frame_equal(records, whole.records)
            assert quarantine["reason"].tolist() == whole.quarantine["reason"].tolist()
            assert quarantine["source_line"].tolist() == whole.quarantine["source_line"].tolist()
    assert outcomes == {True, False}   # both cases met


def test_small_compressed_or_remote_files_are_read_whole(generated: Path, tmp_path: Path) -> None:
    csv = str(generated / "objects/generic.csv")
    assert plan_parts(csv, 10**9, header=True) == []
    gz = next((generated / "objects/s3").rglob("*.csv.gz"))
    assert plan_parts(str(gz), 100, header=False) == []
    assert plan_parts("s3://bucket/listing.csv", 100, header=True) == []
    parts = plan_parts(csv, 5_000, header=True)
    assert parts[0].start == 0 and parts[-1].end == Path(csv).stat().st_size
    assert all(a.end == b.start for a, b in zip(parts, parts[1:]))
    assert parts[0].header == b"" and all(p.header.startswith(b"key,") or b"key" in p.header for p in parts[1:])


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_each_part_starts_at_its_line_however_lines_are_counted(generated: Path, chunk: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the lines before each cut are counted a chunk at a time: chunk edges never lose or add one
    import pipeline.sources.base as base

    monkeypatch.setattr(base, "_COUNT_CHUNK", chunk)
    path = generated / "objects/generic.csv"
    data = path.read_bytes()
    parts = plan_parts(str(path), len(data) // 5 + 1, header=True)
    assert len(parts) == 5
    assert [p.first_line for p in parts] == [data[:p.start].count(b"\n") + 1 for p in parts]
