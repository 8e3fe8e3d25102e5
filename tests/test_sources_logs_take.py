"""take_ascending: the rows a log reader keeps, copied in runs, equal to a plain take."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pipeline.sources.logs_lines import take_ascending

VALUES = pa.array(["a", "bb", None, "ccc", "", "é", "f" * 40], type=pa.large_string())


@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4, 5, 6], [1, 2, 4], [0], [6], [], [0, 2, 4, 6], [3, 4, 5, 6]])
def test_equals_take(rows: list[int]) -> None:
    at = np.array(rows, dtype=np.int64)
    assert take_ascending(VALUES, at).equals(VALUES.take(pa.array(at, type=pa.int64())))


def test_many_runs_fall_back_to_take() -> None:
    values = pa.array([str(i) for i in range(2000)], type=pa.large_string())
    at = np.arange(0, 2000, 2, dtype=np.int64)   # 1,000 runs of one row
    assert take_ascending(values, at).to_pylist() == [str(i) for i in range(0, 2000, 2)]
