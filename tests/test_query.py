"""Regulators' queries: answers equal a brute-force pandas filter; refusals, exports, manifests, audit."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import pipeline.cli.logs  # noqa: F401  (attaches the logs and audit groups)
import pipeline.sources.logs  # noqa: F401  (registers every format)
from pipeline.cli import main
from pipeline.config import Settings, load_settings
from pipeline.errors import QueryError, StoreError
from pipeline.query import read_audit, run_query, verify_audit
from pipeline.records import LOGS, conform
from pipeline.retention import ingest

UTC = timezone.utc
DAY = datetime(2026, 8, 2, tzinfo=UTC)
IPS = ["203.0.113.5", "203.0.113.77", "203.0.113.200", "198.51.100.9", "10.1.2.3", "::ffff:203.0.113.5",
       "2001:db8::1", "2001:DB8:0:0::1", "2001:db8:1::abcd", "2001:db8:1:ffff::2", "2001:db9::7", "fe80::1"]
DOMAINS = ["shop.example.cn", "img.example.cn", "Shop.Example.CN", "video.example.com"]
URIS = ["/", "/admin/login.php?u=1", "/img/a.png", "/search?q=赌场", "/api/v1/admin", "/index.html"]
# Edges of the UTC day and of the +08:00 day, plus random instants around them.
EDGES = [DAY, DAY - timedelta(microseconds=1), DAY + timedelta(days=1), DAY + timedelta(days=1, microseconds=-1),
         DAY - timedelta(hours=8), DAY + timedelta(hours=16), DAY + timedelta(hours=16, microseconds=-1)]


def _as_logged(path: Path) -> pd.DataFrame:
    """The test's own rows as canonical records: the oracle the brute-force filter runs on."""
    with open(path, encoding="utf-8") as fh:
        rows = [{**json.loads(line), "source_file": str(path), "source_line": n} for n, line in enumerate(fh, start=1)]
    return conform(pd.DataFrame(rows), LOGS)


FORMAT = "jsonl"


def _rows(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = EDGES[i] if i < len(EDGES) else DAY + timedelta(seconds=rng.uniform(-86400, 2 * 86400))
        out.append({"ts": ts.isoformat(timespec="microseconds"), "client_ip": rng.choice(IPS), "domain": rng.choice(DOMAINS),
                    "method": rng.choice(["GET", "POST"]), "uri": rng.choice(URIS), "status": rng.choice([200, 404]),
                    "bytes_sent": rng.randrange(10_000), "user_agent": "Mozilla/5.0 (测试)",
                    "account_id": rng.choice(["acct-1", "acct-2", None])})
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame]:
    root = tmp_path_factory.mktemp("query")
    settings = load_settings(None, {"COMPLIANCE_STATE_DIR": str(root / "state")})
    files = []
    for k in range(2):
        path = root / f"log{k}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows(1500, k)), encoding="utf-8")
        files.append((path, FORMAT))
    ingest(settings, files)
    everything = pd.concat([_as_logged(p) for p, _ in files], ignore_index=True)
    return settings, everything


def _brute(df: pd.DataFrame, *, ip: str | None = None, cidr: str | None = None, domain: str | None = None,
           url: str | None = None, account: str | None = None, start: datetime | None = None,
           end: datetime | None = None) -> list[tuple[str, int]]:
    def addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        a = ipaddress.ip_address(text)
        return a.ipv4_mapped if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped else a

    keep = pd.Series(True, index=df.index)
    if ip:
        keep &= df["client_ip"].map(lambda t: addr(t) == addr(ip))
    if cidr:
        net = ipaddress.ip_network(cidr)
        keep &= df["client_ip"].map(lambda t: addr(t).version == net.version and addr(t) in net)
    if domain:
        keep &= df["domain"].str.lower() == domain.lower()
    if url:
        keep &= df["uri"].str.contains(url, regex=False)
    if account:
        keep &= df["account_id"] == account
    if start:
        keep &= df["ts"] >= start
    if end:
        keep &= df["ts"] < end
    hit = df[keep.fillna(False).astype(bool)].sort_values(["ts", "source_file", "source_line"])
    return list(zip(hit["source_file"], hit["source_line"].astype(int)))


CASES = [
    ({"ip": "203.0.113.5"}, {"ip": "203.0.113.5"}),
    ({"ip": "2001:db8::1"}, {"ip": "2001:db8::1"}),
    ({"cidr": "203.0.113.0/25"}, {"cidr": "203.0.113.0/25"}),
    ({"cidr": "2001:db8:1::/48"}, {"cidr": "2001:db8:1::/48"}),
    ({"cidr": "2001:db8::/32"}, {"cidr": "2001:db8::/32"}),
    ({"domain": "SHOP.example.cn"}, {"domain": "shop.example.cn"}),
    ({"url_contains": "admin"}, {"url": "admin"}),
    ({"url_contains": "赌场"}, {"url": "赌场"}),
    ({"account": "acct-2", "domain": "img.example.cn"}, {"account": "acct-2", "domain": "img.example.cn"}),
    ({"cidr": "203.0.113.0/24", "start": "2026-08-02", "end": "2026-08-03"},   # bare dates: Asia/Shanghai
     {"cidr": "203.0.113.0/24", "start": DAY - timedelta(hours=8), "end": DAY + timedelta(hours=16)}),
    ({"domain": "shop.example.cn", "start": "2026-08-02T00:00:00+08:00", "end": "2026-08-03T00:00:00+08:00"},
     {"domain": "shop.example.cn", "start": DAY - timedelta(hours=8), "end": DAY + timedelta(hours=16)}),
    ({"url_contains": "/", "start": "2026-08-03T00:00:00", "end": "2026-08-03T00:00:00.000001"},   # naive: +08:00
     {"url": "/", "start": DAY + timedelta(hours=16), "end": DAY + timedelta(hours=16, microseconds=1)}),
    ({"ip": "10.1.2.3", "start": datetime(2026, 8, 3, 7, 59, 59, tzinfo=timezone(timedelta(hours=8)))},
     {"ip": "10.1.2.3", "start": DAY + timedelta(days=1, seconds=-1)}),
]


@pytest.mark.parametrize(("query", "brute"), CASES, ids=[str(q) for q, _ in CASES])
def test_answer_equals_brute_force_filter(store: tuple[Settings, pd.DataFrame], tmp_path: Path,
                                          query: dict[str, object], brute: dict[str, object]) -> None:
    settings, everything = store
    result = run_query(settings, request_ref="公(网安)2026-001", authority="Shanghai PSB", out_dir=tmp_path / "out",
                       **query)  # type: ignore[arg-type]
    expected = _brute(everything, **brute)  # type: ignore[arg-type]
    assert expected, "a case that selects nothing proves little"
    assert list(zip(result.df["source_file"], result.df["source_line"].astype(int))) == expected


def test_time_window_reads_only_its_partitions(store: tuple[Settings, pd.DataFrame], tmp_path: Path) -> None:
    settings, _ = store
    result = run_query(settings, request_ref="R-1", authority="CAC", url_contains="/",
                       start="2026-08-02T00:00:00+08:00", end="2026-08-02T12:00:00+08:00", out_dir=tmp_path / "o")
    assert [p["day"] for p in result.manifest["partitions_read"]] == ["2026-08-01", "2026-08-02"]
    assert result.manifest["start"] == "2026-08-01T16:00:00+00:00"


def test_export_holds_only_asked_fields_with_checksums_and_is_audited(store: tuple[Settings, pd.DataFrame],
                                                                      tmp_path: Path) -> None:
    settings, everything = store
    out = tmp_path / "export"
    result = run_query(settings, request_ref="R-2", authority="CAC", cidr="2001:db8::/32",
                       fields="ts,client_ip,uri", out_dir=out, requested_by="alice")
    assert list(result.df.columns) == ["ts", "client_ip", "uri"]
    raw = (out / "result.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw[3:].split(b"\n")[0] == b"ts,client_ip,uri"
    assert len(pd.read_parquet(out / "result.parquet").columns) == 3
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["rows"] == len(result.df) == len(_brute(everything, cidr="2001:db8::/32"))
    assert (manifest["request_ref"], manifest["authority"], manifest["requested_by"]) == ("R-2", "CAC", "alice")
    for name, digest in manifest["outputs"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    last = read_audit(settings)[-1]
    assert (last["action"], last["actor"], last["details"]["rows"]) == ("query", "alice", len(result.df))
    assert last["details"]["manifest_sha256"] == hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    with pytest.raises(QueryError, match="already holds an export"):
        run_query(settings, request_ref="R-2", authority="CAC", ip="10.1.2.3", out_dir=out)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"request_ref": None, "authority": "CAC", "ip": "10.1.2.3"}, "must name the request"),
    ({"request_ref": "R-3", "authority": "  ", "ip": "10.1.2.3"}, "must name the request"),
    ({"request_ref": "R-3", "authority": "CAC"}, "must select something"),
    ({"request_ref": "R-3", "authority": "CAC", "ip": "10.1.2"}, "not an IPv4 or IPv6"),
    ({"request_ref": "R-3", "authority": "CAC", "cidr": "10.0.0.0/33"}, "not a CIDR"),
    ({"request_ref": "R-3", "authority": "CAC", "ip": "10.1.2.3", "fields": "ts,password"}, "unknown field"),
    ({"request_ref": "R-3", "authority": "CAC", "ip": "10.1.2.3", "start": "yesterday"}, "not an ISO-8601"),
    ({"request_ref": "R-3", "authority": "CAC", "ip": "10.1.2.3", "start": "2026-08-02", "end": "2026-08-02"},
     "window is empty"),
])
def test_refused_queries_are_audited_too(store: tuple[Settings, pd.DataFrame], tmp_path: Path,
                                         kwargs: dict[str, object], message: str) -> None:
    settings, _ = store
    before = len(read_audit(settings))
    with pytest.raises(QueryError, match=message) as err:
        run_query(settings, out_dir=tmp_path / "never", requested_by="bob", **kwargs)  # type: ignore[arg-type]
    assert err.value.hint
    entries = read_audit(settings)
    assert len(entries) == before + 1
    assert entries[-1]["action"] == "query.refused" and message in entries[-1]["details"]["reason"]
    assert not (tmp_path / "never").exists()
    assert verify_audit(settings).ok


def test_cli_query_and_audit_verify(store: tuple[Settings, pd.DataFrame], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    settings, everything = store
    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(settings.state_path))
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(main, ["logs", "query", "--request-ref", "R-4", "--authority", "MPS", "--ip", "203.0.113.5",
                               "--from", "2026-08-02", "--to", "2026-08-03", "--out", str(out), "--by", "carol"])
    assert res.exit_code == 0, res.output
    # bare dates are Beijing days (retention.timezone), shown so
    n = len(_brute(everything, ip="203.0.113.5", start=DAY - timedelta(hours=8), end=DAY + timedelta(hours=16)))
    assert res.output.startswith(f"{n} row(s) from 2 partition(s)")
    assert "window: 2026-08-02T00:00:00+08:00 .. 2026-08-03T00:00:00+08:00 (Asia/Shanghai)" in res.output
    assert str(out / "result.csv") in res.output
    refused = runner.invoke(main, ["logs", "query", "--authority", "MPS", "--ip", "203.0.113.5"])
    assert refused.exit_code == 2 and "must name the request" in refused.output
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "chain intact" in ok.output
    listed = runner.invoke(main, ["audit", "list", "--action", "query.refused", "--last", "1"])
    assert "query.refused" in listed.output


@pytest.mark.parametrize("selector", [["--cidr", "0.0.0.0/0"], ["--cidr", "::/0"], ["--url-contains", ""],
                                      ["--url-contains", "  "], ["--domain", "."]])
def test_a_selection_of_everything_is_refused_and_audited(store: tuple[Settings, pd.DataFrame], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, selector: list[str]) -> None:
    settings, _ = store
    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(settings.state_path))
    runner = CliRunner()
    res = runner.invoke(main, ["logs", "query", "--request-ref", "R-9", "--authority", "MPS", *selector,
                               "--out", str(tmp_path / "never"), "--by", "mallory"])
    assert res.exit_code == 2, res.output
    assert "whole store is not allowed" in res.output and not (tmp_path / "never").exists()
    last = read_audit(settings)[-1]
    assert last["action"] == "query.refused" and last["actor"] == "mallory"


def _damaged_store(tmp_path: Path) -> tuple[Settings, Path]:
    """A store of three days, of which 2026-08-02 lost its data file."""
    settings = load_settings(None, {"COMPLIANCE_STATE_DIR": str(tmp_path / "state")})
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows(300, 5)), encoding="utf-8")
    ingest(settings, [(log, FORMAT)])
    (lost,) = (settings.state_path / "logs" / "days" / "2026-08-02").glob("v-*/part-00000.parquet")
    lost.unlink()
    return settings, lost


def test_cli_query_on_a_store_missing_a_data_file_names_it_and_is_audited(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings, lost = _damaged_store(tmp_path)
    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(settings.state_path))
    out = tmp_path / "export"
    res = CliRunner().invoke(main, ["logs", "query", "--request-ref", "R-9", "--authority", "MPS",
                                    "--ip", "203.0.113.5", "--out", str(out), "--by", "dave"])
    assert res.exit_code == 2, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    assert "partition 2026-08-02" in res.output and str(lost) in res.output
    assert "compliance logs verify" in res.output
    assert not (out / "manifest.json").exists()
    last = read_audit(settings)[-1]
    assert (last["action"], last["actor"]) == ("query.failed", "dave")
    assert last["details"]["request_ref"] == "R-9" and last["details"]["selectors"] == {"ip": "203.0.113.5"}
    assert str(lost) in last["details"]["reason"]
    assert verify_audit(settings).ok
    # a window that avoids the damaged day is still answered
    ok = CliRunner().invoke(main, ["logs", "query", "--request-ref", "R-10", "--authority", "MPS", "--ip", "203.0.113.5",
                                   "--from", "2026-08-03T00:00:00Z", "--out", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output


def test_query_on_an_unreadable_data_file_fails_clearly_and_is_audited(tmp_path: Path) -> None:
    settings, lost = _damaged_store(tmp_path)
    lost.write_bytes(b"not parquet at all")
    before = len(read_audit(settings))
    with pytest.raises(StoreError, match="partition 2026-08-02 .* (was altered|could not be read)") as err:
        run_query(settings, request_ref="R-11", authority="CAC", domain="shop.example.cn", out_dir=tmp_path / "o")
    assert err.value.location is not None and err.value.location.path == str(lost)
    assert err.value.hint and "compliance logs verify" in err.value.hint
    entries = read_audit(settings)
    assert len(entries) == before + 1 and entries[-1]["action"] == "query.failed"
    assert str(lost) in entries[-1]["details"]["reason"]
