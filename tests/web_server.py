"""The review app served for real (uvicorn on 127.0.0.1, a free port) on a case store seeded through
the store's own apply_hits, with users of each role; shared by the HTTP and browser tests."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import uvicorn
import yaml

ROOT = Path(__file__).resolve().parent.parent
XSS_SCRIPT = "<script>window.__xss = 1; alert(1)</script>"
XSS_IMG = '"><img src=x onerror="window.__xss = 2">'
# an object key, a URL, a user agent, a stream title and an account id that carry markup
EVIL_KEY = f"b9/{XSS_SCRIPT}{XSS_IMG}casino.png"
EVIL_URI = f"/search?q={XSS_IMG}&x={XSS_SCRIPT}"
EVIL_UA = f"Mozilla/5.0 {XSS_SCRIPT}"
EVIL_TITLE = f"赌场 {XSS_IMG}"
EVIL_ACCOUNT = 'acc"><b>9'
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "root": "root-password"}
ROLES = {"alice": "reviewer", "bob": "approver", "root": "admin"}

RULES = {
    # rule id: (category, severity, source, title)
    "objects.malware": ("attack_malware", "critical", "objects", "Malware named as such"),
    "objects.gambling": ("contraband_gambling", "high", "objects", f"Gambling {XSS_SCRIPT}"),
    "objects.superstition": ("inappropriate_superstition", "medium", "objects", "Paid rituals"),
    "logs.content": ("contraband_gambling", "high", "logs", "Gambling content requested"),
    "streams.gambling": ("contraband_gambling", "high", "streams", "Gambling stream"),
}


def ruleset() -> Any:
    from pipeline.rules import model as m

    rules = tuple(m.Rule(id=rid, title=title, clause="3.1.3.5.4", category=cat, severity=sev, sources=(src,),
                         match=None, path="t.yaml", line=1, content_hash="h-" + rid)
                  for rid, (cat, sev, src, title) in RULES.items())
    return m.RuleSet(rules, "digest")


def _hit(i: int, rule: str, subject_type: str, subject: str, account: str, field: str, value: str, needle: str,
         context: dict[str, Any]) -> dict[str, Any]:
    start = value.index(needle)
    match = {"field": field, "kind": "keywords", "pattern": needle, "text": needle,
             "span": [start, start + len(needle)], "normalized": needle}
    return {"rule_id": rule, "subject_type": subject_type, "subject_id": subject, "account_id": account,
            "event_time": pd.Timestamp("2026-11-01T00:00:00Z") + pd.Timedelta(minutes=i), "source_file": "f.csv",
            "source_line": i + 2, "hit_key": f"{subject}@{i}",
            "evidence": json.dumps([match], ensure_ascii=False),
            "context": json.dumps({field: value, **context}, ensure_ascii=False)}


def seed(store: Any, extra_objects: int = 0) -> dict[str, str]:
    """Cases of every kind, some carrying markup in every user-supplied string; returns name → case id."""
    from pipeline.cases.ids import case_id
    from pipeline.matchers.hits import HIT_COLUMNS

    rows = [
        _hit(0, "objects.malware", "object", "b1/virus.exe", "acc1", "key", "b1/virus.exe", "virus", {"bucket": "b1"}),
        _hit(1, "objects.gambling", "object", "b1/casino.png", "acc1", "key", "b1/casino.png", "casino", {"bucket": "b1"}),
        _hit(2, "objects.superstition", "object", "b2/fortune.txt", "acc2", "key", "b2/fortune.txt", "fortune",
             {"bucket": "b2"}),
        _hit(3, "objects.gambling", "object", EVIL_KEY, EVIL_ACCOUNT, "key", EVIL_KEY, "casino", {"bucket": "b9"}),
        _hit(4, "logs.content", "domain", "www.example.cn", "acc3", "user_agent", EVIL_UA, "Mozilla",
             {"uri": EVIL_URI, "method": "GET", "status": 200, "domain": "www.example.cn", "client_ip": "203.0.113.9"}),
        _hit(5, "streams.gambling", "stream", "hub1/room7", "acc3", "title", EVIL_TITLE, "赌场", {"hub": "hub1"}),
    ]
    for j in range(extra_objects):
        key = f"b5/casino_{j:03d}.png"
        rows.append(_hit(10 + j, "objects.gambling", "object", key, f"acc{5 + j % 3}", "key", key, "casino", {}))
    hits = pd.DataFrame(rows, columns=HIT_COLUMNS)
    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits, rs, max_evidence=5)
    names = {"malware": ("objects.malware", "object", "b1/virus.exe"),
             "gambling": ("objects.gambling", "object", "b1/casino.png"),
             "superstition": ("objects.superstition", "object", "b2/fortune.txt"),
             "evil": ("objects.gambling", "object", EVIL_KEY),
             "log": ("logs.content", "domain", "www.example.cn"),
             "stream": ("streams.gambling", "stream", "hub1/room7")}
    return {n: case_id(*v) for n, v in names.items()}


def write_config(tmp: Path, store_url: str, extra: dict[str, Any] | None = None, **web: Any) -> str:
    cfg = {"rules": str(ROOT / "rules"), "state_dir": str(tmp / "state"), "case_store": store_url,
           "web": {"page_size": 50, **web},
           "enforcement": {"caps": {"per_run": 50, "per_account": 10}}, **(extra or {})}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    """``create_app`` under uvicorn in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, settings: Any):
        from pipeline.web.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> WebServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review app did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.app.close()     # the request threads' store connections


def add_users(store: Any) -> None:
    from pipeline.web.users import add_user, migrate

    migrate(store.db)
    for name, role in ROLES.items():
        add_user(store.db, name, role, PASSWORDS[name])


def login(http: Any, name: str, password: str | None = None) -> Any:
    """Log an httpx client in; returns the POST's response."""
    http.get("/login")
    return http.post("/login", data={"name": name, "password": password or PASSWORDS[name],
                                     "csrf": http.cookies.get("cp_login", "")})


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def flash_of(html: str) -> str:
    m = re.search(r'id="flash"[^>]*>([^<]*)<', html)
    return m.group(1) if m else ""
