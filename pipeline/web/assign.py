"""Claims: a reviewer reserves a case for a while so that two reviewers do not work the same case.
A claim expires by itself (``web.claim_minutes``); releasing it or deciding the case ends it early.
Claims and releases are written into the case history (with no status change, so enforcement plans
made before them stay valid) and into the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..cases.db import Database
from .users import User, WebError, iso, now


def active_claims(db: Database, case_ids: list[str]) -> dict[str, dict[str, Any]]:
    """case id → its live claim {user_name, expires_at}, for the ids that have one."""
    if not case_ids:
        return {}
    marks = ",".join("?" * len(case_ids))
    rows = db.all(f"SELECT case_id, user_name, expires_at FROM web_claims WHERE case_id IN ({marks}) "
                  "AND expires_at > ?", (*case_ids, iso(now())))
    return {r["case_id"]: r for r in rows}


def _history(db: Database, case_id: str, user: User, action: str, reason: str) -> None:
    db.execute("INSERT INTO case_history (case_id, at, actor, action, from_status, to_status, reason, run_id)"
               " VALUES (?,?,?,?,?,?,?,?)", (case_id, iso(now()), user.name, action, None, None, reason, None))


def claim(db: Database, case_id: str, user: User, minutes: float) -> str:
    """Claim (or renew one's own claim on) a case; refused while someone else holds it. Returns the expiry."""
    t = now()
    until = iso(t + timedelta(minutes=minutes))
    with db.transaction():
        if db.one("SELECT case_id FROM cases WHERE case_id=?", (case_id,)) is None:
            raise WebError(f"no case {case_id!r}")
        row = db.one("SELECT user_name, expires_at FROM web_claims WHERE case_id=?", (case_id,))
        if row and row["expires_at"] > iso(t) and row["user_name"] != user.name:
            raise WebError(f"case {case_id} is claimed by {row['user_name']} until {row['expires_at'][:19]}Z",
                           hint="pick another case, or ask them to release it")
        db.execute("DELETE FROM web_claims WHERE case_id=?", (case_id,))
        db.execute("INSERT INTO web_claims (case_id, user_name, claimed_at, expires_at) VALUES (?,?,?,?)",
                   (case_id, user.name, iso(t), until))
        _history(db, case_id, user, "claimed", f"claimed until {until[:19]}Z")
    return until


def release(db: Database, case_id: str, user: User, *, why: str = "released") -> bool:
    """End the user's claim on a case (an admin may end anyone's). False when there was none to end."""
    with db.transaction():
        row = db.one("SELECT user_name, expires_at FROM web_claims WHERE case_id=?", (case_id,))
        if row is None or row["expires_at"] <= iso(now()):
            return False
        if row["user_name"] != user.name and not user.can("admin"):
            raise WebError(f"case {case_id} is claimed by {row['user_name']}, not by you",
                           hint="only they (or an admin) can release it")
        db.execute("DELETE FROM web_claims WHERE case_id=?", (case_id,))
        _history(db, case_id, user, "released", why if row["user_name"] == user.name
                 else f"{why} (claim of {row['user_name']})")
    return True


def check_not_claimed_by_other(db: Database, case_id: str, user: User) -> None:
    """A decision on a case someone else has claimed is refused: they are working on it."""
    row = db.one("SELECT user_name, expires_at FROM web_claims WHERE case_id=? AND expires_at > ?",
                 (case_id, iso(now())))
    if row and row["user_name"] != user.name:
        raise WebError(f"case {case_id} is claimed by {row['user_name']} until {row['expires_at'][:19]}Z",
                       hint="wait for the claim to expire or ask them to release it")
