"""`compliance scan`: run every configured source through the rules and update the cases."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..display import shown

from . import get_settings, main


EXIT_NEW_CASES = 3
EXIT_COMPLETED_WITH_ERRORS = 4   # some file was quarantined whole (or its tail); the next run retries it
SHOWN_QUARANTINE = 10


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--full", is_flag=True,
              help="Read every file and evaluate every rule again, changed or not (after a rule or lexicon "
                   "change); events already recorded are not counted again: their cases stay unchanged.")
@click.option("--exit-code", "exit_code", is_flag=True,
              help=f"Exit with {EXIT_NEW_CASES} when the scan opened new cases (for schedulers that alert on it).")
@click.option("--strict", is_flag=True,
              help="Stop at the first source file that cannot be read, or a source entry naming no file (exit 2).")
@click.pass_context
def scan(ctx: click.Context, as_json: bool, full: bool, exit_code: bool, strict: bool) -> None:
    """Scan the configured sources and turn rule hits into cases.

    \b
    Exit codes: 0 the scan completed (whatever it found); 4 completed with errors (some file could
    not be read, or only in part: it is quarantined as a file and retried by the next run); 2 stopped
    by bad input (config, rule files; with --strict, an unreadable source); 75 another scan holds the
    lock; 1 failed; with --exit-code, 3 when new cases were found (4 wins over 3).
    """
    from ..runner import scan as run_scan

    settings = get_settings(ctx)
    root = ctx.find_root().obj
    report = run_scan(settings, config_path=root.get("config_path"), full=full, strict=strict)
    summary = report.as_dict()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        _print(report)
    if report.files_quarantined:
        ctx.exit(EXIT_COMPLETED_WITH_ERRORS)
    if exit_code and report.cases_new:
        ctx.exit(EXIT_NEW_CASES)


def _print(report: Any) -> None:
    console = Console()
    table = Table(title=f"scan {report.run_id}", show_header=False)
    for label, value in (("files scanned", report.files), ("files unchanged", report.files_skipped),
                         ("files quarantined", len(report.files_quarantined)),
                         ("rows read", report.rows_read),
                         ("objects already scanned", report.rows_already_scanned),
                         ("rows parsed", report.rows_parsed), ("rows quarantined", report.rows_quarantined),
                         ("blank lines", report.blank_lines),
                         ("log rows stored", report.logs_stored.get("rows_stored", 0)),
                         ("rule hits", report.hits), ("cases new", report.cases_new),
                         ("cases updated", report.cases_updated), ("cases unchanged", report.cases_unchanged),
                         ("cases reopened", report.cases_reopened), ("cases resolved", report.cases_resolved)):
        table.add_row(label, str(value))
    console.print(table)
    _print_rules(console, report.rules)
    for source, c in sorted(report.per_source.items()):
        console.print(f"  {source}: {c['files']} file(s), {c['rows_read']} read = {c['rows_parsed']} parsed "
                      f"+ {c['rows_quarantined']} quarantined")
    skipped: dict[str, list[str]] = {}
    for rule_id, why in sorted(report.checks_skipped.items()):
        skipped.setdefault(why, []).append(rule_id)
    for why, rule_ids in skipped.items():
        console.print(f"  [yellow]skipped[/yellow] {len(rule_ids)} licensing rule(s), {why}: {', '.join(rule_ids)}",
                      markup=True, highlight=False, soft_wrap=True)
    if report.rules_skipped:
        console.print(f"  [yellow]skipped[/yellow] {len(report.rules_skipped)} unsupported Sigma rule(s): "
                      f"{', '.join(sorted(report.rules_skipped))}", markup=True, highlight=False, soft_wrap=True)
    for f in report.files_quarantined:
        console.print(f"  [red]file quarantined[/red] {escape(shown(f['path']))} ({f['bytes']} bytes): "
                      f"{escape(shown(f['reason']))}", markup=True, highlight=False, soft_wrap=True)
    rows = [q for q in report.quarantine_samples if q["line"] is not None][:SHOWN_QUARANTINE]
    for q in rows:
        console.print(f"  [yellow]quarantined[/yellow] {escape(shown(q['file']))}:{q['line']}: "
                      f"{escape(shown(q['reason']))}", markup=True, highlight=False, soft_wrap=True)
    rows_total = report.rows_quarantined
    if rows_total > len(rows):
        console.print(f"  … and {rows_total - len(rows)} more quarantined row(s): "
                      f"compliance quarantine list --run {report.run_id}", highlight=False, soft_wrap=True)
    console.print(f"  {report.status.replace('_', ' ')}: {report.files} file(s)", highlight=False)
    console.print("See the cases with: compliance cases list")


RULES_SHOWN = 15


def _print_rules(console: Console, rules: list[dict[str, Any]]) -> None:
    """Rows hit per rule (most first), then a warning naming each noisy rule and its top patterns."""
    if not rules:
        return
    table = Table(title="rows hit per rule")
    for col, justify in (("rule", "left"), ("source", "left"), ("rows hit", "right"), ("of rows scanned", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rules[:RULES_SHOWN]:
        share = f"{r['share']:.2%}"
        table.add_row(r["rule_id"], r["source"], str(r["rows_hit"]), f"[yellow]{share}[/yellow]" if r["noisy"] else share)
    if len(rules) > RULES_SHOWN:
        table.add_row(f"… {len(rules) - RULES_SHOWN} more (--json lists all)", "", "", "")
    console.print(table)
    for r in rules:
        if r["noisy"]:
            top = escape(", ".join(f"{p} ({n})" for p, n in r.get("top_patterns", [])))
            console.print(f"  [yellow]noisy rule[/yellow] {r['rule_id']}: hit {r['share']:.1%} of the {r['source']} "
                          f"rows scanned; most frequent patterns: {top}. A word this common in the data is "
                          "likely too broad for the lexicon", markup=True, highlight=False, soft_wrap=True)
