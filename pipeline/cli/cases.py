"""`compliance cases list|show|export`: read the case store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..cases.store import STATUSES, open_store
from ..display import safe_console, shown
from ..errors import PipelineError
from ..rules.model import SEVERITIES
from . import get_settings, main

EXPORT_COLUMNS = ["case_id", "rule_id", "rule_hash", "clause", "law", "category", "severity", "subject_type",
                  "subject_id", "account_id", "status", "first_seen", "last_seen", "first_event", "last_event",
                  "hit_count", "run_ids", "evidence"]


@main.group()
def cases() -> None:
    """Review cases."""


def _filters(f: Any) -> Any:
    f = click.option("--status", type=click.Choice(STATUSES))(f)
    f = click.option("--category")(f)
    f = click.option("--severity", type=click.Choice(SEVERITIES))(f)
    f = click.option("--account", help="Account id.")(f)
    f = click.option("--rule", help="Rule id.")(f)
    return f


def _load(ctx: click.Context, **filters: Any) -> pd.DataFrame:
    settings = get_settings(ctx)
    store = open_store(settings.state_path, settings.case_store)
    try:
        return store.list_cases(**filters)
    finally:
        store.close()


def _evidence_summary(evidence: str, limit: int = 2) -> str:
    items = json.loads(evidence)
    parts = []
    for item in items[:limit]:
        for mt in item.get("matches", [])[:3]:
            where = f"{item.get('source_file') or ''}:{item.get('source_line') or ''}".split("/")[-1]
            parts.append(f"{mt.get('field')}: {mt.get('text')!s:.40} [{mt.get('kind')} {mt.get('pattern')!s:.30}] @{where}")
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(parts) + more


@cases.command("list")
@_filters
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              help="table; json: one JSON object per case, a line each (JSON Lines); csv.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Show at most this many cases.")
@click.pass_context
def list_cases(ctx: click.Context, status: str | None, category: str | None, severity: str | None,
               account: str | None, rule: str | None, fmt: str, limit: int | None) -> None:
    """List cases, most severe first."""
    df = _load(ctx, status=status, category=category, severity=severity, account=account, rule=rule)
    total = len(df)
    if not total and (category or account or rule):
        _hint_unknown(ctx, category=category, account_id=account, rule_id=rule)
    if limit is not None:
        df = df.head(limit)
    if fmt == "json":
        for rec in _records(df):
            click.echo(json.dumps(rec, ensure_ascii=False, default=str))
        return
    if fmt == "csv":
        click.echo(df[EXPORT_COLUMNS].assign(run_ids=df["run_ids"].map(",".join)).to_csv(index=False), nl=False)
        return
    table = Table(title=f"{len(df)} case(s)" if len(df) == total else f"{len(df)} of {total} case(s)")
    for col in ("case", "status", "sev", "clause", "category", "subject", "account", "hits", "evidence"):
        table.add_column(col, overflow="fold")
    for r in df.itertuples(index=False):
        cells = (r.case_id, r.status, r.severity, "§" + r.clause, r.category, f"{r.subject_type} {r.subject_id}",
                 r.account_id, r.hit_count, _evidence_summary(r.evidence))
        # Text: rule patterns like [a-z] are not markup; a missing value (a log case's account) is blank
        table.add_row(*(Text("" if _missing(c) else shown(c)) for c in cells))
    Console(width=200).print(table)


def _missing(value: object) -> bool:
    """None, NaN, NA or NaT: how pandas hands back a value the store does not have."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _hint_unknown(ctx: click.Context, **given: str | None) -> None:
    """Say which filter value no case has at all, and the values there are (a typo, or a
    category named differently in the rules)."""
    every = _load(ctx)
    for column, value in given.items():
        if value is not None and column in every and value not in set(every[column].dropna()):
            known = sorted(set(every[column].dropna()))
            shown = ", ".join(known[:20]) + (f" (+{len(known) - 20} more)" if len(known) > 20 else "")
            name = column.removesuffix("_id")
            click.echo(f"no case has {name} '{value}'; the store holds: {shown or 'no cases'}", err=True)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df[EXPORT_COLUMNS].to_dict("records"):
        rec = {k: None if _missing(v) else v for k, v in rec.items()}   # JSON null, never NaN
        rec["evidence"] = json.loads(rec["evidence"])
        out.append(rec)
    return out


@cases.command()
@click.argument("case_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, case_id: str, as_json: bool) -> None:
    """Show one case: its rule, subject, evidence and history."""
    settings = get_settings(ctx)
    store = open_store(settings.state_path, settings.case_store)
    try:
        case = store.get_case(case_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(case, ensure_ascii=False, indent=2, default=str))
        return
    console = safe_console(highlight=False, soft_wrap=True)   # customer text: control characters escaped
    console.print(f"[bold]{case['case_id']}[/bold]  {case['status']}  severity {case['severity']}")
    console.print(f"rule      {case['rule_id']} — {case['rule_title']} (hash {case['rule_hash'][:12]})", markup=False)
    for line in _sigma_lines(settings, case["rule_id"]):   # the Sigma rule's id, level, authors, references
        console.print(line, markup=False)
    console.print(f"clause    §{case['clause']}" + (f"; {case['law']}" if case.get("law") else ""), markup=False)
    console.print(f"category  {case['category']}", markup=False)
    console.print(f"subject   {case['subject_type']} {case['subject_id']}   account {case['account_id'] or '-'}", markup=False)
    console.print(f"seen      first {case['first_seen']}, last {case['last_seen']}; {case['hit_count']} hit(s)", markup=False)
    console.print(f"runs      {', '.join(case['run_ids'])}", markup=False)
    console.print(f"evidence  ({len(case['evidence'])} kept)", markup=False)
    for item in case["evidence"]:
        where = ":".join(str(item[k]) for k in ("source_file", "source_line") if item.get(k) is not None)
        console.print(f"  {where or '(no source line)'}  {item.get('event_time') or ''}", markup=False)
        record = {k: v for k, v in item.items()
                  if k not in ("hit_key", "source_file", "source_line", "event_time", "matches")}
        if record:
            console.print("    " + "  ".join(f"{k}={v}" for k, v in record.items()), markup=False)
        for mt in item.get("matches", []):
            norm = f" → {mt['normalized']}" if mt.get("normalized") and mt["normalized"] != mt.get("text") else ""
            console.print(f"    {mt.get('field')}: {mt.get('text')!r}{norm}  [{mt.get('kind')} {mt.get('pattern')}]", markup=False)
        for key in ("window_start", "window_end", "value", "threshold"):
            if key in item:
                console.print(f"    {key}: {item[key]}", markup=False)
    console.print("history", markup=False)
    for h in case["history"]:
        move = f" {h['from_status'] or ''}→{h['to_status']}" if h.get("to_status") else ""
        console.print(f"  {h['at']}  {h['actor']}  {h['action']}{move}  {h.get('reason') or ''}", markup=False)


@cases.command()
@_filters
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True)
@click.pass_context
def export(ctx: click.Context, status: str | None, category: str | None, severity: str | None,
           account: str | None, rule: str | None, fmt: str, out: str) -> None:
    """Export cases, one record per case."""
    df = _load(ctx, status=status, category=category, severity=severity, account=account, rule=rule)
    path = Path(out)
    if not path.parent.is_dir():
        what = "is not a folder" if path.parent.exists() else "does not exist"
        raise PipelineError(f"{path.parent} {what}", hint="create the folder or choose another --out")
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for rec in _records(df):
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    else:
        flat = df[EXPORT_COLUMNS].copy()
        flat["run_ids"] = flat["run_ids"].map(",".join)
        if fmt == "csv":
            flat.to_csv(path, index=False, encoding="utf-8-sig")
        else:
            flat.to_parquet(path, index=False)
    click.echo(f"{len(df)} case(s) written to {path}")


def _transition(action: str, help_text: str) -> None:
    @cases.command(action, help=help_text)
    @click.argument("case_id")
    @click.option("--by", "by", required=True, help="Who decides (recorded in the history and the audit log).")
    @click.option("--reason", required=True, help="Why (recorded in the history and the audit log).")
    @click.pass_context
    def command(ctx: click.Context, case_id: str, by: str, reason: str) -> None:
        # the same function the review app's buttons call: status, history row and audit entry together
        from ..web.decisions import record_decision

        settings = get_settings(ctx)
        store = open_store(settings.state_path, settings.case_store)
        try:
            moved = record_decision(store, settings, by, case_id, action, reason, via="cli")
        finally:
            store.close()
        click.echo(f"{case_id}: {moved['from']} → {moved['to']}")


_transition("confirm", "Confirm a case: the violation is real (enforcement in review mode may follow).")
_transition("dismiss", "Dismiss a case: not a violation (any enforcement is undone).")
_transition("resolve", "Resolve a case: the customer removed the violation.")
_transition("reopen", "Reopen a case: a dismissed, resolved or confirmed case goes back to review.")


def _sigma_lines(settings: Any, rule_id: str) -> list[str]:
    """What the live Sigma rule keeps of its origin; nothing for other rules or rules that do not load."""
    if not rule_id.startswith("sigma."):
        return []
    from ..errors import PipelineError
    from ..rules.loader import load_configured_rules
    from ..rules.sigma.describe import case_lines

    try:
        rule = load_configured_rules(settings).by_id(rule_id)
    except (PipelineError, KeyError):   # a broken rule file or a rule since removed: the case stands alone
        return []
    return case_lines(rule.meta.get("sigma", {}))
