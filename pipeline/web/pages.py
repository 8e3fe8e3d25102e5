"""The reviewer's pages: the queue, a case, and the forms that decide, claim and release cases."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from ..cases.store import STATUSES, TRANSITIONS
from ..rules.model import SEVERITIES
from . import actions, assign
from ..errors import PipelineError
from .app import App, Ctx, _local, page
from .evidence import view
from .queue import SORTS, Filters, facet_counts
from .queue import page as queue_page

RELATED_LIMIT = 10


def _first_match(evidence: str) -> str:
    try:
        items = json.loads(evidence)
        for item in items:
            for m in item.get("matches", []):
                if isinstance(m, dict) and m.get("text") is not None:
                    return f"{m.get('field')}: {m.get('text')}"
    except (ValueError, TypeError, AttributeError):
        pass
    return ""


def _rule(app: App, rule_id: str) -> Any:
    """The live rule, for what the case store does not keep (description, Sigma metadata)."""
    live = app.rules()
    try:
        return live.by_id(rule_id) if live is not None else None
    except (KeyError, LookupError, PipelineError):  # a rule since removed: the case keeps its own copy
        return None


def routes(app: App) -> list[Route]:
    @page(app)
    def queue(ctx: Ctx) -> Response:
        f = Filters.from_query(ctx.request.query_params)
        p = queue_page(ctx.store.db, f, ctx.user, app.settings.web.page_size)
        grouped, counted_at = app.counts.grouped(ctx.store.db, f, ctx.user)
        counts, total = facet_counts(grouped, f)
        claims = assign.active_claims(ctx.store.db, [r["case_id"] for r in p.rows])
        for r in p.rows:
            r["preview"] = _first_match(r.pop("evidence"))
            r["claim"] = claims.get(r["case_id"])
        live = app.rules()
        rules = [r.id for r in live.rules] if live is not None else []
        return app.render(ctx.request, "queue.html", ctx=ctx, f=f, rows=p.rows, next_after=p.next_after,
                          counts=counts, total=total,
                          counted_at=datetime.fromtimestamp(counted_at, timezone.utc).strftime("%H:%M:%S UTC"), statuses=STATUSES,
                          severities=tuple(reversed(SEVERITIES)), sorts=tuple(SORTS), rules=rules,
                          back=ctx.request.url.path + ("?" + ctx.request.url.query if ctx.request.url.query else ""),
                          decisions=tuple(actions.DECISIONS))

    @page(app)
    def case(ctx: Ctx, case_id: str) -> Response:
        db = ctx.store.db
        c = ctx.store.get_case(case_id)
        items = [view(i) for i in c["evidence"] if isinstance(i, dict)]
        others = db.all("SELECT case_id, status, severity, rule_id, subject_type, subject_id FROM cases"
                        " WHERE account_id = ? AND case_id <> ? ORDER BY last_seen DESC LIMIT ?",
                        (c["account_id"], case_id, RELATED_LIMIT)) if c.get("account_id") else []
        related = db.all("SELECT case_id, status, severity, rule_id, rule_title FROM cases"
                         " WHERE subject_type = ? AND subject_id = ? AND case_id <> ? ORDER BY last_seen DESC LIMIT ?",
                         (c["subject_type"], c["subject_id"], case_id, RELATED_LIMIT))
        outbox = db.all("SELECT action_id, kind, action, target, status, attempts, delivered_at, last_error"
                        " FROM actions WHERE case_id=? ORDER BY created_at, action_id", (case_id,))
        others_total = db.scalar("SELECT COUNT(*) FROM cases WHERE account_id = ?", (c["account_id"],)) - 1 \
            if c.get("account_id") else 0
        claim = assign.active_claims(db, [case_id]).get(case_id)
        rule = _rule(app, c["rule_id"])
        sigma = (rule.meta or {}).get("sigma") if rule is not None else None   # what a Sigma rule keeps of its origin
        allowed = [a for a, to in actions.DECISIONS.items() if to in TRANSITIONS.get(c["status"], ())]
        return app.render(ctx.request, "case.html", ctx=ctx, c=c, items=items, others=others, others_total=others_total, related=related,
                          outbox=outbox, claim=claim, rule=rule, sigma=sigma, allowed=allowed,
                          decisions=tuple(actions.DECISIONS), back=f"/cases/{case_id}")

    @page(app, post=True)
    def decide(ctx: Ctx, form: Any, case_id: str) -> Response:
        action = str(form.get("action") or "")
        moved = actions.decide(ctx.store, app.settings, ctx.user, case_id, action, str(form.get("reason") or ""))
        app.counts.clear()
        return app.redirect(ctx.request, f"/cases/{case_id}", f"{case_id}: {moved['from']} → {moved['to']}")

    @page(app, post=True)
    def claim(ctx: Ctx, form: Any, case_id: str) -> Response:
        until = actions.claim(ctx.store, app.settings, ctx.user, case_id)
        return app.redirect(ctx.request, f"/cases/{case_id}", f"{case_id} is yours until {until[:19]}Z")

    @page(app, post=True)
    def release(ctx: Ctx, form: Any, case_id: str) -> Response:
        done = actions.release(ctx.store, app.settings, ctx.user, case_id)
        return app.redirect(ctx.request, f"/cases/{case_id}", f"{case_id} released" if done else "no claim to release")

    @page(app, post=True)
    def bulk(ctx: Ctx, form: Any) -> Response:
        ids = [str(x) for x in form.getlist("case_id")][:500]
        back = _local(str(form.get("back") or "/"))
        if not ids:
            return app.redirect(ctx.request, back, "select cases first (x toggles a row)", error=True)
        res = actions.bulk(ctx.store, app.settings, ctx.user, ids, str(form.get("action") or ""),
                           str(form.get("reason") or ""))
        app.counts.clear()
        text = f"{form.get('action')}: {len(res.done)} case(s) done"
        if res.failed:
            text += f"; {len(res.failed)} refused: " + "; ".join(f"{c}: {why}" for c, why in res.failed[:5])
        return app.redirect(ctx.request, back, text, error=bool(res.failed))

    return [Route("/", queue, methods=["GET"]),
            Route("/cases/{case_id}", case, methods=["GET"]),
            Route("/cases/{case_id}/decide", decide, methods=["POST"]),
            Route("/cases/{case_id}/claim", claim, methods=["POST"]),
            Route("/cases/{case_id}/release", release, methods=["POST"]),
            Route("/bulk", bulk, methods=["POST"])]


__all__ = ["routes", "urlencode"]
