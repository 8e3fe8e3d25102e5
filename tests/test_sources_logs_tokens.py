"""The compiled cutter of strict layout lines against the layout's strict regex: a line is strict
exactly when the regex matches it, and then each field is the text the regex gives it."""

from __future__ import annotations

import re
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.sources.logs  # noqa: F401  (registers every format)
from pipeline.sources import logs_combined, logs_s3, logs_tencent
from pipeline.sources.logs_layout import Layout, _KINDS
from pipeline.sources.logs_lines import read_lines
from pipeline.sources.logs_tokens import cut

# Bytes that decide what a field may hold: delimiters, brackets, digits, dots, dashes, white space.
PIECES = st.sampled_from(['"', " ", "[", "]", "-", ".", "0", "7", "2026", "\t", "\f", "a", "中", "GET /x", "\\"])
LINES = st.lists(PIECES, min_size=0, max_size=40).map("".join)


def _capturing(layout: Layout) -> re.Pattern[str]:
    """The strict regex with a group around every field, to read what it gives each one."""
    parts = []
    for i, f in enumerate(layout.fields):
        strict = _KINDS[f.kind][0]
        parts.append(f'"(?P<f{i}>[^"]*)"' if f.kind == "quoted" else f"(?P<f{i}>{strict})")
    body = " ".join(parts)
    return re.compile(f"^{body}(?: .*)?$" if layout.tail else f"^{body}$", re.DOTALL)


def _mutations(layout: Layout, clean: str) -> st.SearchStrategy[str]:
    return st.one_of(LINES, st.builds(lambda a, b, c: clean[:a] + b + clean[a:][c:], st.integers(0, len(clean)),
                                      LINES, st.integers(0, 4)))


CLEAN = {
    "combined": '1.2.3.4 - bob [01/Nov/2026:10:00:00 +0800] "GET /a?b=1 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X)"',
    "tencent-cdn": '20261101100000 1.2.3.4 www.example.cn /a.mp4 2048 1 2 200 - 0.25 "UA x" "bytes=0-" GET HTTP/1.1 hit',
    "s3-access": ('owner bucket [01/Nov/2026:10:00:00 +0000] 1.2.3.4 req ID OP key "GET /k HTTP/1.1" 200 - 10 10 5 4 '
                  '"-" "aws-cli" - host SigV4 TLS AuthHeader bucket.s3.amazonaws.com extra "q"'),
}
LAYOUTS = {"combined": logs_combined.LAYOUT, "tencent-cdn": logs_tencent.NEW, "s3-access": logs_s3.WITH_HOST}


@pytest.mark.parametrize("fmt", sorted(LAYOUTS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cut_agrees_with_the_strict_regex(fmt: str, data: st.DataObject) -> None:
    layout = LAYOUTS[fmt]
    lines = data.draw(st.lists(_mutations(layout, CLEAN[fmt]), min_size=1, max_size=6)) + [CLEAN[fmt]]
    lines = [ln.replace("\n", " ").replace("\r", "") for ln in lines]
    lines = [ln for ln in lines if ln.strip()]
    with tempfile.NamedTemporaryFile(suffix=".log") as fh:
        fh.write("\n".join(lines).encode() + b"\n")
        fh.flush()
        read, _ = read_lines(fh.name)
        ok, columns = cut(read, [f.kind for f in layout.fields], tail=layout.tail)
    pattern = _capturing(layout)
    strict = re.compile(layout.strict_regex(), re.DOTALL)
    for i, text in enumerate(read.text.to_pylist()):
        match = pattern.match(text)
        assert bool(ok[i]) == bool(strict.match(text)) == bool(match), text
        if match:
            assert [c[i].as_py() for c in columns] == [match.group(f"f{k}") for k in range(len(layout.fields))]
        else:
            assert all(c[i].as_py() == "" for c in columns)
