"""The enforcement page (plan, apply by an approver, outbox, undo) and the rules page (open cases,
hit rate and last change per rule; a draft's backtest)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from ..cases.db import Database
from ..enforcement.outbox import OUTBOX_STATUSES, counts
from ..query.audit import append_audit
from . import actions
from .app import App, Ctx, page

OUTBOX_LIMIT = 200


def _drafts(app: App) -> list[Path]:
    folder = Path(app.settings.resolve(app.settings.web.drafts))
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def rule_stats(db: Database) -> tuple[dict[str, dict[str, int]], dict[str, str], int]:
    """Per rule: its cases, open cases and hits; when the store last saw it change; and the rows
    scans have read. Grouped counts from the web_rules_stats index alone (it holds rule, status and
    hits: no case row is read); the last change from the history's rule_changed rows only (web_history_action)."""
    per: dict[str, dict[str, int]] = {}
    for r in db.all("SELECT rule_id, status, COUNT(*) AS n, SUM(hit_count) AS hits FROM cases"
                    " GROUP BY rule_id, status"):
        st = per.setdefault(r["rule_id"], {"cases": 0, "open": 0, "hits": 0})
        st["cases"] += int(r["n"])
        st["hits"] += int(r["hits"] or 0)
        if r["status"] == "open":
            st["open"] += int(r["n"])
    changed = {r["rule_id"]: r["at"] for r in db.all(
        "SELECT c.rule_id, MAX(h.at) AS at FROM case_history h JOIN cases c ON c.case_id = h.case_id"
        " WHERE h.action = 'rule_changed' GROUP BY c.rule_id")}
    rows_read = int(db.scalar("SELECT SUM(rows_parsed) FROM runs WHERE status IN ('completed', 'completed_with_errors')") or 0)
    return per, changed, rows_read


def routes(app: App) -> list[Route]:
    @page(app)
    def enforcement(ctx: Ctx) -> Response:
        db = ctx.store.db
        status = ctx.request.query_params.get("status")
        status = status if status in OUTBOX_STATUSES else None
        plans = db.all("SELECT plan_id, created_at, created_by, status, applied_at, applied_by FROM plans"
                       " ORDER BY created_at DESC LIMIT 10")
        current = None
        latest = db.one("SELECT plan_id, body, status FROM plans ORDER BY created_at DESC LIMIT 1")
        if latest is not None:
            current = {**json.loads(latest["body"]), "status": latest["status"]}
        outbox = db.all("SELECT action_id, plan_id, case_id, kind, action, target, status, attempts, response_status,"
                        " last_error, created_at, delivered_at FROM actions"
                        + (" WHERE status = ?" if status else "") + " ORDER BY created_at DESC, action_id LIMIT ?",
                        ((status,) if status else ()) + (OUTBOX_LIMIT,))
        es = app.settings.enforcement
        return app.render(ctx.request, "enforcement.html", ctx=ctx, plans=plans, current=current, outbox=outbox,
                          outbox_counts=counts(db), statuses=OUTBOX_STATUSES, status=status, caps=es.caps,
                          endpoint=es.endpoint, secret_set=bool(os.environ.get(es.secret_env)),
                          secret_env=es.secret_env)

    @page(app, post=True)
    def make_plan(ctx: Ctx, form: Any) -> Response:
        plan_id, n = actions.plan(ctx.store, app.settings, ctx.user)
        return app.redirect(ctx.request, "/enforcement", f"plan {plan_id}: {n} action(s), nothing sent")

    @page(app, role="approver", post=True)
    def apply(ctx: Ctx, form: Any) -> Response:
        # the role is checked inside actions.apply too, so no other caller can skip it
        text = actions.apply(ctx.store, app.settings, ctx.user, str(form.get("plan_id") or ""))
        app.counts.clear()
        return app.redirect(ctx.request, "/enforcement", text)

    @page(app, role="approver", post=True)
    def undo(ctx: Ctx, form: Any, case_id: str) -> Response:
        text = actions.undo(ctx.store, app.settings, ctx.user, case_id, str(form.get("reason") or ""))
        app.counts.clear()
        return app.redirect(ctx.request, f"/cases/{case_id}", text)

    @page(app)
    def rules(ctx: Ctx) -> Response:
        db = ctx.store.db
        live = app.rules()
        (per, changed, rows_read), counted_at = app.counts.memo(("rules",), lambda: rule_stats(db))
        table = []
        for r in (live.rules if live is not None else ()):
            st = per.get(r.id, {})
            try:
                mtime = datetime.fromtimestamp(os.stat(r.path).st_mtime, timezone.utc).isoformat(timespec="seconds")
            except OSError:
                mtime = ""
            hits = int(st.get("hits") or 0)
            table.append({"rule": r, "cases": int(st.get("cases") or 0), "open": int(st.get("open") or 0),
                          "hits": hits, "rate": (hits / rows_read) if rows_read else None,
                          "file_changed": mtime, "store_changed": changed.get(r.id, "")})
        return app.render(ctx.request, "rules.html", ctx=ctx, table=table, rows_read=rows_read,
                          counted_at=datetime.fromtimestamp(counted_at, timezone.utc).strftime("%H:%M:%S UTC"),
                          loaded=live is not None, drafts=[str(p) for p in _drafts(app)],
                          drafts_dir=app.settings.resolve(app.settings.web.drafts), result=app.last_backtest)

    @page(app, post=True)
    def backtest(ctx: Ctx, form: Any) -> Response:
        from ..backtest import backtest as run_backtest

        wanted = str(form.get("draft") or "")
        drafts = {str(p): p for p in _drafts(app)}
        if wanted not in drafts:  # only the drafts folder's files: the page never reads any other path
            return app.redirect(ctx.request, "/rules", "pick a draft file from the list", error=True)
        result = run_backtest(app.settings, drafts[wanted])
        # it writes nothing, but it reads the configured data on a user's request: recorded as queries are
        append_audit(app.settings, ctx.user.name, "rules.backtest",
                     {"draft": wanted, "opens": len(result.opens), "closes": len(result.closes), "via": "web"})
        app.last_backtest = {
            "draft": wanted, "by": ctx.user.name, "summary": result.summary(),
            "per_rule": result.per_rule.to_dict("records"),
            "opens": result.opens.head(50).to_dict("records"), "closes": result.closes.head(50).to_dict("records"),
        }
        return app.redirect(ctx.request, "/rules", result.summary())

    return [Route("/enforcement", enforcement, methods=["GET"]),
            Route("/enforcement/plan", make_plan, methods=["POST"]),
            Route("/enforcement/apply", apply, methods=["POST"]),
            Route("/cases/{case_id}/undo", undo, methods=["POST"]),
            Route("/rules", rules, methods=["GET"]),
            Route("/rules/backtest", backtest, methods=["POST"])]
