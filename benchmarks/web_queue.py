"""The review queue's response time on a large case store, on SQLite and on PostgreSQL: a store of
--cases generated cases built with one bulk INSERT ... SELECT per engine (the scan path would take
hours at this size), the app served for real by uvicorn on 127.0.0.1, pages fetched over HTTP by a
logged-in client.

    python benchmarks/web_queue.py --cases 1000000                 # both engines
    python benchmarks/web_queue.py --cases 1000000 --engine sqlite

Figures are medians of --rounds fetches, each printed with a ratio against a baseline measured in
the same run on the same store (the machine is shared; absolute numbers are noisy):
- pages against the same page read with LIMIT/OFFSET in SQL alone (what a queue without keyset
  pagination does), at the same depth;
- counts against the same grouped count read from the table rows instead of an index.
Pages are timed twice: counting on every request (web.counts_ttl_s 0, the worst case) and with the
counts reused (the default 15 s: what a reviewer paging through the queue sees).

The stores are kept (SQLite in --store, PostgreSQL in the database of --pg-url, created when
missing) and reused when they already hold the requested number of cases.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from pipeline.cases.store import CaseStore
from pipeline.config import load_settings
from pipeline.web.app import create_app
from pipeline.web.queue import Filters, encode_cursor
from pipeline.web.users import SEVERITY_RANK, User, add_user, migrate

CATEGORIES = ["contraband_gambling", "pornographic_explicit", "attack_phishing", "attack_malware", "abuse_bandwidth",
              "contraband_game_cheat", "political_rumour", "inappropriate_superstition"]
SEVS = ["low", "medium", "high", "critical"]
# (share in percent, status)
STATUSES = [(55, "open"), (10, "confirmed"), (5, "enforced"), (20, "resolved"), (10, "dismissed")]
# (share in 20ths, source); a rule reading several sources keeps them comma-joined
SOURCES = [(11, "objects"), (5, "logs"), (2, "streams"), (1, "icp"), (1, "logs,objects")]
ACCOUNTS = 20_000
DEEP_PAGE = 200


def _case(expr: str, values: list[str]) -> str:
    return f"CASE {expr} " + " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values)) + " END"


def _weighted(expr: str, shares: list[tuple[int, str]]) -> str:
    out, upto = [], 0
    for share, value in shares:
        upto += share
        out.append(f"WHEN {expr} < {upto} THEN '{value}'")
    return "CASE " + " ".join(out) + " END"


def fill_sql(dialect: str, n: int) -> list[str]:
    """The statements that put ``n`` cases (and 1% rule_changed history rows, and one completed
    run) into a migrated, empty store. Values are spread by multiplicative hashes of the row number,
    so both engines get the same store."""
    if dialect == "sqlite":
        series = f"WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < {n - 1})"
        src, i = "g", "i"
        pad7 = f"printf('%07d', {i})"
        acct = "printf('%05d', ({h}) % {a})"
        hexid = f"printf('%016x', {i})"
        ts = "strftime('%Y-%m-%dT%H:%M:%S+00:00', {x}, 'unixepoch')"
    else:
        series = ""
        src, i = f"generate_series(0, {n - 1}) AS g(i0) CROSS JOIN LATERAL (SELECT i0::bigint AS i) b", "i"
        pad7 = f"lpad({i}::text, 7, '0')"
        acct = "lpad((({h}) % {a})::text, 5, '0')"
        hexid = f"lpad(to_hex({i}), 16, '0')"
        ts = "to_char(to_timestamp({x}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"

    def h(k: int) -> str:   # a different spread of the row number per column
        return f"(({i} * {2654435761 + 2 * k}) % 4294967296)"

    key = f"'bucket-' || ({i} % 5000) || '/media/file_' || {pad7} || '.jpg'"
    seen = ts.format(x=f"(1767225600 + {h(1)} % 25920000)")
    cat = _case(f"({h(2)} % {len(CATEGORIES)})", CATEGORIES)
    source = _weighted(f"({h(3)} % 20)", SOURCES)
    rule = f"(CASE WHEN {h(3)} % 20 = 19 THEN 'sigma' ELSE {source} END) || '.' || {cat}"
    evidence = (f"'[{{\"hit_key\": \"' || {key} || '@e1\", \"source_file\": \"objects.csv\", \"source_line\": ' "
                f"|| ({i} + 2) || ', \"event_time\": \"' || {seen} || '\", \"key\": \"' || {key} || "
                f"'\", \"matches\": [{{\"field\": \"key\", \"kind\": \"keywords\", \"pattern\": \"file\", "
                f"\"text\": \"file\", \"span\": [' || (length({key}) - 16) || ', ' || (length({key}) - 12) || ']}}]}}]'")
    cases = (f"{series} INSERT INTO cases (case_id, rule_id, rule_hash, rule_title, clause, law, category, severity,"
             " source, subject_type, subject_id, account_id, status, first_seen, last_seen, first_event, last_event,"
             " hit_count, evidence, updated_at) "
             f"SELECT 'C' || {hexid}, {rule}, 'h0h1h2h3h4h5h6h7h8h9', {cat} || ' rule', '3.1.3.5.4', NULL, {cat},"
             f" {_case(f'({h(4)} % 4)', SEVS)}, {source}, 'object', {key},"
             f" 'acct-' || {acct.format(h=h(5), a=ACCOUNTS)}, {_weighted(f'({h(6)} % 100)', STATUSES)},"
             f" {seen}, {seen}, {seen}, {seen}, 1 + {h(7)} % 199, {evidence}, {seen} FROM {src}")
    history = ("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id)"
               " SELECT case_id, last_seen, 'scan', 'rule_changed', NULL, NULL, 'rule ' || rule_id || ' now h1', 'R1'"
               " FROM cases WHERE hit_count % 100 = 7")
    run = ("INSERT INTO runs (run_id, started_at, finished_at, status, rows_read, rows_parsed, hits)"
           f" VALUES ('R1', '2026-01-01T00:00:00+00:00', '2026-01-01T01:00:00+00:00', 'completed', {40 * n}, {40 * n},"
           f" {n})")
    stmts = [cases, history, run]
    # psycopg reads % as a placeholder: the modulo operator is written %% there
    return stmts if dialect == "sqlite" else [x.replace("%", "%%") for x in stmts]


def build(url: str, n: int) -> CaseStore:
    store = CaseStore(url)
    have = store.db.scalar("SELECT COUNT(*) FROM cases")
    if have != n:
        t = time.perf_counter()
        with store.transaction() as db:
            for table in ("cases", "case_history", "runs") + (("web_claims",) if _has(store, "web_claims") else ()):
                db.execute(f"DELETE FROM {table}")
            for stmt in fill_sql(store.dialect, n):
                db.execute(stmt)
        print(f"[{store.dialect}] {n} cases generated with bulk SQL in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    migrate(store.db)   # the app's tables and the queue's indexes, built on first use
    if store.dialect == "postgresql":
        store.db.execute("VACUUM ANALYZE cases")   # visibility map: index-only scans for the counts
        store.db.execute("VACUUM ANALYZE case_history")
    print(f"[{store.dialect}] app tables, indexes and statistics ready in {time.perf_counter() - t:.1f} s", flush=True)
    if store.db.one("SELECT name FROM web_users WHERE name='bench'") is None:
        add_user(store.db, "bench", "reviewer", "bench-password")
    return store


def _has(store: CaseStore, table: str) -> bool:
    if store.dialect == "sqlite":
        return store.db.one("SELECT name FROM sqlite_master WHERE type='table' AND name=?", (table,)) is not None
    return store.db.scalar("SELECT to_regclass(?) IS NOT NULL", (table,)) is True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm: the first read of a page brings its index pages into the cache
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


@contextmanager
def served(settings: Any) -> Iterator[httpx.Client]:
    port = free_port()
    web = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=120) as http:
            http.get("/login")
            r = http.post("/login", data={"name": "bench", "password": "bench-password",
                                          "csrf": http.cookies.get("cp_login", "")})
            assert r.status_code == 303, r.text[:300]
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        web.state.app.close()


@contextmanager
def no_index(store: CaseStore) -> Iterator[str]:
    """The grouped count read from the table rows: the baseline an index-backed count is measured against."""
    if store.dialect == "sqlite":
        yield "cases NOT INDEXED"
        return
    for knob in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
        store.db.execute(f"SET {knob} = off")
    try:
        yield "cases"
    finally:
        for knob in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            store.db.execute(f"RESET {knob}")


def run_engine(url: str, state: Path, n: int, rounds: int) -> None:
    store = build(url, n)
    db = store.db
    dialect = store.dialect
    size = 50
    os.environ["COMPLIANCE_STATE_DIR"] = str(state)
    os.environ["COMPLIANCE_CASE_STORE"] = url
    os.environ["COMPLIANCE_WEB__PAGE_SIZE"] = str(size)

    def offset(order: str, depth: int, where: str = "status IN ('open','confirmed')") -> Callable[[], Any]:
        return lambda: db.all(f"SELECT * FROM cases WHERE {where} ORDER BY {order} LIMIT {size} OFFSET {depth}")

    # the cursor after page DEEP_PAGE - 1 by last seen: the row a reviewer paging on would stop at
    deep = db.one("SELECT last_seen, case_id FROM cases WHERE status IN ('open','confirmed')"
                  f" ORDER BY last_seen DESC, case_id DESC LIMIT 1 OFFSET {(DEEP_PAGE - 1) * size - 1}")
    assert deep is not None
    deep_url = "/?" + "&".join(f"{k}={v}" for k, v in
                               Filters(sort="last_seen", after=encode_cursor(deep["last_seen"], deep["case_id"]))
                               .query().items())
    account = db.scalar("SELECT account_id FROM cases WHERE case_id = 'C0000000000000007'")
    pages = [
        ("queue page 1, by severity", "/", offset(f"{SEVERITY_RANK}, case_id", 0)),
        ("queue page 1, by last seen", "/?sort=last_seen", offset("last_seen DESC, case_id DESC", 0)),
        ("queue page 1, by hits", "/?sort=hits", offset("hit_count DESC, case_id DESC", 0)),
        (f"queue page {DEEP_PAGE} (keyset), by last seen", deep_url,
         offset("last_seen DESC, case_id DESC", (DEEP_PAGE - 1) * size)),
        (f"  the same, status=confirmed, page 1", "/?status=confirmed&sort=last_seen",
         offset("last_seen DESC, case_id DESC", 0, "status = 'confirmed'")),
        ("filter category=attack_phishing", "/?category=attack_phishing",
         offset(f"{SEVERITY_RANK}, case_id", 0, "status IN ('open','confirmed') AND category='attack_phishing'")),
        ("filter severity=critical", "/?severity=critical",
         offset("case_id", 0, "status IN ('open','confirmed') AND severity='critical'")),
        ("filter source=streams", "/?source=streams",
         offset(f"{SEVERITY_RANK}, case_id", 0, "status IN ('open','confirmed') AND source='streams'")),
        (f"filter account={account}", f"/?account={account}",
         offset(f"{SEVERITY_RANK}, case_id", 0, f"status IN ('open','confirmed') AND account_id='{account}'")),
        ("filter rule=objects.attack_malware", "/?rule=objects.attack_malware",
         offset(f"{SEVERITY_RANK}, case_id", 0,
                "status IN ('open','confirmed') AND rule_id='objects.attack_malware'")),
        ("filter unassigned", "/?assigned=unassigned", offset(f"{SEVERITY_RANK}, case_id", 0)),
        ("case page", "/cases/C0000000000000007", None),
        ("rules page (counts per rule)", "/rules", None),
    ]
    print(f"\n[{dialect}] {n} cases; medians of {rounds} fetches over HTTP; ratio: against the same page by"
          " LIMIT/OFFSET in SQL alone")
    print(f"{'what':48} {'counted each time':>18} {'counts reused':>14} {'OFFSET, SQL':>12} {'ratio':>7}")
    timings: dict[str, list[float]] = {}
    for ttl in ("0", "15"):
        os.environ["COMPLIANCE_WEB__COUNTS_TTL_S"] = ttl
        settings = load_settings(None)
        with served(settings) as http:
            def get(path: str) -> Callable[[], Any]:
                def fetch() -> None:
                    resp = http.get(path)
                    assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
                return fetch

            for name, path, _ in pages:
                timings.setdefault(name, []).append(median_ms(get(path), rounds))
    for name, _, base in pages:
        each, reused = timings[name]
        b = median_ms(base, rounds) if base is not None else None
        ratio = f"{each / b:.2f}x" if b else ""
        print(f"{name:48} {each:15.1f} ms {reused:11.1f} ms "
              + (f"{b:9.1f} ms {ratio:>7}" if b is not None else ""), flush=True)

    # the counts alone, per filter: what each queue page asks when it counts
    from pipeline.web.queue import CountCache

    user = User("bench", "reviewer")
    cc = CountCache(0)
    print(f"\n[{dialect}] counts per filter value (status × severity × category), SQL only; ratio: against the"
          " same grouped count read from the table rows")
    print(f"{'filters':48} {'indexed':>11} {'table rows':>13} {'ratio':>7}")
    for label, f in [("none (the queue as opened)", Filters()), ("source=streams", Filters(source="streams")),
                     (f"account={account}", Filters(account=account)),
                     ("rule=objects.attack_malware", Filters(rule="objects.attack_malware")),
                     ("assigned=unassigned", Filters(assigned="unassigned"))]:
        ms = median_ms(lambda f=f: cc.grouped(db, f, user), rounds)
        from pipeline.web.queue import _where

        where, args = _where(f, user, with_facets=False, db=db)
        with no_index(store) as table:
            sql = (f"SELECT status, severity, category, COUNT(*) AS n FROM {table}"
                   + (" WHERE " + " AND ".join(where) if where else "") + " GROUP BY status, severity, category")
            b = median_ms(lambda: db.all(sql, args), max(1, rounds // 2))
        print(f"{label:48} {ms:8.1f} ms {b:10.1f} ms {ms / b:6.2f}x", flush=True)
    from pipeline.web.ops import rule_stats

    ms = median_ms(lambda: rule_stats(db), rounds)
    with no_index(store) as table:
        b = median_ms(lambda: db.all(f"SELECT rule_id, status, COUNT(*) AS n, SUM(hit_count) AS hits FROM {table}"
                                     " GROUP BY rule_id, status"), max(1, rounds // 2))
    print(f"{'rules page: per rule and status, last change':48} {ms:8.1f} ms {b:10.1f} ms {ms / b:6.2f}x", flush=True)
    store.close()


def pg_database(url: str) -> str:
    """Create the benchmark's PostgreSQL database when it is missing (it never shares the tests' one)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--store", type=Path, default=None, help="folder for the SQLite store and app state (kept)")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/web_queue_bench",
                    help="PostgreSQL database for the benchmark's store (created when missing)")
    args = ap.parse_args()
    folder = args.store or Path(tempfile.mkdtemp(prefix="web-queue-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.engine in ("sqlite", "both"):
        run_engine(f"sqlite:///{folder / 'cases.db'}", folder / "sqlite-state", args.cases, args.rounds)
    if args.engine in ("postgresql", "both"):
        run_engine(pg_database(args.pg_url), folder / "pg-state", args.cases, args.rounds)
    print(f"\nstores kept in {folder} and {args.pg_url}", file=sys.stderr)


if __name__ == "__main__":
    main()
