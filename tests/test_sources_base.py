"""Reading stored files: a live file is copied, a rotated one mapped; gzip and missing files."""

import mmap
import os
import time
from pathlib import Path

import pytest

from pipeline.errors import SourceError
from pipeline.sources.base import gunzip, open_bytes, read_stored


def test_live_file_is_copied_and_rotated_file_mapped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"line one\nline two\n")
    live = read_stored(str(log))
    assert isinstance(live, bytes)  # may still be written or truncated in place: never mapped
    old = time.time() - 3600
    os.utime(log, (old, old))
    rotated = read_stored(str(log))
    assert isinstance(rotated, mmap.mmap) and rotated[:] == log.read_bytes()


def test_gzip_and_missing(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "a.log"  # gzip whatever the name says
    packed.write_bytes(gzip.compress(b"x\n" * 10))
    assert gunzip(str(packed), read_stored(str(packed))) == open_bytes(str(packed)) == b"x\n" * 10
    with pytest.raises(SourceError) as exc:
        read_stored(str(tmp_path / "nope.log"))
    assert "no such file" in str(exc.value)


@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_byte_positions_are_those_of_the_whole_buffer(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # found a chunk at a time, offset by each chunk's start: none lost or doubled at a chunk's edge
    import numpy as np

    import pipeline.sources.base as base

    monkeypatch.setattr(base, "_COUNT_CHUNK", chunk)
    rng = np.random.default_rng(5)
    buf = rng.choice(np.array([10, 13, 34, 65], dtype=np.uint8), size=1000)
    for byte in (10, 13, 34, 0):
        got = base.byte_positions(buf, byte)
        assert got.dtype == np.int64 and got.tolist() == np.flatnonzero(buf == byte).tolist()
    assert base.byte_positions(np.zeros(0, dtype=np.uint8), 10).tolist() == []
