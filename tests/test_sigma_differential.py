"""The SigmaHQ web-server rules against the reference implementation: pySigma + its SQLite backend.

Logs are generated from the rules themselves (tests/sigma_logs.py) in combined, W3C and JSON lines
and read by the project's own parsers; the engine's matches are compared, rule by rule and line by
line, with the rows pySigma's SQL selects from a table holding the same parsed records under the
Sigma field names of the configured mapping (NULL where a field is unmapped or missing), with the raw
line as the keyword (full-text) column and columns COLLATE NOCASE as pySigma's runtime makes them.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.config import SigmaSettings, load_settings
from pipeline.matchers.evaluate import CompiledRules
from pipeline.rules.loader import load_rules
from pipeline.rules.model import RuleSet
from pipeline.rules.sigma.load import logsource_entry
from pipeline.rules.sigma.mapping import LOG_FORMAT, FieldMapping
from pipeline.sources import logs as _formats  # noqa: F401  (registers the log formats)
from pipeline.sources.base import LOG_FORMATS
from pipeline.sources.logs_common import RAW, keeping_raw

sys.path.insert(0, str(Path(__file__).parent))

from sigma_logs import corpus_records, write_logs  # noqa: E402

pytest.importorskip("sigma.backends.sqlite", reason="pysigma-backend-sqlite is in the test extra")


def _sigma_dir(corpus: Path) -> Path:
    d = corpus / "sigma-webserver"
    if not d.is_dir():
        pytest.skip(f"no Sigma rules at {d}")
    return d


@pytest.fixture(scope="module")
def sigma_rules(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RuleSet]:
    folder = _sigma_dir(corpus)
    empty = tmp_path_factory.mktemp("no-own-rules")
    return folder, load_rules(str(empty), sigma_folders=(str(folder),), sigma=load_settings(None).sigma)


def read_logs(paths: dict[str, Path]) -> pd.DataFrame:
    """The files parsed by the project's readers, each record with its raw line and log format (as a scan has)."""
    frames = []
    with keeping_raw():
        for fmt, path in paths.items():
            frames.append(LOG_FORMATS.get(fmt)(str(path), domain="www.example.cn").records.assign(**{LOG_FORMAT: fmt}))
    return pd.concat(frames, ignore_index=True)


def ours(ruleset: RuleSet, df: pd.DataFrame) -> dict[str, set[tuple[str, int]]]:
    compiled = CompiledRules(ruleset.for_source("logs"), "logs")
    results, _ = compiled.evaluate_all(df)
    keys = list(zip(df["source_file"], df["source_line"].astype(int)))
    return {rule.id: {keys[i] for i in mask.nonzero()[0]} for rule, mask, _ in results}


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def sigma_table(df: pd.DataFrame, settings: SigmaSettings) -> pd.DataFrame:
    """The records under Sigma field names: each format's rows through that format's configured mapping."""
    mapping = FieldMapping.of(logsource_entry(settings, {"category": "webserver"}))
    names = sorted({*mapping.base, *(f for mp in mapping.formats.values() for f in mp), "cs-content-type"})
    out = pd.DataFrame({"source_file": df["source_file"], "source_line": df["source_line"].astype(int).astype(str),
                        RAW: df[RAW]}).astype(object)
    for name in names:
        col = pd.Series([None] * len(df), dtype=object)
        for fmt, rows in df.groupby(LOG_FORMAT).groups.items():
            canon = mapping.formats.get(str(fmt), mapping.base).get(name)
            if canon:
                vals = df.loc[rows, canon]
                vals = vals.astype("Int64") if name in NUMERIC else vals.astype("string")
                col.loc[rows] = vals.astype(object).where(vals.notna(), None)
        out[name] = col
    return out


NUMERIC = {"sc-status", "sc-bytes"}   # typed as a flattened table types them: gt / lt compare numbers


def reference(folder: Path, ruleset: RuleSet, df: pd.DataFrame,
              settings: SigmaSettings | None = None) -> dict[str, set[tuple[str, int]]]:
    """Each rule's matched (file, line) by pySigma's SQLite queries over the same records."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    rows = sigma_table(df, settings or load_settings(None).sigma)
    db = sqlite3.connect(":memory:")
    db.create_function("REGEXP", 2, _regexp, deterministic=True)
    cols = list(rows.columns)
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" INTEGER' if c in NUMERIC else f'"{c}" TEXT COLLATE NOCASE'
                                                 for c in cols) + ")")
    db.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * len(cols))})", rows.itertuples(index=False, name=None))
    backend = sqliteBackend(fulltext_field=RAW)
    by_path = {r.path: r.id for r in ruleset.rules}
    out: dict[str, set[tuple[str, int]]] = {}
    for path, rid in by_path.items():
        collection = SigmaCollection.from_yaml(Path(path).read_text(encoding="utf-8"))
        found: set[tuple[str, int]] = set()
        for query in backend.convert(collection):
            sql = query.replace("SELECT * FROM", "SELECT source_file, source_line FROM", 1)
            found |= {(f, int(n)) for f, n in db.execute(sql)}
        out[rid] = found
    return out


def agreement(mine: dict[str, set[tuple[str, int]]], theirs: dict[str, set[tuple[str, int]]]) -> list[str]:
    """One line per rule: lines matched by the engine, by pySigma, whether the sets are equal, per file."""
    lines = []
    for rid in sorted(theirs):
        per_file = {}
        for f in sorted({Path(f).name for f, _ in mine[rid] | theirs[rid]}):
            a = sum(1 for x, _ in mine[rid] if Path(x).name == f)
            b = sum(1 for x, _ in theirs[rid] if Path(x).name == f)
            per_file[f] = f"{a}/{b}"
        verdict = "equal" if mine[rid] == theirs[rid] else "DIFFERENT"
        lines.append(f"{rid}: ours {len(mine[rid])} / pySigma {len(theirs[rid])} {verdict}  "
                     + " ".join(f"{f}={v}" for f, v in per_file.items()))
    return lines


@pytest.fixture(scope="module")
def verdicts(sigma_rules: tuple[Path, RuleSet], tmp_path_factory: pytest.TempPathFactory):
    folder, ruleset = sigma_rules
    paths = write_logs(corpus_records(folder), tmp_path_factory.mktemp("sigma-logs"))
    df = read_logs(paths)
    return ruleset, df, ours(ruleset, df), reference(folder, ruleset, df)


def test_every_rule_loads_unmodified(sigma_rules: tuple[Path, RuleSet]) -> None:
    folder, ruleset = sigma_rules
    assert len(list(folder.glob("*.yml"))) == len(ruleset.rules) == 86
    assert not ruleset.skipped
    log4j = ruleset.by_id("sigma.web.web_cve_2021_44228_log4j")
    assert log4j.meta["sigma"]["id"] == "5ea8faa8-db8b-45be-89b0-151b84c82702"
    assert log4j.severity == "high" and log4j.clause == "3.1.3.7" and log4j.category == "attack_web"
    assert log4j.subject == "client_ip" and log4j.meta["sigma"]["author"]


def test_agrees_with_pysigma_rule_by_rule_line_by_line(verdicts) -> None:
    ruleset, df, mine, theirs = verdicts
    assert len(df) > 4000 and df[RAW].notna().all()
    files = {"access.log", "cloudfront.log", "access.jsonl", "tencent.log"}
    assert set(df["source_file"].map(lambda p: Path(p).name)) == files
    report = agreement(mine, theirs)
    print("\nper-rule agreement (lines matched: ours / pySigma; per file ours/pySigma)")
    print("\n".join(report))
    print(f"{sum('equal' in r for r in report)} of {len(report)} rules agree line by line")
    disagreements = {rid: (sorted(mine[rid] - theirs[rid])[:3], sorted(theirs[rid] - mine[rid])[:3])
                     for rid in theirs if mine[rid] != theirs[rid]}
    assert not disagreements, disagreements
    # the generated logs exercise the rules: nearly every rule matches lines, and not all of them
    matched = [rid for rid in theirs if theirs[rid]]
    # one rule reads cs-content-type, which no access-log format carries: NULL, so it cannot match
    assert len(matched) >= 85, sorted(set(theirs) - set(matched))
    assert all(len(theirs[rid]) < len(df) / 4 for rid in theirs)
    # ... in every format: a rule matching in one file and not in the others would go unchecked there
    for name in files:
        in_file = [rid for rid in theirs if any(Path(f).name == name for f, _ in theirs[rid])]
        assert len(in_file) >= 80, (name, len(in_file))


def test_the_real_benign_log_matches_no_sigma_rule(sigma_rules: tuple[Path, RuleSet], corpus: Path) -> None:
    folder, ruleset = sigma_rules
    log = corpus / "access-logs" / "apache_combined_2015.log"
    if not log.is_file():
        pytest.skip(f"no {log}")
    df = read_logs({"combined": log})
    assert len(df) == 10_000
    hits = {rid: len(rows) for rid, rows in ours(ruleset, df).items() if rows}
    assert hits == {}
    assert {rid: rows for rid, rows in reference(folder, ruleset, df).items() if rows} == {}


# Rules written for this test: the specification's corners the SigmaHQ web-server rules do not reach.
EDGE_RULES = {
    "escapes": r"""
title: Escaped wildcards and backslashes
id: 00000000-0000-4000-8000-000000000001
logsource: {category: webserver}
detection:
    star: {cs-uri-query|contains: 'a\*b'}
    question: {cs-uri-query|contains: 'c\?d'}
    backslash: {cs-uri-query|endswith: 'x\\y'}
    plain_backslash: {cs-uri-query|contains: 'C:\Win'}
    condition: 1 of them
level: low
""",
    "wildcards": r"""
title: Wildcards inside values
id: 00000000-0000-4000-8000-000000000002
logsource: {category: webserver}
detection:
    one: {cs-uri-stem: '/adm?n.php'}
    many: {cs-uri-query|startswith: '/api/*/delete'}
    condition: one or many
level: medium
""",
    "cased_re": r"""
title: Cased and regular expressions
id: 00000000-0000-4000-8000-000000000003
logsource: {category: webserver}
detection:
    cased: {cs-user-agent|cased|contains: 'CurlBot'}
    re_i: {cs-uri-query|re|i: '^/WP-ADMIN/.*\.php$'}
    re: {cs-user-agent|re: 'Bot[0-9]+'}
    condition: cased or re_i or re
level: high
""",
    "typed": r"""
title: exists, cidr, numbers, base64
id: 00000000-0000-4000-8000-000000000004
logsource: {category: webserver}
detection:
    user: {cs-username|exists: true}
    nohost: {cs-host|exists: false}
    net: {c-ip|cidr: 198.51.100.0/28}
    big: {sc-bytes|gt: 1000}
    error: {sc-status|gte: 500}
    b64: {cs-uri-query|base64offset|contains: 'whoami'}
    b64plain: {cs-uri-query|base64|contains: 'id;'}
    condition: (user and nohost) or (net and big) or error or b64 or b64plain
level: critical
""",
    "keywords_nulls": r"""
title: Keywords, lists of maps, NULL under not
id: 00000000-0000-4000-8000-000000000005
logsource: {category: webserver}
detection:
    kw_all:
        '|all': ['POST', 404, 'login']
    kw: ['evil*payload', 'c\?d']
    maps:
        - {cs-method: PUT, cs-uri-stem|endswith: '.jsp'}
        - {cs-referer: null, cs-method: DELETE}
    nothing: {cs-version: 'HTTP/1.0'}
    condition: (kw_all or kw or maps) and not nothing
level: high
""",
    "windash": r"""
title: Windows dashes
id: 00000000-0000-4000-8000-000000000007
logsource: {category: webserver}
detection:
    query: {cs-uri-query|windash|contains: '=-exec'}
    agent: {cs-user-agent|windash|endswith: ' /silent'}
    word: {cs-uri-query|windash|contains: 'x-forwarded'}
    condition: 1 of them
level: low
""",
}

EDGE_LINES = [
    {"cs-uri-query": "/a*b"}, {"cs-uri-query": "/aXb"}, {"cs-uri-query": "/c?d"}, {"cs-uri-query": "/cxd"},
    {"cs-uri-query": "/p/x\\y"}, {"cs-uri-query": "/p/x\\\\y"}, {"cs-uri-query": "/f?p=C:\\Windows"},
    {"cs-uri-query": "/adm1n.php"}, {"cs-uri-query": "/admin.php"}, {"cs-uri-query": "/admiin.php"},
    {"cs-uri-query": "/ADMXN.PHP"}, {"cs-uri-query": "/api/v2/users/delete?id=1"}, {"cs-uri-query": "/api/delete"},
    {"cs-uri-query": "/x/api/v2/delete"},
    {"cs-user-agent": "CurlBot/1"}, {"cs-user-agent": "curlbot/1"}, {"cs-user-agent": "Bot42"},
    {"cs-user-agent": "bot42"}, {"cs-uri-query": "/wp-admin/x.php"}, {"cs-uri-query": "/wp-admin/x.phps"},
    {"cs-username": "alice"}, {"cs-username": "bob", "cs-host": "h.example"}, {"c-ip": "198.51.100.7", "sc-bytes": 5000},
    {"c-ip": "198.51.100.70", "sc-bytes": 5000}, {"c-ip": "198.51.100.7", "sc-bytes": 999}, {"sc-status": 503},
    {"sc-status": 499}, {"cs-uri-query": "/r?c=d2hvYW1p"}, {"cs-uri-query": "/r?c=3aG9hbW"},
    {"cs-uri-query": "/r?c=aWQ7"}, {"cs-uri-query": "/r?c=aWQ"},
    {"cs-method": "POST", "sc-status": 404, "cs-uri-query": "/login"}, {"cs-method": "POST", "cs-uri-query": "/login"},
    {"cs-uri-query": "/q?evil-and-payload"}, {"cs-uri-query": "/q?payload-evil"},
    {"cs-method": "PUT", "cs-uri-query": "/up/shell.jsp"}, {"cs-method": "PUT", "cs-uri-query": "/up/shell.jspx"},
    {"cs-method": "DELETE", "cs-uri-query": "/item/1"},
    {"cs-method": "DELETE", "cs-uri-query": "/item/1", "cs-referer": "https://www.example.cn/"},
    {"cs-uri-query": "/run?c=/exec"}, {"cs-uri-query": "/run?c=\u2013exec"}, {"cs-uri-query": "/run?c=\u2014exec"},
    {"cs-uri-query": "/run?c=_exec"}, {"cs-user-agent": "Setup.exe /silent"}, {"cs-user-agent": "Setup.exe -silent"},
    {"cs-user-agent": "Setup.exe \u2015silent"}, {"cs-user-agent": "Setup.exe silent"},
    {"cs-uri-query": "/h?x/forwarded=1"}, {"cs-uri-query": "/h?x-forwarded=1"},
]


def test_specification_corners_agree_with_pysigma(tmp_path: Path) -> None:
    from sigma_logs import rule_records

    folder = tmp_path / "sigma"
    folder.mkdir()
    import yaml

    records = list(EDGE_LINES)
    for name, text in EDGE_RULES.items():
        (folder / f"{name}.yml").write_text(text, encoding="utf-8")
        records += rule_records(yaml.safe_load(text))
    ruleset = load_rules(str(tmp_path / "sigma-only"), sigma_folders=(str(folder),),
                         sigma=load_settings(None).sigma) if (tmp_path / "sigma-only").mkdir() is None else None
    assert ruleset is not None and len(ruleset.rules) == len(EDGE_RULES) and not ruleset.skipped
    df = read_logs(write_logs(records, tmp_path / "logs"))
    mine, theirs = ours(ruleset, df), reference(folder, ruleset, df)
    for rid in theirs:
        assert mine[rid] == theirs[rid], (rid, sorted(mine[rid] - theirs[rid]), sorted(theirs[rid] - mine[rid]))
        assert theirs[rid], rid
    lines = {(Path(f).name, n) for f, n in theirs["sigma.web.escapes"]}
    assert ("access.jsonl", 1) in lines and ("access.jsonl", 2) not in lines   # a*b literally, not aXb
    dashed = {EDGE_LINES[n - 1].get("cs-uri-query") or EDGE_LINES[n - 1].get("cs-user-agent")
              for f, n in theirs["sigma.web.windash"] if Path(f).name == "access.jsonl" and n <= len(EDGE_LINES)}
    # a word-starting dash or slash in any of its spellings; not another character; inside a word, as written
    assert dashed == {"/run?c=/exec", "/run?c=\u2013exec", "/run?c=\u2014exec", "Setup.exe /silent",
                      "Setup.exe -silent", "Setup.exe \u2015silent", "/h?x-forwarded=1"}


PER_FORMAT_RULE = r"""
title: Admin probes not from bots, on our host
id: 00000000-0000-4000-8000-000000000006
logsource: {category: webserver}
detection:
    probe: {cs-uri-query|contains: '/admin'}
    ours: {cs-host|endswith: 'example.cn'}
    bot: {cs-user-agent|contains: 'bot'}
    condition: probe and ours and not bot
level: medium
"""


def test_a_mapping_per_log_format_agrees_with_pysigma_given_the_same_mapping(tmp_path: Path) -> None:
    """Each format's records read through that format's mapping: the engine's guarded copies of the
    rule select what pySigma selects from a table built format by format with the same mapping."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("rules: rules\nstate_dir: state\nsigma:\n  logsources:\n    - category: webserver\n"
                   "      formats:\n        combined: {cs-host: domain}\n        jsonl: {cs-user-agent: null}\n",
                   encoding="utf-8")
    settings = load_settings(str(cfg)).sigma
    folder, own = tmp_path / "sigma", tmp_path / "own"
    folder.mkdir()
    own.mkdir()
    (folder / "per_format.yml").write_text(PER_FORMAT_RULE, encoding="utf-8")
    ruleset = load_rules(str(own), sigma_folders=(str(folder),), sigma=settings)
    rule = ruleset.by_id("sigma.web.per_format")
    assert rule.meta["sigma"]["field_mapping_by_format"] == {
        "combined": {"cs-uri-query": "uri", "cs-host": "domain", "cs-user-agent": "user_agent"},
        "jsonl": {"cs-uri-query": "uri", "cs-host": "host", "cs-user-agent": "NULL"},
        "tencent-cdn": {"cs-uri-query": "uri", "cs-host": "domain", "cs-user-agent": "user_agent"}}
    records = [{"cs-uri-query": "/admin/x"}, {"cs-uri-query": "/admin/x", "cs-user-agent": "googlebot"},
               {"cs-uri-query": "/admin/x", "cs-host": "www.example.cn"},
               {"cs-uri-query": "/admin/x", "cs-host": "www.example.cn", "cs-user-agent": "googlebot"},
               {"cs-uri-query": "/admin/x", "cs-host": "evil.example.com"}, {"cs-uri-query": "/home"}]
    df = read_logs(write_logs(records, tmp_path / "logs"))
    mine, theirs = ours(ruleset, df), reference(folder, ruleset, df, settings)
    assert mine == theirs
    got = sorted((Path(f).name, n) for f, n in mine["sigma.web.per_format"])
    # combined: its configured domain is cs-host here, so every admin line but the bot's; JSON lines: the
    # user agent is NULL, so `not bot` holds even for googlebot; W3C: the default mapping (its two
    # header lines come first); Tencent: its domain field, by the default formats merged under these
    assert got == [("access.jsonl", 3), ("access.jsonl", 4), ("access.log", 1), ("access.log", 3),
                   ("access.log", 5), ("cloudfront.log", 5), ("tencent.log", 1), ("tencent.log", 3)]
    # with no log format on the records (the retained store keeps none), the default mapping holds
    plain = ours(ruleset, df.drop(columns=[LOG_FORMAT]))["sigma.web.per_format"]
    assert sorted((Path(f).name, n) for f, n in plain) == [("access.jsonl", 3), ("cloudfront.log", 5)]
