"""What keeps the app's pages safe to show attacker-controlled text and safe to click: security
headers (a strict Content-Security-Policy: no inline script or style, nothing from elsewhere),
signed cookies, CSRF tokens compared in constant time, and the session key."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..config import Settings

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
SESSION_COOKIE = "cp_session"
LOGIN_COOKIE = "cp_login"      # the login form's CSRF token, before there is a session
FLASH_COOKIE = "cp_flash"


class SecurityHeaders:
    """ASGI middleware: the headers above on every response; pages are never cached."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_key(settings: Settings) -> str:
    """The key signing cookies: from the environment variable web.secret_env, else one made once
    and kept in <state_dir>/web/secret, readable by its owner only."""
    env = os.environ.get(settings.web.secret_env)
    if env:
        return env
    path = Path(settings.state_path) / "web" / "secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    os.replace(path.with_suffix(".tmp"), path)
    return key


class Signer:
    def __init__(self, key: str):
        self._s = URLSafeTimedSerializer(key, salt="compliance-web")

    def dumps(self, value: Any) -> str:
        return self._s.dumps(value)

    def loads(self, token: str | None, max_age_s: float) -> Any:
        if not token:
            return None
        try:
            return self._s.loads(token, max_age=int(max_age_s))
        except BadSignature:  # includes SignatureExpired
            return None


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
