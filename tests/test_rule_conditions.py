"""Named selections with a condition expression, and case-insensitive wildcards (the Sigma shape)."""

from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import RuleLoadError
from pipeline.matchers.evaluate import CompiledRules
from pipeline.records import LOGS, conform
from pipeline.rules.loader import load_rules

RULE = """\
rules:
  - id: logs.web.path_traversal
    title: Path traversal (in the shape of a SigmaHQ web-server rule)
    clause: "3.1.3.7"
    category: attack_injection
    severity: high
    source: logs
    selections:
      selection_uri:
        field: uri
        matches: ["*/../../*", "*/etc/passwd*", "*%2e%2e%2f*"]
      selection_method:
        field: method
        matches: [get, post]
      filter_ok:
        field: status
        in: [404]
    condition: "1 of selection_* and not filter_ok"
"""


def frame() -> pd.DataFrame:
    return conform(pd.DataFrame([
        {"method": "GET", "uri": "/a/../../etc/x", "status": 200},
        {"method": "HEAD", "uri": "/plain", "status": 200},
        {"method": "get", "uri": "/static/app.js", "status": 200},
        {"method": "PUT", "uri": "/ETC/PASSWD", "status": 200},
        {"method": "PUT", "uri": "/a/../../b", "status": 404},
    ]), LOGS)


def test_selections_condition_and_wildcards(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE, encoding="utf-8")
    rs = load_rules(str(tmp_path))
    compiled = CompiledRules(rs.rules, "logs")
    (_, mask, _), = compiled.evaluate(frame())
    # row 0 and 3 by uri (case-insensitive), row 2 by method; row 4 is filtered out by status
    assert mask.nonzero()[0].tolist() == [0, 2, 3]


@pytest.mark.parametrize("condition, message", [
    ("selection_uri and", "ends too early"),
    ("selection_uri or nope", "unknown selection 'nope'"),
    ("(selection_uri", "not closed"),
    ("1 of other_*", "no selection matches 'other_*'"),
])
def test_bad_conditions_are_located(tmp_path: Path, condition: str, message: str) -> None:
    (tmp_path / "r.yaml").write_text(RULE.replace('"1 of selection_* and not filter_ok"', f'"{condition}"'),
                                     encoding="utf-8")
    with pytest.raises(RuleLoadError) as exc:
        load_rules(str(tmp_path))
    text = str(exc.value)
    assert "r.yaml:18:16" in text and message in text
