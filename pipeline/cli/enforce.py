"""`compliance enforce plan|apply|dispatch|status|undo|notice`: enforcement from the command line.

Exit codes of the commands that deliver (apply, dispatch, undo): 0 when every action is
delivered; 3 when actions stay queued (the endpoint is unavailable or not configured: run
`dispatch` later); 4 when the endpoint rejected an action (see `enforce status`); 2 when the
command was refused and nothing changed. `apply` and `undo` check that the signing secret is
set before they change anything, so a refusal never follows a change of state.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..cases.store import CaseStore, open_store
from ..config import Settings
from ..display import safe_cells, shown
from ..enforcement import EnforcementError
from ..enforcement.apply import apply_plan, undo_case
from ..enforcement.dispatch import DispatchReport, check_can_send, dispatch, not_sent
from ..enforcement.notices import default_deadline, render_notice
from ..enforcement.plan import episode_enforcements, episode_notice, make_plan, save_plan
from ..query.audit import audited, default_actor
from . import get_settings, main

EXIT_QUEUED = 3
EXIT_REJECTED = 4


@click.group()
def enforce() -> None:
    """Plan, apply and deliver enforcement actions; undo them; render notices."""


def _store(settings: Settings) -> CaseStore:
    return open_store(settings.state_path, settings.case_store)


@enforce.command()
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="Plan file to write (JSON).")
@click.option("--by", "by", default=None, help="Who makes the plan (default: login name).")
@click.pass_context
def plan(ctx: click.Context, out: str, by: str | None) -> None:
    """Compute every intended action from case states and the policy; write it to OUT. Sends nothing."""
    settings = get_settings(ctx)
    store = _store(settings)
    try:
        p = make_plan(store, settings, by=by or default_actor())
        with audited(settings) as step:  # the plan, its record and its audit entry: all or none
            digest = save_plan(store, p, Path(out), audit=lambda db, sha: step.append(by, "enforce.plan", {
                "plan_id": p.plan_id, "sha256": sha, "file": out, "actions": len(p.actions),
                "enforcing": len(p.enforcing())}, db=db))
    finally:
        store.close()
    console = Console(width=200, highlight=False)
    table = Table(title=f"plan {p.plan_id}: {len(p.actions)} action(s), nothing sent")
    for col in ("case", "kind", "mode", "action", "target", "account", "clause", "deadline"):
        table.add_column(col, overflow="fold")
    for a in p.actions:
        table.add_row(*safe_cells(a.case_id, a.kind, a.mode, a.action, a.target, a.account_id or "", a.clause,
                                  a.deadline or ""))
    console.print(table)
    if p.waiting:
        console.print(f"{len(p.waiting)} case(s) waiting: " + "; ".join(
            f"{w['case_id']} {w['reason']}" for w in p.waiting[:10]) + (" …" if len(p.waiting) > 10 else ""))
    if p.skipped:
        console.print(f"{len(p.skipped)} case(s) not acted on: " + "; ".join(
            f"{s['case_id']} {s['reason']}" for s in p.skipped[:10]) + (" …" if len(p.skipped) > 10 else ""))
    console.print(f"written to {out} (sha256 {digest[:16]}…); apply with `compliance enforce apply {out} --by NAME`")


def _report(report: DispatchReport) -> None:
    for o in report.outcomes:
        code = f" HTTP {o.code}" if o.code else ""
        err = f" — {o.error}" if o.error and o.status != "delivered" else ""
        click.echo(f"{o.status:9} {o.action} {shown(o.target)} [{o.action_id}] after {o.attempts} attempt(s){code}{err}")
    click.echo("outbox: " + ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())))
    if report.stopped:
        click.echo(f"stopped: {report.stopped}; run `compliance enforce dispatch` later", err=True)
        sys.exit(EXIT_QUEUED)
    if report.n("failed"):
        sys.exit(EXIT_REJECTED)


def _deliver_queued(store: CaseStore, settings: Settings, actor: str) -> None:
    """Deliver right after queueing. The state has already changed, so a reason not to send
    (no endpoint configured) is reported as actions left queued, never as a refusal."""
    try:
        report = dispatch(store, settings, actor=actor)
    except EnforcementError as exc:
        click.echo(not_sent(exc, settings), err=True)
        sys.exit(EXIT_QUEUED)
    _report(report)


@enforce.command()
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option("--by", "by", required=True, help="Who applies the plan.")
@click.option("--no-dispatch", is_flag=True, help="Queue the actions in the outbox only.")
@click.pass_context
def apply(ctx: click.Context, plan_file: str, by: str, no_dispatch: bool) -> None:
    """Apply PLAN_FILE exactly: queue its actions in the outbox, then deliver them."""
    settings = get_settings(ctx)
    if not no_dispatch:
        check_can_send(settings, before="applied")
    store = _store(settings)
    try:
        done = apply_plan(store, settings, Path(plan_file), by=by)
        click.echo(f"plan {done.plan_id}: {done.queued} action(s) queued; {len(done.enforced_cases)} case(s) to "
                   "enforce (confirmed until the endpoint acknowledges their action, then enforced)")
        if not no_dispatch:
            _deliver_queued(store, settings, by)
    finally:
        store.close()


@enforce.command("dispatch")
@click.option("--limit", type=int, default=None, help="Send at most this many actions.")
@click.pass_context
def dispatch_cmd(ctx: click.Context, limit: int | None) -> None:
    """Deliver every queued action (and the undos owed to dismissed cases)."""
    settings = get_settings(ctx)
    store = _store(settings)
    try:
        _report(dispatch(store, settings, limit=limit))
    finally:
        store.close()


@enforce.command()
@click.option("--status", "status", type=click.Choice(["pending", "sending", "delivered", "failed", "cancelled"]))
@click.option("--case", "case_id", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def status(ctx: click.Context, status: str | None, case_id: str | None, as_json: bool) -> None:
    """List the outbox: every action, its state, attempts and the endpoint's last answer."""
    settings = get_settings(ctx)
    store = _store(settings)
    try:
        where, args = [], []
        for col, val in (("status", status), ("case_id", case_id)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        rows = store.db.all("SELECT action_id, plan_id, case_id, kind, action, target, account_id, status, attempts,"
                            " response_status, last_error, created_at, delivered_at, undo_of FROM actions"
                            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created_at, action_id",
                            args)
    finally:
        store.close()
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False, default=str))
        return
    table = Table(title=f"{len(rows)} action(s)")
    for col in ("action id", "case", "kind", "action", "target", "status", "tries", "http", "last error", "delivered"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*safe_cells(r["action_id"], r["case_id"], r["kind"], r["action"], r["target"], r["status"],
                                  str(r["attempts"]), str(r["response_status"] or ""), r["last_error"] or "",
                                  r["delivered_at"] or ""))
    Console(width=200, highlight=False).print(table)


@enforce.command()
@click.argument("case_id")
@click.option("--by", "by", required=True)
@click.option("--reason", "reason", required=True)
@click.option("--no-dispatch", is_flag=True, help="Queue the undo actions only.")
@click.pass_context
def undo(ctx: click.Context, case_id: str, by: str, reason: str, no_dispatch: bool) -> None:
    """Dismiss CASE (e.g. an appeal succeeded) and undo its actions: re-enable, unfreeze."""
    settings = get_settings(ctx)
    if not no_dispatch:
        check_can_send(settings, before="dismissed or queued")
    store = _store(settings)
    try:
        n = undo_case(store, settings, case_id, by=by, reason=reason)
        click.echo(f"case {case_id} dismissed; {n} undo action(s) queued")
        if not no_dispatch and n:
            _deliver_queued(store, settings, by)
    finally:
        store.close()


@enforce.command()
@click.argument("case_id")
@click.option("--deadline", default=None, help="ISO time; default: the notice already sent, else now + notice days.")
@click.pass_context
def notice(ctx: click.Context, case_id: str, deadline: str | None) -> None:
    """Print the violation notice (违规信息处理通知) for CASE."""
    settings = get_settings(ctx)
    if deadline is not None:
        try:
            parsed = datetime.fromisoformat(deadline)
        except ValueError:
            raise EnforcementError(f"--deadline {deadline!r} is not an ISO time",
                                   hint="e.g. 2026-11-04T10:00:00+08:00") from None
        deadline = (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).isoformat()
    store = _store(settings)
    try:
        case = store.get_case(case_id)
        taken = episode_enforcements(store.db, case_id)
        if deadline is None:
            sent = episode_notice(store.db, case_id)
            deadline = json.loads(sent["payload"])["deadline"] if sent else default_deadline(settings, case)
    finally:
        store.close()
    click.echo(render_notice(settings, case, deadline, taken=taken))


main.add_command(enforce)

if __name__ == "__main__":
    main()
