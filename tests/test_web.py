"""The review app over HTTP, served for real on 127.0.0.1: login, sessions, CSRF, roles, escaping,
decisions that do what the CLI does (history and audit log with the user's name), claims, the queue's
keyset pages and counts, enforcement plans applied only by an approver."""

from __future__ import annotations

import html as htmllib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from markupsafe import escape

sys.path.insert(0, str(Path(__file__).parent))

from web_server import (EVIL_ACCOUNT, EVIL_KEY, EVIL_TITLE, EVIL_UA, EVIL_URI, XSS_IMG, XSS_SCRIPT,  # noqa: E402
                        WebServer, add_users, csrf_of, flash_of, login, seed, write_config)

from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.query.audit import read_audit, verify_audit  # noqa: E402


@pytest.fixture
def web(tmp_path: Path, store_url: str) -> Iterator[dict[str, Any]]:
    settings = load_settings(write_config(tmp_path, store_url, page_size=3))
    store = CaseStore(store_url)
    ids = seed(store, extra_objects=4)
    add_users(store)
    server = WebServer(settings).start()
    yield {"settings": settings, "store": store, "ids": ids, "url": server.url, "tmp": tmp_path}
    server.stop()
    store.close()


def client(web: dict[str, Any], user: str | None = None) -> httpx.Client:
    http = httpx.Client(base_url=web["url"], follow_redirects=False, timeout=30)
    if user:
        assert login(http, user).status_code == 303
    return http


def rows_of(html: str) -> list[str]:
    """The case ids of the queue's rows on a page."""
    return re.findall(r'<tr class="row [^"]*" data-case="(C[0-9a-f]+)"', html)


def status_of(web: dict[str, Any], cid: str) -> str:
    return str(web["store"].db.scalar("SELECT status FROM cases WHERE case_id=?", (cid,)))


def test_logged_out_sees_only_the_login_page(web: dict[str, Any]) -> None:
    http = client(web)
    cid = web["ids"]["gambling"]
    for path in ("/", f"/cases/{cid}", "/enforcement", "/rules", "/?status=open", "/no/such/page"):
        r = http.get(path)
        assert r.status_code == 303, path
        r = http.get(path, follow_redirects=True)
        # the login page, holding no case data (only the path asked for, to go back to after login)
        assert r.url.path == "/login" and 'id="login"' in r.text, path
        for secret in ("b1/casino.png", "acc1", "objects.gambling", "queue-table", "Enforcement"):
            assert secret not in r.text, (path, secret)
    for path in (f"/cases/{cid}/decide", f"/cases/{cid}/claim", "/bulk", "/enforcement/plan", "/enforcement/apply"):
        r = http.post(path, data={"action": "confirm", "reason": "x", "case_id": cid, "csrf": "x"})
        assert r.status_code == 403, path
    assert status_of(web, cid) == "open"


def test_wrong_password_then_rate_limited(web: dict[str, Any]) -> None:
    http = client(web)
    max_failures = web["settings"].web.login_max_failures
    for _ in range(max_failures):
        r = login(http, "alice", "wrong-password")
        assert r.status_code == 401 and "Wrong user name or password" in r.text
    # even the right password is refused while the window lasts
    r = login(http, "alice")
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert "cp_session" not in http.cookies
    # another user is not locked out by alice's failures
    assert login(client(web), "bob").status_code == 303
    # unknown users fail the same way as wrong passwords
    assert login(client(web), "mallory", "whatever-pass").status_code == 401


def test_login_form_needs_its_token(web: dict[str, Any]) -> None:
    http = client(web)
    r = http.post("/login", data={"name": "alice", "password": "alice-password", "csrf": "forged"})
    assert r.status_code == 403 and "cp_session" not in http.cookies


def test_security_headers_are_strict(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    for path in ("/login", "/", f"/cases/{web['ids']['evil']}", "/enforcement", "/rules"):
        r = http.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        # no inline script or style for the policy to have to allow
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text) and " style=" not in r.text
    cookie = next(c for c in http.cookies.jar if c.name == "cp_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "strict"


def test_every_user_supplied_string_is_escaped(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    ids = web["ids"]
    pages = {p: http.get(p).text for p in ("/", f"/cases/{ids['evil']}", f"/cases/{ids['log']}",
                                           f"/cases/{ids['stream']}", "/?status=open&sort=hits")}
    everything = "".join(pages.values())
    # the markup never reaches the page as markup
    for raw in (XSS_SCRIPT, XSS_IMG, EVIL_ACCOUNT, "<img src=x", "<script>window"):
        assert raw not in everything
    # and each string is there, escaped, where it is shown
    evil_page, log_page, stream_page = (pages[f"/cases/{ids[n]}"] for n in ("evil", "log", "stream"))
    for text, page in ((EVIL_KEY, evil_page), (EVIL_ACCOUNT, evil_page), (f"Gambling {XSS_SCRIPT}", evil_page),
                       (EVIL_URI, log_page), (EVIL_UA, log_page), (EVIL_TITLE, stream_page)):
        assert str(escape(text)) in page, text
    # the matched span is highlighted inside the original key, the rest around it is text
    assert "<mark>casino</mark>.png" in evil_page
    assert str(escape(f"b9/{XSS_SCRIPT}{XSS_IMG}")) in evil_page
    # the log case shows its request line
    assert str(escape(f"GET {EVIL_URI}")) in log_page


def test_confirm_from_the_page_does_what_the_cli_does(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    cid = web["ids"]["gambling"]
    page = http.get(f"/cases/{cid}").text
    assert "§3.1.3.5.4" in page and "博彩有奖、赌博游戏" in page    # the clause's text from the terms
    # a reason is required
    r = http.post(f"/cases/{cid}/decide", data={"csrf": csrf_of(page), "action": "confirm", "reason": "  "})
    assert r.status_code == 303 and status_of(web, cid) == "open"
    assert "a reason is required" in flash_of(http.get(f"/cases/{cid}").text)
    r = http.post(f"/cases/{cid}/decide", data={"csrf": csrf_of(page), "action": "confirm",
                                                "reason": "gambling ads, checked"})
    assert r.status_code == 303 and status_of(web, cid) == "confirmed"
    case = web["store"].get_case(cid)
    last = case["history"][-1]
    assert (last["actor"], last["action"], last["to_status"], last["reason"]) == \
        ("alice", "confirm", "confirmed", "gambling ads, checked")
    entries = [e for e in read_audit(web["settings"]) if e["action"] == "case.confirm"]
    assert entries and entries[-1]["actor"] == "alice" and entries[-1]["details"]["case_id"] == cid
    assert verify_audit(web["settings"]).ok
    # the page shows the decision; a move the store does not allow is refused with its reason
    page = http.get(f"/cases/{cid}").text
    assert "open → confirmed" in flash_of(page) and 'id="case-status">confirmed<' in page
    r = http.post(f"/cases/{cid}/decide", data={"csrf": csrf_of(page), "action": "confirm", "reason": "again"})
    assert "cannot become confirmed" in flash_of(http.get(f"/cases/{cid}").text)


def test_no_action_by_get_and_none_without_the_csrf_token(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    cid = web["ids"]["malware"]
    for path in (f"/cases/{cid}/decide?action=confirm&reason=x", f"/cases/{cid}/claim", "/enforcement/plan",
                 "/enforcement/apply", "/logout", f"/cases/{cid}/undo"):
        assert http.get(path).status_code == 405, path
    for token in (None, "forged-token"):
        data = {"action": "dismiss", "reason": "x", **({"csrf": token} if token else {})}
        r = http.post(f"/cases/{cid}/decide", data=data)
        assert r.status_code == 403 and "security token" in r.text
    assert status_of(web, cid) == "open"
    assert web["store"].db.scalar("SELECT COUNT(*) FROM plans") == 0
    assert http.get("/").status_code == 200   # still logged in: GET /logout did nothing either


def test_claims_keep_two_reviewers_apart_and_expire(web: dict[str, Any]) -> None:
    alice, root = client(web, "alice"), client(web, "root")
    bob = client(web, "bob")
    cid = web["ids"]["superstition"]
    token = csrf_of(alice.get("/").text)
    assert alice.post(f"/cases/{cid}/claim", data={"csrf": token}).status_code == 303
    assert "claimed by <strong>alice</strong>" in bob.get(f"/cases/{cid}").text
    # bob can neither claim it nor decide it while alice holds it
    btoken = csrf_of(bob.get("/").text)
    bob.post(f"/cases/{cid}/claim", data={"csrf": btoken})
    assert "claimed by alice" in flash_of(bob.get(f"/cases/{cid}").text)
    bob.post(f"/cases/{cid}/decide", data={"csrf": btoken, "action": "dismiss", "reason": "not a violation"})
    assert status_of(web, cid) == "open"
    # the queue's assignment filters
    assert rows_of(alice.get("/?assigned=me&status=open").text) == [cid]
    assert cid not in rows_of(bob.get("/?assigned=me&status=open").text)
    assert cid not in rows_of(bob.get("/?assigned=unassigned&status=open&severity=medium").text)
    history = [h["action"] for h in web["store"].get_case(cid)["history"]]
    assert "claimed" in history
    # a claim expires by itself
    web["store"].db.execute("UPDATE web_claims SET expires_at='2000-01-01T00:00:00+00:00' WHERE case_id=?", (cid,))
    assert cid in rows_of(bob.get("/?assigned=unassigned&status=open&severity=medium").text)
    bob.post(f"/cases/{cid}/claim", data={"csrf": btoken})
    # an admin may release anyone's claim
    rtoken = csrf_of(root.get("/").text)
    assert root.post(f"/cases/{cid}/release", data={"csrf": rtoken}).status_code == 303
    assert web["store"].db.scalar("SELECT COUNT(*) FROM web_claims WHERE case_id=?", (cid,)) == 0
    actors = [(e["actor"], e["action"]) for e in read_audit(web["settings"])]
    assert ("alice", "case.claim") in actors and ("root", "case.release") in actors


def test_queue_keyset_pages_cover_every_case_once_in_order(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    n = web["store"].db.scalar("SELECT COUNT(*) FROM cases WHERE status IN ('open','confirmed')")
    for sort, key in (("severity", None), ("hits", "hit_count"), ("last_seen", "last_seen")):
        seen: list[str] = []
        url = f"/?sort={sort}"
        while url:
            page = http.get(url).text
            seen += rows_of(page)
            m = re.search(r'id="next-page" href="([^"]+)"', page)
            url = htmllib.unescape(m.group(1)) if m else ""
        assert len(seen) == len(set(seen)) == n, sort
        rows = {r["case_id"]: r for r in web["store"].db.all("SELECT * FROM cases")}
        if key:
            values = [rows[c][key] for c in seen]
            assert values == sorted(values, reverse=True), sort
        else:
            rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
            values = [rank[rows[c]["severity"]] for c in seen]
            assert values == sorted(values)


def test_queue_filters_and_counts(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    ids = web["ids"]
    page = http.get("/?category=contraband_gambling").text
    total = web["store"].db.scalar("SELECT COUNT(*) FROM cases WHERE category='contraband_gambling'")
    assert f'<span id="total">{total}</span>' in page
    # per-value counts of the other facets under this filter
    assert re.search(r'data-facet="severity" data-value="high">high <span class="n">' + str(total), page)
    page = http.get("/?source=logs").text
    assert rows_of(page) == [ids["log"]] and '<span id="total">1</span>' in page
    page = http.get("/?account=acc1").text
    assert sorted(rows_of(page)) == sorted([ids["malware"], ids["gambling"]])
    page = http.get("/?rule=objects.malware").text
    assert '<span id="total">1</span>' in page and rows_of(page) == [ids["malware"]]
    page = http.get("/?status=dismissed").text
    assert '<span id="total">0</span>' in page and "No case matches" in page


def test_bulk_dismiss_reports_refusals_and_goes_on(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    ids = web["ids"]
    token = csrf_of(http.get("/").text)
    web["store"].transition(ids["superstition"], "dismissed", by="cli", reason="earlier")
    r = http.post("/bulk", data={"csrf": token, "action": "dismiss", "reason": "duplicate of another case",
                                 "case_id": [ids["malware"], ids["superstition"]], "back": "/?sort=hits"})
    assert r.status_code == 303 and r.headers["location"] == "/?sort=hits"
    assert status_of(web, ids["malware"]) == "dismissed"
    assert "1 refused" in flash_of(http.get("/").text)
    r = http.post("/bulk", data={"csrf": token, "action": "claim", "case_id": [ids["log"]],
                                 "back": "https://elsewhere.example/"})
    assert r.headers["location"] == "/"    # never a redirect off the site


def test_reviewer_cannot_apply_approver_can(web: dict[str, Any]) -> None:
    alice, bob = client(web, "alice"), client(web, "bob")
    ids = web["ids"]
    token = csrf_of(alice.get("/").text)
    alice.post(f"/cases/{ids['gambling']}/decide", data={"csrf": token, "action": "confirm", "reason": "checked"})
    assert alice.post("/enforcement/plan", data={"csrf": token}).status_code == 303
    plan = web["store"].db.one("SELECT plan_id, status, created_by FROM plans")
    assert plan["status"] == "planned" and plan["created_by"] == "alice"
    page = alice.get("/enforcement").text
    assert plan["plan_id"] in page and re.search(r'id="apply-plan"[^>]*disabled', page)
    r = alice.post("/enforcement/apply", data={"csrf": token, "plan_id": plan["plan_id"]})
    assert r.status_code == 403 and "approver" in r.text
    assert web["store"].db.scalar("SELECT status FROM plans") == "planned"
    assert web["store"].db.scalar("SELECT COUNT(*) FROM actions") == 0
    assert ("alice", "web.refused") in [(e["actor"], e["action"]) for e in read_audit(web["settings"])]
    # the approver applies it: the actions are queued with bob's name; the cases stay confirmed until
    # the endpoint acknowledges the actions (no endpoint here)
    btoken = csrf_of(bob.get("/enforcement").text)
    r = bob.post("/enforcement/apply", data={"csrf": btoken, "plan_id": plan["plan_id"]})
    assert r.status_code == 303
    assert "queued" in flash_of(bob.get("/enforcement").text)
    assert web["store"].db.one("SELECT status, applied_by FROM plans") == {"status": "applied", "applied_by": "bob"}
    assert status_of(web, ids["gambling"]) == "confirmed" and status_of(web, ids["malware"]) == "confirmed"
    applied = [e for e in read_audit(web["settings"]) if e["action"] == "enforce.apply"]
    assert applied[-1]["actor"] == "bob" and ids["gambling"] in applied[-1]["details"]["enforced_cases"]
    outbox = bob.get("/enforcement?status=pending").text
    assert "disable_object" in outbox and ids["gambling"] in outbox
    # undo from the case page: approvers only, dismisses the case and queues the undo
    r = alice.post(f"/cases/{ids['gambling']}/undo", data={"csrf": token, "reason": "appeal upheld"})
    assert r.status_code == 403 and status_of(web, ids["gambling"]) == "confirmed"
    bob.post(f"/cases/{ids['gambling']}/undo", data={"csrf": btoken, "reason": "appeal upheld"})
    assert status_of(web, ids["gambling"]) == "dismissed"
    kinds = [r["kind"] for r in web["store"].db.all("SELECT kind FROM actions WHERE case_id=?", (ids["gambling"],))]
    assert "undo" in kinds


def test_logout_ends_the_session(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    stolen = http.cookies.get("cp_session")
    token = csrf_of(http.get("/").text)
    assert http.post("/logout", data={"csrf": token}).status_code == 303
    replay = client(web)
    replay.cookies.set("cp_session", stolen or "")
    assert replay.get("/").status_code == 303    # the signed cookie alone no longer opens anything
    forged = client(web)
    forged.cookies.set("cp_session", "not-signed-by-the-app")
    assert forged.get("/").status_code == 303


def test_rules_page_and_draft_backtest(web: dict[str, Any]) -> None:
    http = client(web, "alice")
    page = http.get("/rules").text
    assert "objects.gambling.promotion" in page and "§3.1.3.5.4" in page
    r = http.post("/rules/backtest", data={"csrf": csrf_of(page), "draft": "/etc/passwd"})
    assert r.status_code == 303 and "pick a draft file" in flash_of(http.get("/rules").text)


def test_users_add_cli(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"sqlite:///{tmp_path / 'cases.db'}")
    runner = CliRunner()
    r = runner.invoke(main, ["--config", cfg, "users", "add", "carol", "--role", "approver", "--password-stdin"],
                      input="carol-password\n")
    assert r.exit_code == 0, r.output
    store = CaseStore(f"sqlite:///{tmp_path / 'cases.db'}")
    row = store.db.one("SELECT role, password_hash FROM web_users WHERE name='carol'")
    store.close()
    assert row["role"] == "approver" and row["password_hash"].startswith("$argon2id$")
    assert "carol-password" not in json.dumps(row)
    again = runner.invoke(main, ["--config", cfg, "users", "add", "carol", "--role", "reviewer", "--password-stdin"],
                          input="carol-password\n")
    assert again.exit_code == 2 and "already exists" in again.output and "--replace" in again.output
    bad = runner.invoke(main, ["--config", cfg, "users", "add", "x y", "--role", "reviewer", "--password-stdin"],
                        input="long-enough-pw\n")
    assert bad.exit_code == 2 and "not allowed" in bad.output
    short = runner.invoke(main, ["--config", cfg, "users", "add", "dave", "--role", "reviewer", "--password-stdin"],
                          input="short\n")
    assert short.exit_code == 2 and "too short" in short.output
    role = runner.invoke(main, ["--config", cfg, "users", "add", "erin", "--role", "boss"])
    assert role.exit_code == 2 and "reviewer" in role.output
    listed = runner.invoke(main, ["--config", cfg, "users", "list"])
    assert "carol\tapprover\tpassword" in listed.output
