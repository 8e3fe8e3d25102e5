"""The review app in a real browser: the system's headless Chromium (Debian's `chromium` package, put
there by .ci/run), driven by Playwright, against the app served for real on 127.0.0.1. Playwright is
given the system's executable: it never downloads a browser of its own."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from web_server import (EVIL_KEY, EVIL_UA, EVIL_URI, PASSWORDS, XSS_IMG, XSS_SCRIPT, WebServer,  # noqa: E402
                        add_users, seed, write_config)

from pipeline.cases.store import CaseStore  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.query.audit import read_audit  # noqa: E402

CHROMIUM = os.environ.get("COMPLIANCE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (as .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    settings = load_settings(write_config(tmp_path, url))
    store = CaseStore(url)
    ids = seed(store, extra_objects=3)
    add_users(store)
    server = WebServer(settings).start()
    yield {"settings": settings, "store": store, "ids": ids, "url": server.url}
    server.stop()
    store.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.dialogs = []            # any alert() would be an injected script running
    pg.errors = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def log_in(page: Any, web: dict[str, Any], name: str) -> None:
    page.goto(web["url"] + "/")
    assert page.url.startswith(web["url"] + "/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORDS[name])
    page.click("#login")
    page.wait_for_selector("#queue-table")
    assert page.inner_text("#whoami") == name


def test_log_in_filter_open_confirm_and_the_store_shows_it(page: Any, web: dict[str, Any]) -> None:
    log_in(page, web, "alice")
    ids = web["ids"]
    # filter the queue: objects of account acc1, most hits first
    page.fill("#f-account", "acc1")
    page.select_option("#f-source", "objects")
    page.click("#apply-filters")
    page.wait_for_url("**/?*account=acc1*")
    rows = page.eval_on_selector_all("#queue-table tr.row", "rs => rs.map(r => r.dataset.case)")
    assert sorted(rows) == sorted([ids["malware"], ids["gambling"]])
    assert page.inner_text("#total") == "2"
    # open the case with the keyboard: j to the first row, then Enter
    page.keyboard.press("j")
    first = page.eval_on_selector("#queue-table tr.current", "r => r.dataset.case")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/cases/{first}")
    page.goto(f"{web['url']}/cases/{ids['gambling']}")
    assert "博彩有奖、赌博游戏" in page.inner_text("#clause-text")
    # confirm with a reason: `c` picks confirm and moves to the reason field
    page.keyboard.press("c")
    assert page.is_checked("#act-confirm")
    assert page.evaluate("document.activeElement.id") == "reason"
    page.keyboard.type("gambling ads, checked in the browser")
    page.click("#decide-submit")
    page.wait_for_selector("#flash")
    assert "open → confirmed" in page.inner_text("#flash")
    assert page.inner_text("#case-status") == "confirmed"
    case = web["store"].get_case(ids["gambling"])
    assert case["status"] == "confirmed"
    assert (case["history"][-1]["actor"], case["history"][-1]["reason"]) == ("alice", "gambling ads, checked in the browser")
    assert any(e["actor"] == "alice" and e["action"] == "case.confirm" for e in read_audit(web["settings"]))
    assert not page.errors and not page.dialogs


def test_a_reason_is_required_in_the_browser(page: Any, web: dict[str, Any]) -> None:
    log_in(page, web, "alice")
    cid = web["ids"]["malware"]
    page.goto(f"{web['url']}/cases/{cid}")
    page.check("#act-dismiss")
    page.click("#decide-submit")           # empty reason: the browser does not even send the form
    assert page.evaluate("document.getElementById('reason').validity.valueMissing")
    assert web["store"].get_case(cid)["status"] == "open"


def test_markup_in_evidence_renders_as_text_and_runs_no_script(page: Any, web: dict[str, Any]) -> None:
    log_in(page, web, "alice")
    ids = web["ids"]
    page.goto(f"{web['url']}/?sort=hits")
    page.goto(f"{web['url']}/cases/{ids['evil']}")
    text = page.inner_text("#evidence")
    assert XSS_SCRIPT in text and XSS_IMG in text          # shown, as text
    assert page.inner_text("#subject-id") == EVIL_KEY
    assert page.inner_text("#evidence mark") == "casino"   # the matched span, highlighted
    # nothing it carries became an element, and nothing ran
    assert page.eval_on_selector_all("main script, main img", "els => els.length") == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.goto(f"{web['url']}/cases/{ids['log']}")
    text = page.inner_text("#evidence")
    assert EVIL_URI in text and EVIL_UA in text
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.goto(f"{web['url']}/?category=contraband_gambling")
    assert XSS_SCRIPT in page.inner_text("#queue-table")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert not page.dialogs and not page.errors


def test_a_reviewers_apply_is_refused(page: Any, web: dict[str, Any]) -> None:
    log_in(page, web, "alice")
    page.goto(f"{web['url']}/enforcement")
    page.click("#make-plan")
    page.wait_for_selector("#plan-id")
    plan_id = page.inner_text("#plan-id")
    assert page.is_disabled("#apply-plan")
    # a reviewer who gets past the disabled button (here: by removing it) is refused by the server
    page.evaluate("document.getElementById('apply-plan').removeAttribute('disabled')")
    page.click("#apply-plan")
    page.wait_for_selector("#error-message")
    assert "approver" in page.inner_text("#error-message")
    store = web["store"]
    assert store.db.scalar("SELECT status FROM plans WHERE plan_id=?", (plan_id,)) == "planned"
    assert store.db.scalar("SELECT COUNT(*) FROM actions") == 0
    assert store.get_case(web["ids"]["malware"])["status"] == "open"


def test_an_approver_applies_the_plan(page: Any, web: dict[str, Any]) -> None:
    log_in(page, web, "bob")
    page.goto(f"{web['url']}/enforcement")
    page.click("#make-plan")
    page.wait_for_selector("#plan-id")
    plan_id = page.inner_text("#plan-id")
    page.click("#apply-plan")
    page.wait_for_selector("#flash")
    assert "queued" in page.inner_text("#flash")
    assert page.inner_text("#plan-status") == "applied"
    store = web["store"]
    assert store.db.one("SELECT status, applied_by FROM plans WHERE plan_id=?", (plan_id,)) == \
        {"status": "applied", "applied_by": "bob"}
    assert store.get_case(web["ids"]["malware"])["status"] == "confirmed"   # until the endpoint acknowledges


DRAFT = """rules:
  - id: objects.draft.opaque_blobs
    title: Opaque blob files
    clause: "3.1.3.7"
    category: attack_malware
    severity: low
    source: objects
    match:
      keywords: [blob_]
      fields: [key]
"""


def test_a_new_user_on_the_bundled_sample(page: Any, tmp_path: Path, dask_client: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """As the README goes: scan the sample, add a reviewer with `compliance users add`, serve, and work
    the sample's cases in the browser; a draft rule is backtested from the rules page."""
    from click.testing import CliRunner

    from pipeline.cli import main
    from pipeline.runner import scan

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "drafts").mkdir()
    (tmp_path / "drafts" / "blobs.yaml").write_text(DRAFT, encoding="utf-8")
    monkeypatch.setenv("COMPLIANCE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COMPLIANCE_WEB__DRAFTS", str(tmp_path / "drafts"))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", dask_client.scheduler.address)
    config = str(root / "config.yaml")
    settings = load_settings(config)
    scan(settings, config_path=config, client=dask_client)
    added = CliRunner().invoke(main, ["--config", config, "users", "add", "alice", "--role", "reviewer",
                                      "--password-stdin"], input=PASSWORDS["alice"] + "\n")
    assert added.exit_code == 0, added.output
    store = CaseStore(f"sqlite:///{tmp_path / 'state' / 'cases.db'}")
    server = WebServer(settings).start()
    try:
        web = {"url": server.url}
        log_in(page, web, "alice")
        open_cases = store.db.scalar("SELECT COUNT(*) FROM cases WHERE status IN ('open', 'confirmed')")
        assert open_cases > 50 and page.inner_text("#total") == str(open_cases)
        assert page.is_visible("#next-page")           # more than a page: the rest is a click away
        # the access-log cases: the request line and the matched span inside the original URI
        page.select_option("#f-source", "logs")
        page.click("#apply-filters")
        page.wait_for_url("**/?*source=logs*")
        logs = store.db.scalar("SELECT COUNT(*) FROM cases WHERE status IN ('open', 'confirmed') AND source = 'logs'")
        assert page.inner_text("#total") == str(logs)
        injection = store.db.scalar("SELECT case_id FROM cases WHERE rule_id = 'logs.injection.payload' LIMIT 1")
        page.goto(f"{server.url}/cases/{injection}")
        request = page.inner_text("#evidence .request")
        evidence = store.get_case(injection)["evidence"][0]
        assert request.startswith(f"{evidence['method']} {evidence['uri']}")
        assert page.inner_text("#evidence mark") in evidence["uri"]
        assert "网络安全" in page.inner_text("#clause-text")
        # decide it with a reason, from the keyboard
        page.keyboard.press("c")
        page.keyboard.type("traversal probe, checked")
        page.click("#decide-submit")
        page.wait_for_selector("#flash")
        assert store.get_case(injection)["status"] == "confirmed"
        entry = [e for e in read_audit(settings) if e["action"] == "case.confirm"][-1]
        assert (entry["actor"], entry["details"]["case_id"], entry["details"]["via"]) == ("alice", injection, "web")
        # the rules page: counts per rule from the store, and a draft's backtest over the sample
        page.goto(f"{server.url}/rules")
        row = page.inner_text("#rules-table tr:has(a[href='/?rule=logs.injection.payload'])")
        n = store.db.scalar("SELECT COUNT(*) FROM cases WHERE rule_id = 'logs.injection.payload' AND status = 'open'")
        assert f"\t{n}\t" in f"\t{row}\t"
        page.click("#run-backtest")
        page.wait_for_selector("#backtest-summary", timeout=180_000)
        summary = page.inner_text("#backtest-summary")
        opens = int(summary.split(" case(s) would open")[0].rsplit(" ", 1)[1])
        assert opens > 0 and "objects.draft.opaque_blobs" in page.inner_text("#backtest")
        ran = [e for e in read_audit(settings) if e["action"] == "rules.backtest"][-1]
        assert (ran["actor"], ran["details"]["opens"]) == ("alice", opens)
        assert not page.errors and not page.dialogs
    finally:
        server.stop()
        store.close()
