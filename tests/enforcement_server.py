"""A real operations endpoint for enforcement tests: a ThreadingHTTPServer on 127.0.0.1 that
verifies the HMAC signature, applies each idempotency key once, counts every request per key,
and answers as told: 200, 409, 500, hang until the client gives up (or the server stops), or close
without answering."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "conflict", "error", "hang", "close", "reject")


class EnforcementServer:
    """Start with ``start()``; ``url`` is the endpoint. ``script`` holds the modes of the next
    requests (consumed one per request); once it is empty every request gets ``mode``."""

    def __init__(self, secret: bytes, port: int = 0, hang_s: float = 60.0):
        self.secret = secret
        self.port = port
        self.hang_s = hang_s                         # the longest a "hang" lasts; stop() ends it at once
        self._released = threading.Event()
        self.mode = "ok"
        self.script: list[str] = []
        self.requests: Counter[str] = Counter()      # every request that arrived, per idempotency key
        self.applied: Counter[str] = Counter()       # actions applied, per key (must never exceed 1)
        self.bodies: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/actions"

    def start(self) -> EnforcementServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def _next_mode(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else self.mode

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        key = h.headers.get("Idempotency-Key", "")
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, h.headers.get("X-Signature", "")):
            with self.lock:
                self.bad_signatures += 1
            self._answer(h, 401, {"error": "bad signature"})
            return
        mode = self._next_mode()
        with self.lock:
            self.requests[key] += 1
        if mode == "close":
            # drop the connection without a status line: the client sees a connection error
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "error":
            self._answer(h, 500, {"error": "internal"})
            return
        if mode == "reject":
            self._answer(h, 400, {"error": "unknown target"})
            return
        with self.lock:
            first = self.applied[key] == 0
            if first:
                # the action takes effect even if the answer below never reaches the client
                self.applied[key] += 1
                self.bodies[key] = json.loads(body)
        if mode == "hang":
            # answered only after the client's timeout, whatever the machine's load
            self._released.wait(self.hang_s)
        if not first or mode == "conflict":
            self._answer(h, 409, {"status": "already applied", "key": key})
        else:
            self._answer(h, 200, {"status": "applied", "key": key})

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout) before the answer


def free_port() -> int:
    """A port nothing listens on right now (for an endpoint that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a case store with cases of every kind, built through the store's own apply_hits ------------

RULES = {
    # rule id: (category, severity, source)
    "objects.malware": ("attack_malware", "critical", "objects"),          # auto, light
    "objects.gambling": ("contraband_gambling", "high", "objects"),        # review, light
    "objects.superstition": ("inappropriate_superstition", "medium", "objects"),  # notice, light
    "logs.scanning": ("attack_scanning", "high", "logs"),                  # client_ip: never enforced
    "streams.porn": ("pornographic_adult", "high", "streams"),             # auto, light
}


def ruleset() -> Any:
    from pipeline.rules import model as m

    rules = tuple(m.Rule(id=rid, title=f"test {rid}", clause="3.1.3.5.4", category=cat, severity=sev,
                         sources=(src,), match=None, path="t.yaml", line=1, content_hash="h-" + rid)
                  for rid, (cat, sev, src) in RULES.items())
    return m.RuleSet(rules, "digest")


def hits(rows: list[tuple[str, str, str, str]]) -> Any:
    """(rule id, subject type, subject id, account) → hit rows, one hit each."""
    import pandas as pd

    from pipeline.matchers.hits import HIT_COLUMNS

    out = [{"rule_id": r, "subject_type": st, "subject_id": sid, "account_id": acc,
            "event_time": pd.Timestamp("2026-11-01T00:00:00Z"), "source_file": "f.csv", "source_line": i + 2,
            "hit_key": f"{sid}@{i}", "evidence": json.dumps([{"field": "title", "kind": "keywords",
                                                              "pattern": "赌场", "text": "澳门赌场"}],
                                                            ensure_ascii=False)}
           for i, (r, st, sid, acc) in enumerate(rows)]
    return pd.DataFrame(out, columns=HIT_COLUMNS)


def seed_cases(store: Any, rows: list[tuple[str, str, str, str]]) -> list[str]:
    """Open one case per row; returns their ids in row order."""
    from pipeline.cases.ids import case_id

    rs = ruleset()
    store.apply_hits(store.begin_run(None, rs.digest), hits(rows), rs, max_evidence=5)
    return [case_id(r, st, sid) for r, st, sid, _ in rows]


def write_config(tmp: Any, store_url: str, endpoint: str | None, **enforcement: Any) -> str:
    """A config file for the enforcement section under test: a timeout generous enough that a loaded
    machine never hits it by accident (tests of the timeout itself set their own), no real backoff."""
    import yaml

    section: dict[str, Any] = {"endpoint": endpoint, "secret_env": SECRET_ENV, "timeout_s": 10.0, "retries": 2,
                               "backoff_s": 0.01, "backoff_max_s": 0.05}
    section.update(enforcement)
    cfg = {"rules": "rules", "state_dir": str(tmp / "state"), "case_store": store_url, "enforcement": section}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return str(path)


SECRET_ENV = "ENFORCEMENT_TEST_SECRET"
SECRET = b"s3cret-for-tests"
