"""The compiled scanner of JSON-lines logs against Arrow's reader alone (``FAST_PATH`` False):
the same records, values and quarantine, whatever mix of plain and odd lines a file holds."""

from __future__ import annotations

import json
import math
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.sources.logs  # noqa: F401  (registers every format)
from pipeline.sources import logs_jsonl
from pipeline.sources.logs_common import LOG_READERS

TEXT = st.text(alphabet='ab /?=&"\\\t中é\x01', max_size=8)
NUMBER = st.one_of(st.integers(-10**17, 10**17), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0, -0.0, 1.5, 589.0, 0.1, 123456789.123456]))
VALUE = st.one_of(TEXT, NUMBER, st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
TS = st.sampled_from(["2026-11-01T00:00:01.268299+08:00", "2026-11-01T00:00:01Z", "2026-11-01 00:00:01",
                      "2026-13-45T00:00:00Z", "yesterday"])
KEYS = st.sampled_from(list(logs_jsonl.SCHEMA.names) + ["extra", "ts"])


@st.composite
def line(draw: st.DrawFn) -> str:
    record: dict[str, object] = {"ts": draw(TS)}
    for key in draw(st.lists(KEYS, max_size=6)):
        want = logs_jsonl.SCHEMA.field(key).type if key in logs_jsonl.SCHEMA.names else None
        plain = TEXT if want is not None and str(want) == "large_string" else \
            st.integers(0, 10**6) if want is not None and str(want) == "int64" else NUMBER
        record[key] = draw(st.one_of(plain, VALUE) if draw(st.booleans()) else plain)
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    tweak = draw(st.sampled_from(["", "dup", "cut", "space", "exp"]))
    if tweak == "dup":
        text = text[:-1] + ', "status": 200}'
    elif tweak == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif tweak == "space":
        text = " " + text.replace(":", " : ", 1) + " "
    elif tweak == "exp":
        text = text[:-1] + ', "bytes_sent": 1e3}'
    return text


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line(), min_size=1, max_size=12))
def test_scanner_reads_what_the_reader_reads(lines: list[str]) -> None:
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as fh:
        fh.write("\n".join(lines).encode() + b"\n")
        fh.flush()
        fast = LOG_READERS.get("jsonl")(fh.name)
        logs_jsonl.FAST_PATH = False
        try:
            reference = LOG_READERS.get("jsonl")(fh.name)
        finally:
            logs_jsonl.FAST_PATH = True
    assert fast.quarantine == reference.quarantine
    assert fast.records.schema == reference.records.schema
    for name in fast.records.column_names:
        got, want = fast.records[name].to_pylist(), reference.records[name].to_pylist()
        assert all(_same(a, b) for a, b in zip(got, want, strict=True)), name


@pytest.mark.parametrize("text", ['{"status": 200, "ts": "2026-11-01T00:00:01Z", "uri": "/a?b=1"}',
                                  '{"ts": "2026-11-01T00:00:01Z", "request_time_ms": 0.1, "bytes_sent": -0}'])
def test_plain_lines_are_read_by_the_scanner(text: str) -> None:
    from pipeline.sources.logs_jsonscan import scan
    data = text.encode()
    taken, table = scan(data, [0], [len(data)], logs_jsonl.SCHEMA)
    assert taken.tolist() == [True]
    expected = json.loads(text)
    assert {k: v for k, v in table.to_pylist()[0].items() if v is not None} == expected
