"""Case pages over HTTP for what the seeded stores of test_web.py do not hold: a case of a Sigma rule
(its SigmaHQ metadata shown beside the clause), matches that record no normalized text (hashes,
Sigma) and a log request line; and the rules page's per-rule counts following a decision made in the app."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from markupsafe import escape

sys.path.insert(0, str(Path(__file__).parent))

from web_server import WebServer, add_users, csrf_of, login, write_config  # noqa: E402

from pipeline.cases.ids import case_id  # noqa: E402
from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.matchers.hits import HIT_COLUMNS  # noqa: E402
from pipeline.rules.loader import load_configured_rules  # noqa: E402

SIGMA_RULE = """title: Console path traversal probe <b>bold</b>
id: 6f1d1c9e-0000-4000-8000-0000000000aa
status: test
description: Requests for a console behind an encoded traversal
author: Someone "><img src=x onerror=alert(1)>
references:
    - https://example.org/advisory?a=1&b=<2>
falsepositives:
    - Unknown
tags:
    - attack.initial-access
logsource: {category: webserver}
detection:
    selection:
        cs-uri-query|contains: '/console/%2e%2e/'
    condition: selection
level: critical
"""
URI = "/console/%2e%2e/x?<script>1</script>"
ENCODED_URI = "/%E8%B5%8C%E5%9C%BA/<i>x</i>.html"


@pytest.fixture
def web(tmp_path: Path, store_url: str) -> Iterator[dict[str, Any]]:
    sigma = tmp_path / "sigma"
    sigma.mkdir()
    (sigma / "web_console_probe.yml").write_text(SIGMA_RULE, encoding="utf-8")
    settings = load_settings(write_config(tmp_path, store_url, extra={"sigma": {"folders": [str(sigma)]}}))
    rules = load_configured_rules(settings)
    store = CaseStore(store_url)
    sigma_match = {"field": "uri", "kind": "sigma", "pattern": "sigma 6f1d1c9e (level critical)",
                   "text": "/console/%2e%2e/", "span": [0, 16]}               # no "normalized"
    hash_match = {"field": "etag", "kind": "hashes", "pattern": "known_bad", "text": "d41d8cd98f00b204"}
    rows = [
        {"rule_id": "sigma.web.web_console_probe", "subject_type": "client_ip", "subject_id": "203.0.113.5",
         "account_id": "acc1", "event_time": pd.Timestamp("2026-11-01T10:00:01Z"), "source_file": "a.log",
         "source_line": 1, "hit_key": "a.log:1", "evidence": json.dumps([sigma_match]),
         "context": json.dumps({"uri": URI, "method": "POST", "status": 200, "domain": "x.example",
                                "client_ip": "203.0.113.5"})},
        {"rule_id": "objects.hashes.known_bad", "subject_type": "object", "subject_id": "b1/blob.bin",
         "account_id": "acc1", "event_time": pd.Timestamp("2026-11-01T10:00:02Z"), "source_file": "o.csv",
         "source_line": 2, "hit_key": "b1/blob.bin@1", "evidence": json.dumps([hash_match]),
         "context": json.dumps({"bucket": "b1", "key": "blob.bin", "etag": "d41d8cd98f00b204"})},
        {"rule_id": "logs.content.gambling_url", "subject_type": "domain", "subject_id": "www.x.cn",
         "account_id": "acc2", "event_time": pd.Timestamp("2026-11-01T10:00:03Z"), "source_file": "b.log",
         "source_line": 3, "hit_key": "b.log:3",   # the path is parsed, percent-decoded, out of the URI
         "evidence": json.dumps([{"field": "path", "kind": "keywords", "pattern": "赌场", "text": "赌场",
                                  "span": [1, 3], "normalized": "赌场"}]),
         "context": json.dumps({"uri": ENCODED_URI, "method": "GET", "status": 200, "domain": "www.x.cn"})},
    ]
    store.apply_hits(store.begin_run(None, rules.digest), pd.DataFrame(rows, columns=HIT_COLUMNS), rules,
                     max_evidence=5)
    add_users(store)
    server = WebServer(settings).start()
    ids = {"sigma": case_id("sigma.web.web_console_probe", "client_ip", "203.0.113.5"),
           "hash": case_id("objects.hashes.known_bad", "object", "b1/blob.bin"),
           "path": case_id("logs.content.gambling_url", "domain", "www.x.cn")}
    yield {"settings": settings, "store": store, "url": server.url, "ids": ids}
    server.stop()
    store.close()


def client(web: dict[str, Any], user: str) -> httpx.Client:
    http = httpx.Client(base_url=web["url"], follow_redirects=False, timeout=30)
    assert login(http, user).status_code == 303
    return http


def test_a_sigma_case_shows_the_sigma_metadata_escaped(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    r = http.get(f"/cases/{web['ids']['sigma']}")
    assert r.status_code == 200, r.text[:500]
    page = r.text
    sigma = page[page.index('id="sigma"'):page.index("</dl>", page.index('id="sigma"'))]
    for shown in ("6f1d1c9e-0000-4000-8000-0000000000aa", "critical", "test", "attack.initial-access", "Unknown",
                  str(escape('Someone "><img src=x onerror=alert(1)>')),
                  str(escape("https://example.org/advisory?a=1&b=<2>"))):
        assert shown in sigma, shown
    assert "<img" not in sigma and "<b>bold" not in page
    # the request line of the log, and the matched span marked inside the original URI
    assert str(escape(f"POST {URI}")) in page
    assert "<mark>/console/%2e%2e/</mark>" + str(escape("x?<script>1</script>")) in page
    assert "<script>1" not in page


def test_a_match_without_normalized_text_renders(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    r = http.get(f"/cases/{web['ids']['hash']}")
    assert r.status_code == 200, r.text[:500]
    assert "<mark>d41d8cd98f00b204</mark>" in r.text and "known_bad" in r.text


def test_a_path_match_is_marked_in_the_decoded_uri(web: dict[str, Any]) -> None:
    page = client(web, "alice").get(f"/cases/{web['ids']['path']}").text
    assert str(escape(f"GET {ENCODED_URI}")) in page                          # the request as sent
    assert "path · in uri (percent-decoded)" in page
    assert "/<mark>赌场</mark>" + str(escape("/<i>x</i>.html")) in page     # the span, in place
    assert "<i>x" not in page


def test_the_rules_page_counts_follow_a_decision(web: dict[str, Any]) -> None:
    http = client(web, "alice")

    def open_count(rule: str) -> int:
        page = http.get("/rules").text
        row = re.search(rf'<tr><td><a href="/\?rule={re.escape(rule)}">.*?</tr>', page, re.S)
        assert row, rule
        return int(re.findall(r'<td class="num">(\d+)</td>', row.group(0))[0])

    assert open_count("sigma.web.web_console_probe") == 1
    token = csrf_of(http.get("/").text)
    r = http.post(f"/cases/{web['ids']['sigma']}/decide", data={"csrf": token, "action": "confirm", "reason": "probe"})
    assert r.status_code == 303
    assert open_count("sigma.web.web_console_probe") == 0      # counted again at once, not after the TTL
    assert open_count("objects.hashes.known_bad") == 1


def test_reverse_proxy_header_mode(tmp_path: Path, store_url: str, web: dict[str, Any]) -> None:
    from pipeline.web.users import add_user

    # without web.proxy_user_header the header is just a header: it logs nobody in
    plain = httpx.Client(base_url=web["url"], follow_redirects=False, headers={"X-Forwarded-User": "alice"})
    assert plain.get("/").status_code == 303
    (tmp_path / "sso").mkdir()
    settings = load_settings(write_config(tmp_path / "sso", store_url, proxy_user_header="X-Forwarded-User"))
    add_user(web["store"].db, "carol", "approver", None)            # `compliance users add carol --sso`
    server = WebServer(settings).start()
    try:
        carol = httpx.Client(base_url=server.url, follow_redirects=False, headers={"X-Forwarded-User": "carol"})
        page = carol.get("/")
        assert page.status_code == 200 and 'id="whoami">carol<' in page.text
        # forms still need the session's CSRF token; with it, the action is carol's
        assert carol.post("/enforcement/plan", data={}).status_code == 403
        assert carol.post("/enforcement/plan", data={"csrf": csrf_of(page.text)}).status_code == 303
        assert web["store"].db.scalar("SELECT created_by FROM plans") == "carol"
        # a name the store does not hold, and an SSO user's password login, get nothing
        stranger = httpx.Client(base_url=server.url, follow_redirects=False, headers={"X-Forwarded-User": "mallory"})
        assert stranger.get("/").status_code == 303
        nobody = httpx.Client(base_url=server.url, follow_redirects=False)
        assert login(nobody, "carol", "any-password-at-all").status_code == 401
    finally:
        server.stop()


def test_the_outbox_shows_delivered_and_failed_actions(tmp_path: Path, store_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An approver applies a plan against a real endpoint that refuses one action: the page shows
    what was delivered, what failed and why, and the delivered cases are enforced."""
    from enforcement_server import SECRET, SECRET_ENV, EnforcementServer
    from web_server import seed

    endpoint = EnforcementServer(SECRET).start()
    endpoint.script = ["reject"]                 # the first action is refused (400: not retried)
    monkeypatch.setenv(SECRET_ENV, SECRET.decode())
    (tmp_path / "e").mkdir()
    settings = load_settings(write_config(tmp_path / "e", store_url, extra={"enforcement": {
        "endpoint": endpoint.url, "secret_env": SECRET_ENV, "timeout_s": 10.0, "retries": 1, "backoff_s": 0.01,
        "backoff_max_s": 0.05, "caps": {"per_run": 50, "per_account": 10}}}))
    store = CaseStore(store_url)
    seed(store, extra_objects=3)
    add_users(store)
    server = WebServer(settings).start()
    try:
        bob = httpx.Client(base_url=server.url, follow_redirects=False, timeout=60)
        assert login(bob, "bob").status_code == 303
        token = csrf_of(bob.get("/enforcement").text)
        assert bob.post("/enforcement/plan", data={"csrf": token}).status_code == 303
        plan_id = store.db.scalar("SELECT plan_id FROM plans")
        assert bob.post("/enforcement/apply", data={"csrf": token, "plan_id": plan_id}).status_code == 303
        rows = store.db.all("SELECT case_id, status, response_status FROM actions")
        failed = [r for r in rows if r["status"] == "failed"]
        delivered = [r for r in rows if r["status"] == "delivered"]
        assert len(failed) == 1 and failed[0]["response_status"] == 400 and len(delivered) == len(rows) - 1 >= 1
        page = bob.get("/enforcement").text
        assert f"delivered {len(delivered)}<" in page and "failed 1<" in page
        failed_page = bob.get("/enforcement?status=failed").text
        assert failed[0]["case_id"] in failed_page and "<td>400</td>" in failed_page
        # an acknowledged enforcement action enforces its case, a refused one leaves it confirmed; a
        # delivered notice leaves its case open (the customer has until the deadline)
        status = {r["case_id"]: r["status"] for r in store.db.all("SELECT case_id, status FROM cases")}
        for r in store.db.all("SELECT case_id, kind, status FROM actions"):
            want = {("enforce", "delivered"): "enforced", ("enforce", "failed"): "confirmed",
                    ("notice", "delivered"): "open", ("notice", "failed"): "open"}[(r["kind"], r["status"])]
            assert status[r["case_id"]] == want, r
        assert sum(endpoint.applied.values()) == len(delivered)
    finally:
        server.stop()
        endpoint.stop()
        store.close()


def test_every_form_needs_the_csrf_token(web: dict[str, Any]) -> None:
    http = client(web, "bob")
    cid = web["ids"]["hash"]
    forms = {f"/cases/{cid}/decide": {"action": "dismiss", "reason": "x"}, f"/cases/{cid}/claim": {},
             f"/cases/{cid}/release": {}, "/bulk": {"action": "dismiss", "reason": "x", "case_id": cid},
             "/enforcement/plan": {}, "/enforcement/apply": {"plan_id": "P20260101T000000Z-abcdef"},
             f"/cases/{cid}/undo": {"reason": "x"}, "/rules/backtest": {"draft": "x"}, "/logout": {}}
    for path, data in forms.items():
        r = http.post(path, data=data)
        assert r.status_code == 403 and "security token" in r.text, path
    assert store_untouched(web, cid)
    assert http.get("/").status_code == 200       # the session survived the token-less logout


def store_untouched(web: dict[str, Any], cid: str) -> bool:
    db = web["store"].db
    return (db.scalar("SELECT status FROM cases WHERE case_id=?", (cid,)) == "open"
            and db.scalar("SELECT COUNT(*) FROM web_claims") == 0 and db.scalar("SELECT COUNT(*) FROM plans") == 0)
