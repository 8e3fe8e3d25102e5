"""The compiled scanner of JSON-lines logs against Arrow's reader: on lines of every kind of value
(escapes, nesting, booleans, exponents, long numbers, duplicate keys, wrong types, broken JSON) the
jsonl reader yields the same table and quarantine with the scanner as without it, and the scanner
takes the plain lines itself."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.sources import logs_jsonl, logs_jsonscan
from pipeline.sources.logs_common import LOG_TABLES
from pipeline.sources.logs_lines import read_lines

from test_sources_logs_fastpath import assert_same_table, tiers_only

KEYS = ("ts", "client_ip", "status", "bytes_sent", "request_time_ms", "uri", "path", "user_agent", "extra", "x")
VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(("2026-11-01T00:00:00Z", "2026-11-01T08:00:00+08:00", "2026-11-01T00:00:00", "nope")),
    st.text(alphabet='ab /?=é中"\\\t\x01', max_size=6), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(("a", "ts")), st.integers(), max_size=2),
)
RAW = st.sampled_from(('{"ts":"2026-11-01T00:00:00Z","status":200,"status":201}', '{"ts":"2026-11-01T00:00:00Z",}',
                       '{"ts":"2026-11-01T00:00:00Z"} {}', '{"ts" : "2026-11-01T00:00:00Z" , "status" : -0 }',
                       '{"ts":"2026-11-01T00:00:00Z","request_time_ms":-0.0}', '{"st\\u0061tus":1}', '[1]', '{}',
                       '{"ts":"2026-11-01T00:00:00Z","status":01}', '{"ts":"2026-11-01T00:00:00Z","bytes_sent":1.0}',
                       '{"ts":"2026-11-01T00:00:00Z","request_time_ms":1e3}', '{"ts":"2026-11-01T00:00:00Z",'
                       '"request_time_ms":123456789012.3456}', ' {"ts":"2026-11-01T00:00:00Z"}\t', '{"ts":tru}'))


@st.composite
def json_line(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(RAW)
    obj = {"ts": draw(st.sampled_from(("2026-11-01T00:00:00Z", "2026-11-02T01:02:03.25+05:30")))}
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6)):
        obj[key] = draw(VALUE)
    return json.dumps(obj, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from(((",", ":"), (", ", ": ")))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_line(), min_size=1, max_size=12))
def test_scanner_reads_lines_as_the_reader_does(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.log"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        table = LOG_TABLES.get("jsonl")(str(path), account_id="acct-1")
        with tiers_only():
            reference = LOG_TABLES.get("jsonl")(str(path), account_id="acct-1")
    assert_same_table(table, reference)


def test_scanner_takes_plain_lines_and_leaves_the_others(tmp_path: Path) -> None:
    path = tmp_path / "j.log"
    path.write_bytes(b'{"ts":"2026-11-01T00:00:00Z","status":200,"request_time_ms":1.25,"uri":"/a?b","extra":true}\n'
                     b'{"ts":"2026-11-01T00:00:00Z","uri":"/a\\"b"}\n'
                     b'{"ts":"2026-11-01T00:00:00Z","status":"200"}\n'
                     b'{"ts":"2026-11-01T00:00:00Z","status":2.5}\n'
                     b'{"ts":"2026-11-01T00:00:00Z","extra":{"a":1}}\n')
    lines, _ = read_lines(str(path))
    taken, table = logs_jsonscan.scan(lines.data, lines.starts, lines.ends, logs_jsonl.SCHEMA)
    assert taken.tolist() == [True, False, False, False, False]
    assert table.to_pylist()[0] == {name: None for name in logs_jsonl.SCHEMA.names} | {
        "ts": "2026-11-01T00:00:00Z", "status": 200, "request_time_ms": 1.25, "uri": "/a?b"}
    assert np.array_equal(np.flatnonzero(taken), [0])
