"""`compliance rules backtest RULES --against live [--from --to]`: what a draft rule change would
open and close, without touching the live cases."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import click

from ..errors import RuleLoadError
from . import get_settings
from .rules import rules as rules_group

if TYPE_CHECKING:
    import pandas as pd


def _echo_rows(title: str, df: pd.DataFrame, limit: int) -> None:
    if df.empty:
        return
    click.echo(f"\n{title} ({len(df)}):")
    for r in df.head(limit).itertuples(index=False):
        sample = f"  «{r.sample}»" if isinstance(r.sample, str) and r.sample else ""
        status = f"  [live: {r.live_status}]" if isinstance(r.live_status, str) else ""
        click.echo(f"  {r.case_id}  {r.rule_id}  {r.subject_type}={r.subject_id}{sample}{status}")
    if len(df) > limit:
        click.echo(f"  ... {len(df) - limit} more (use --limit or --csv)")


@rules_group.command("backtest")
@click.argument("draft", type=click.Path(exists=True))
@click.option("--against", default="live", show_default=True,
              help="Baseline: 'live' (the config's rules folder) or another rule file or folder.")
@click.option("--from", "start", help="Backtest over the retained logs from this time, inclusive (ISO-8601, UTC).")
@click.option("--to", "end", help="... up to this time, exclusive. Without --from/--to: the configured sources.")
@click.option("--limit", type=int, default=20, show_default=True, help="Cases listed per kind of change.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write every differing case to this CSV.")
@click.option("--dask", "use_dask", is_flag=True, help="Evaluate on the configured Dask cluster (default: in this process).")
@click.pass_context
def backtest_cmd(ctx: click.Context, draft: str, against: str, start: str | None, end: str | None, limit: int,
                 csv_path: str | None, use_dask: bool) -> None:
    """Run DRAFT (a rule file, or a changed copy of the rules folder) and the live rules over the same
    data, and list the cases DRAFT would open and those it would no longer find, per rule.
    A single file replaces only the rules it defines; a folder replaces the whole rules folder."""
    settings = get_settings(ctx)
    from ..backtest import backtest   # pandas and the evaluator: only when a backtest runs
    from ..runner import dask_client

    holder: Any = dask_client(settings) if use_dask else nullcontext(None)
    try:
        with holder as client:
            result = backtest(settings, draft, against=against, start=start, end=end, client=client)
    except RuleLoadError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"{len(exc.problems)} problem(s) in rule files", err=True)
        sys.exit(exc.exit_code)   # bad input, as everywhere: 2
    table = result.per_rule
    width = max([len("rule")] + [len(r) for r in table["rule_id"]])
    click.echo(f"{'rule':<{width}}  {'change':<9}  {'live':>5}  {'draft':>5}  {'opens':>5}  {'closes':>6}")
    for r in table.itertuples(index=False):
        click.echo(f"{r.rule_id:<{width}}  {r.rule_change:<9}  {r.live_cases:>5}  {r.draft_cases:>5}  "
                   f"{r.opens:>5}  {r.closes:>6}")
    _echo_rows("would open", result.opens, limit)
    _echo_rows("would no longer find", result.closes, limit)
    if csv_path:
        changed = result.diff[result.diff["change"] != "kept"]
        changed.to_csv(csv_path, index=False, encoding="utf-8-sig")
        click.echo(f"\nwrote {len(changed)} case(s) to {csv_path}")
    click.echo("\n" + result.summary())
