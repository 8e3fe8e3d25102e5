"""The review queue's response time on a large case store: a generated SQLite store of --cases cases,
the app served for real by uvicorn on 127.0.0.1, pages fetched over HTTP by a logged-in client.

    python benchmarks/web_queue.py --cases 1000000

Baseline, measured in the same run on the same store: the same page read with LIMIT/OFFSET (what a
queue without keyset pagination does), at the same depth. Figures are medians of --rounds fetches.
The store is kept in --store (default: a temporary folder) and reused when it already holds the
requested number of cases, so a second run skips generating it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.progress import track

from pipeline.cases.store import CaseStore
from pipeline.config import load_settings
from pipeline.web.app import create_app
from pipeline.web.users import SEVERITY_RANK, add_user, migrate

CATEGORIES = ["contraband_gambling", "pornographic_explicit", "attack_phishing", "attack_malware", "abuse_bandwidth",
              "contraband_game_cheat", "political_rumour", "inappropriate_superstition"]
SEVS = ["low", "medium", "high", "critical"]
STATUS_WEIGHTS = [("open", 55), ("confirmed", 10), ("enforced", 5), ("resolved", 20), ("dismissed", 10)]


def fill(path: Path, n: int, seed: int) -> None:
    """Insert ``n`` cases straight into a migrated store (the scan path would take hours at this size)."""
    rng = random.Random(seed)
    CaseStore(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path)
    statuses = [s for s, w in STATUS_WEIGHTS for _ in range(w)]
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    batch: list[tuple[Any, ...]] = []
    conn.execute("BEGIN")
    for i in track(range(n), description=f"generating {n} cases"):
        cat = rng.choice(CATEGORIES)
        key = f"bucket-{i % 5000}/media/file_{i:07d}.jpg"
        seen = (t0 + timedelta(seconds=rng.randrange(300 * 86400))).isoformat()
        ev = json.dumps([{"hit_key": f"{key}@e{i}", "source_file": "objects.csv", "source_line": i + 2,
                          "event_time": seen, "key": key,
                          "matches": [{"field": "key", "kind": "keywords", "pattern": "file", "text": "file",
                                       "span": [len(key) - 16, len(key) - 12]}]}])
        batch.append((f"C{i:016x}", f"objects.{cat}", "h" * 64, f"{cat} rule", "3.1.3.5.4", None, cat,
                      rng.choice(SEVS), "objects", "object", key, f"acct-{rng.randrange(20000):05d}",
                      rng.choice(statuses), seen, seen, seen, seen, rng.randrange(1, 200), ev, seen))
        if len(batch) == 20000:
            conn.executemany("INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category,"
                             " severity, source, subject_type, subject_id, account_id, status, first_seen, last_seen,"
                             " first_event, last_event, hit_count, evidence, updated_at)"
                             " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    if batch:
        conn.executemany("INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category,"
                         " severity, source, subject_type, subject_id, account_id, status, first_seen, last_seen,"
                         " first_event, last_event, hit_count, evidence, updated_at)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    conn.execute("COMMIT")
    conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_ms(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--store", type=Path, default=None, help="folder for the generated store (kept)")
    args = ap.parse_args()
    folder = args.store or Path(tempfile.mkdtemp(prefix="web-queue-"))
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "cases.db"
    have = 0
    if db_path.exists():
        have = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM cases").fetchone()[0]
    if have != args.cases:
        db_path.unlink(missing_ok=True)
        fill(db_path, args.cases, args.seed)
    os.environ["COMPLIANCE_STATE_DIR"] = str(folder)
    os.environ["COMPLIANCE_WEB__COUNTS_TTL_S"] = "0"   # count every time: the worst case
    settings = load_settings(None)
    store = CaseStore(f"sqlite:///{db_path}")
    t = time.perf_counter()
    migrate(store.db)  # builds the queue's indexes on first use
    print(f"store: {args.cases} cases; app tables and indexes ready in {time.perf_counter() - t:.1f} s")
    if store.db.one("SELECT name FROM web_users WHERE name='bench'") is None:
        add_user(store.db, "bench", "reviewer", "bench-password")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as http:
            http.get("/login")
            r = http.post("/login", data={"name": "bench", "password": "bench-password",
                                          "csrf": http.cookies.get("cp_login", "")})
            assert r.status_code == 303, r.text[:300]

            def get(url: str) -> httpx.Response:
                resp = http.get(url)
                assert resp.status_code == 200, (url, resp.status_code)
                return resp

            # the cursor of page 200 (10,000 cases deep), reached the way a reviewer would: page by page
            url = "/?sort=last_seen"
            for _ in track(range(199), description="paging to page 200"):
                html = get(url).text
                marker = 'id="next-page" href="'
                url = html[html.index(marker) + len(marker):].split('"', 1)[0].replace("&amp;", "&")
            deep_url = url
            size = settings.web.page_size
            conn = sqlite3.connect(db_path)

            def offset(sort: str, depth: int) -> None:
                conn.execute(f"SELECT * FROM cases WHERE status IN ('open','confirmed') ORDER BY {sort} "
                             f"LIMIT {size} OFFSET {depth}").fetchall()

            figures = [
                ("queue page 1, by severity (HTTP, counts included)", lambda: get("/"), None),
                ("queue page 1, by last seen", lambda: get("/?sort=last_seen"),
                 lambda: offset("last_seen DESC, case_id DESC", 0)),
                ("queue page 200, by last seen", lambda: get(deep_url),
                 lambda: offset("last_seen DESC, case_id DESC", 199 * size)),
                ("queue page 1, by hits", lambda: get("/?sort=hits"), lambda: offset("hit_count DESC, case_id DESC", 0)),
                ("filter category", lambda: get("/?category=attack_phishing"), None),
                ("filter account", lambda: get("/?account=acct-01234"), None),
                ("filter severity=critical, status=confirmed", lambda: get("/?severity=critical&status=confirmed"), None),
                ("filter unassigned", lambda: get("/?assigned=unassigned"), None),
                ("case page", lambda: get("/cases/C0000000000000007"), None),
            ]
            sev_offset = median_ms(lambda: offset(f"{SEVERITY_RANK}, case_id", 199 * size), args.rounds)
            print(f"\nbaseline: LIMIT/OFFSET at page 200 by severity, SQL only: {sev_offset:.1f} ms\n")
            print(f"{'what':52} {'median ms':>10} {'vs OFFSET':>10}")
            for name, fn, base_fn in figures:
                ms = median_ms(fn, args.rounds)
                ratio = ""
                if base_fn is not None:
                    ratio = f"{ms / median_ms(base_fn, args.rounds):.2f}x"
                print(f"{name:52} {ms:10.1f} {ratio:>10}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"\nstore kept in {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
