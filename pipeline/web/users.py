"""Users, roles, sessions and login throttling of the review app, kept in the case store in tables
of their own (``web_*``), with their own numbered migrations in ``web_schema_version`` so that they
never collide with the case store's.

Passwords are hashed with Argon2id; a session is a random id whose SHA-256 is stored (a stolen
database yields no usable cookie), carried in a signed cookie, and ended by logging out or expiry.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..cases.db import Database
from ..cases.schema import run_migrations
from ..errors import PipelineError

ROLES = ("reviewer", "approver", "admin")
# a role holds every right of the roles before it
_RANK = {r: i for i, r in enumerate(ROLES)}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

SEVERITY_RANK = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END"

MIGRATIONS: list[str] = [
    # 1: users, sessions, failed logins, claims; indexes for the queue's sorts over a large store
    f"""
    CREATE TABLE web_users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT, created_at TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE web_sessions (
        sid_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL, created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE TABLE web_login_failures (id {{autoid}}, user_name TEXT, address TEXT, at TEXT NOT NULL);
    CREATE INDEX web_login_failures_at ON web_login_failures(at);
    CREATE TABLE web_claims (
        case_id TEXT PRIMARY KEY, user_name TEXT NOT NULL, claimed_at TEXT NOT NULL, expires_at TEXT NOT NULL
    );
    CREATE INDEX web_claims_user ON web_claims(user_name, expires_at);
    CREATE INDEX web_queue_severity ON cases(status, ({SEVERITY_RANK}), case_id);
    CREATE INDEX web_queue_last_seen ON cases(status, last_seen, case_id);
    CREATE INDEX web_queue_hits ON cases(status, hit_count, case_id);
    CREATE INDEX web_queue_facets ON cases(status, severity, category);
    CREATE INDEX web_cases_subject ON cases(subject_type, subject_id)
    """,
    # 2: counts from indexes alone (each holds every column its count reads): the rules page's per
    # rule and status, and the queue's under a rule or a source filter; the queue by severity within
    # a category reads case ids in order (web_queue_facets2 replaces web_queue_facets); a rule's
    # last change is found among the history's rule_changed rows without reading the rest
    """
    CREATE INDEX web_rules_stats ON cases(rule_id, status, severity, category, hit_count);
    CREATE INDEX web_queue_source ON cases(source, status, severity, category);
    CREATE INDEX web_queue_facets2 ON cases(status, severity, category, case_id);
    DROP INDEX web_queue_facets;
    CREATE INDEX web_history_action ON case_history(action, case_id, at)
    """,
]

_hasher = PasswordHasher()
# verified against when the user name is unknown, so that a wrong name takes as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class WebError(PipelineError):
    """A request the app refuses (bad login, missing right, bad form)."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def migrate(db: Database) -> None:
    """Create or upgrade the app's tables (idempotent; serialized with every other writer)."""
    run_migrations(db, MIGRATIONS, table="web_schema_version", what="the review app's part of the case store")


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Whether this user holds ``role`` (an admin is also an approver and a reviewer)."""
        return _RANK[self.role] >= _RANK[role]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise WebError(f"unknown role {role!r}", hint=f"valid roles: {', '.join(ROLES)}")
    return role


def add_user(db: Database, name: str, role: str, password: str | None, *, replace: bool = False) -> User:
    """Create (or, with ``replace``, update) a user. ``password`` None: SSO only (proxy header mode)."""
    if not NAME_RE.match(name):
        raise WebError(f"user name {name!r} is not allowed",
                       hint="use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    check_role(role)
    if password is not None and len(password) < 8:
        raise WebError("the password is too short", hint="use at least 8 characters")
    hashed = _hasher.hash(password) if password is not None else None
    with db.transaction():
        exists = db.one("SELECT name FROM web_users WHERE name=?", (name,))
        if exists and not replace:
            raise WebError(f"user {name!r} already exists", hint="pass --replace to change their role or password")
        if exists:
            db.execute("UPDATE web_users SET role=?, password_hash=?, disabled=0 WHERE name=?", (role, hashed, name))
            db.execute("DELETE FROM web_sessions WHERE user_name=?", (name,))  # a new password ends old logins
        else:
            db.execute("INSERT INTO web_users (name, role, password_hash, created_at) VALUES (?,?,?,?)",
                       (name, role, hashed, iso(now())))
    return User(name, role)


def list_users(db: Database) -> list[dict[str, Any]]:
    return db.all("SELECT name, role, created_at, disabled, password_hash IS NOT NULL AS has_password "
                  "FROM web_users ORDER BY name")


def get_user(db: Database, name: str) -> User | None:
    row = db.one("SELECT name, role FROM web_users WHERE name=? AND disabled=0", (name,))
    return User(row["name"], row["role"]) if row else None


def authenticate(db: Database, name: str, password: str) -> User | None:
    """The user if the password is right; None otherwise (same time either way)."""
    row = db.one("SELECT name, role, password_hash FROM web_users WHERE name=? AND disabled=0", (name,))
    stored = row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or not row["password_hash"]:
        return None
    return User(row["name"], row["role"])


# -- login throttling -------------------------------------------------------------------------------

def login_refused(db: Database, name: str, address: str, max_failures: int, window_s: float) -> float:
    """Seconds until ``name`` (or ``address``) may try again; 0 when a login attempt is allowed."""
    since = now() - timedelta(seconds=window_s)
    wait = 0.0
    for column, value, limit in (("user_name", name, max_failures), ("address", address, 4 * max_failures)):
        rows = db.all(f"SELECT at FROM web_login_failures WHERE {column}=? AND at > ? ORDER BY at DESC",
                      (value, iso(since)))
        if len(rows) >= limit:
            oldest = datetime.fromisoformat(rows[limit - 1]["at"])
            wait = max(wait, (oldest + timedelta(seconds=window_s) - now()).total_seconds())
    return max(wait, 0.0)


def record_failure(db: Database, name: str, address: str, window_s: float) -> None:
    with db.transaction():
        db.execute("INSERT INTO web_login_failures (user_name, address, at) VALUES (?,?,?)",
                   (name, address, iso(now())))
        # old failures say nothing any more
        db.execute("DELETE FROM web_login_failures WHERE at < ?", (iso(now() - timedelta(seconds=2 * window_s)),))


def clear_failures(db: Database, name: str) -> None:
    with db.transaction():
        db.execute("DELETE FROM web_login_failures WHERE user_name=?", (name,))


# -- sessions ---------------------------------------------------------------------------------------

def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def new_session(db: Database, user: User, hours: float) -> tuple[str, str]:
    """(session id for the cookie, CSRF token for the forms)."""
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    t = now()
    with db.transaction():
        db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (iso(t),))
        db.execute("INSERT INTO web_sessions (sid_hash, user_name, csrf, created_at, expires_at) VALUES (?,?,?,?,?)",
                   (_sid_hash(sid), user.name, csrf, iso(t), iso(t + timedelta(hours=hours))))
    return sid, csrf


def session_user(db: Database, sid: str) -> tuple[User, str] | None:
    """The session's user and CSRF token, if the session exists, has not expired and the user is active."""
    row = db.one("SELECT s.csrf, u.name, u.role FROM web_sessions s JOIN web_users u ON u.name = s.user_name "
                 "WHERE s.sid_hash=? AND s.expires_at > ? AND u.disabled = 0", (_sid_hash(sid), iso(now())))
    if row is None:
        return None
    return User(row["name"], row["role"]), row["csrf"]


def end_session(db: Database, sid: str) -> None:
    with db.transaction():
        db.execute("DELETE FROM web_sessions WHERE sid_hash=?", (_sid_hash(sid),))
