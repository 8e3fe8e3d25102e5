"""`compliance scan`: run every configured source through the rules and update the cases."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from . import get_settings, main


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def scan(ctx: click.Context, as_json: bool) -> None:
    """Scan the configured sources and turn rule hits into cases."""
    from ..runner import scan as run_scan

    settings = get_settings(ctx)
    root = ctx.find_root().obj
    report = run_scan(settings, config_path=root.get("config_path"))
    summary = report.as_dict()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, default=str))
        return
    console = Console()
    table = Table(title=f"scan {report.run_id}", show_header=False)
    for label, value in (("files", report.files), ("rows read", report.rows_read),
                         ("rows parsed", report.rows_parsed), ("rows quarantined", report.rows_quarantined),
                         ("rule hits", report.hits), ("cases new", report.cases_new),
                         ("cases updated", report.cases_updated), ("cases unchanged", report.cases_unchanged)):
        table.add_row(label, str(value))
    console.print(table)
    for source, c in sorted(report.per_source.items()):
        console.print(f"  {source}: {c['files']} file(s), {c['rows_read']} read = {c['rows_parsed']} parsed "
                      f"+ {c['rows_quarantined']} quarantined")
    for q in report.quarantine_samples:
        console.print(f"  [yellow]quarantined[/yellow] {q['file']}:{q['line']}: {q['reason']}", markup=True,
                      highlight=False, soft_wrap=True)
    console.print("See the cases with: compliance cases list")
