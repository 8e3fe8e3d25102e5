"""Take the README's screenshots of the review app: the bundled sample scanned into a temporary state
folder, a reviewer added, the app served on 127.0.0.1, and the queue and a case page photographed
by the system's headless Chromium.

    python tests/web_screenshots.py            # writes docs/review-queue.png, docs/review-case.png

Chinese text needs a CJK font on the machine (Debian: fonts-wqy-microhei or fonts-noto-cjk).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from web_server import ROOT, WebServer  # noqa: E402

CHROMIUM = os.environ.get("COMPLIANCE_TEST_CHROMIUM", "/usr/bin/chromium")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from pipeline.cases.store import CaseStore
    from pipeline.config import load_settings
    from pipeline.runner import scan
    from pipeline.web.users import add_user, migrate

    tmp = Path(tempfile.mkdtemp(prefix="review-shots-"))
    os.environ["COMPLIANCE_STATE_DIR"] = str(tmp / "state")
    config = str(ROOT / "config.yaml")
    settings = load_settings(config)
    scan(settings, config_path=config)
    store = CaseStore(f"sqlite:///{tmp / 'state' / 'cases.db'}")
    migrate(store.db)
    add_user(store.db, "alice", "reviewer", "alice-password")
    # a log case: request line, the matched span in the URI, a claim and a decision in its history
    shown = store.db.scalar("SELECT case_id FROM cases WHERE rule_id = 'logs.content.gambling_url' "
                            "ORDER BY case_id LIMIT 1")
    other = store.db.scalar("SELECT case_id FROM cases WHERE source = 'objects' ORDER BY case_id LIMIT 1")
    server = WebServer(settings).start()
    docs = ROOT / "docs"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.goto(server.url + "/")
            page.fill("#name", "alice")
            page.fill("#password", "alice-password")
            page.click("#login")
            page.wait_for_selector("#queue-table")
            page.goto(f"{server.url}/cases/{other}")
            page.fill("#reason", "weapons for sale, checked")
            page.click("#decide-submit")
            page.wait_for_selector("#flash")
            page.goto(f"{server.url}/cases/{shown}")
            page.click("#claim")
            page.wait_for_selector("#flash")
            page.goto(server.url + "/")
            page.keyboard.press("j")
            page.keyboard.press("j")
            page.screenshot(path=str(docs / "review-queue.png"))
            page.goto(f"{server.url}/cases/{shown}")
            page.keyboard.press("c")
            page.keyboard.type("gambling landing page, checked")
            page.screenshot(path=str(docs / "review-case.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
        store.close()
    print(f"wrote {docs / 'review-queue.png'} and {docs / 'review-case.png'} (state in {tmp})")


if __name__ == "__main__":
    main()
