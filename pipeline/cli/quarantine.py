"""`compliance quarantine list|show`: the rows (and files) a scan could not parse, with their reasons.

A file quarantined whole (or its unreadable tail) is one row with no line number. Text from the
input is shown with its control characters escaped: a raw line may hold anything.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import click
import pandas as pd

from ..cases.store import open_store
from ..display import shown, shown_bytes
from ..errors import PipelineError
from . import get_settings, main

COLUMNS = ["run_id", "source", "source_file", "source_line", "reason"]


@main.group()
def quarantine() -> None:
    """Rows and files that scans quarantined (could not parse or read)."""


def _rows(ctx: click.Context, run_id: str | None, file: str | None, line: int | None = None,
          with_raw: bool = False) -> tuple[str | None, pd.DataFrame]:
    settings = get_settings(ctx)
    store = open_store(settings.state_path, settings.case_store)
    try:
        if run_id is None:   # the newest run that quarantined anything
            run_id = store.db.scalar("SELECT q.run_id FROM quarantine q JOIN runs r ON r.run_id = q.run_id "
                                     "ORDER BY r.started_at DESC LIMIT 1")
            if run_id is None:
                return None, pd.DataFrame(columns=COLUMNS + ["raw"])
        elif store.db.scalar("SELECT COUNT(*) FROM runs WHERE run_id=?", (run_id,)) == 0:
            raise PipelineError(f"no run {run_id!r} in the case store", hint="see the run ids with: compliance scan --json")
        sql = f"SELECT {', '.join(COLUMNS)}{', raw' if with_raw else ''} FROM quarantine WHERE run_id=?"
        params: list[Any] = [run_id]
        if file is not None:
            sql += " AND (source_file=? OR source_file LIKE ?)"
            params += [file, "%/" + file.lstrip("/")]
        if line is not None:
            sql += " AND source_line=?"
            params.append(line)
        sql += " ORDER BY source_file, source_line"
        return run_id, store.db.frame(sql, params)
    finally:
        store.close()


def _line(v: Any) -> str:
    return "" if v is None or pd.isna(v) else str(int(v))


@quarantine.command("list")
@click.option("--run", "run_id", help="Run id (default: the newest run that quarantined anything).")
@click.option("--file", "file", help="Only this source file (its path, or the end of it).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--limit", type=int, default=200, show_default=True, help="Rows shown in a table (json / csv: all).")
@click.pass_context
def list_cmd(ctx: click.Context, run_id: str | None, file: str | None, fmt: str, limit: int) -> None:
    """List quarantined rows and files: file:line, reason. Files quarantined whole have no line."""
    run_id, rows = _rows(ctx, run_id, file)
    if fmt == "json":
        for r in rows.to_dict("records"):
            click.echo(json.dumps({**r, "source_line": None if pd.isna(r["source_line"]) else int(r["source_line"])},
                                  ensure_ascii=False))
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for r in rows.itertuples(index=False):
            writer.writerow([r.run_id, r.source, shown(r.source_file), _line(r.source_line), shown(r.reason)])
        click.echo(out.getvalue(), nl=False)
        return
    if run_id is None:
        click.echo("nothing quarantined")
        return
    click.echo(f"run {run_id}: {len(rows)} quarantined")
    for r in rows.head(limit).itertuples(index=False):
        line = _line(r.source_line)
        click.echo(f"{shown(r.source_file)}{':' + line if line else ''}: {shown(r.reason)}")
    if len(rows) > limit:
        click.echo(f"… and {len(rows) - limit} more (--limit N, or --format csv for all)")


@quarantine.command("show")
@click.argument("place")
@click.option("--run", "run_id", help="Run id (default: the newest run that quarantined anything).")
@click.pass_context
def show_cmd(ctx: click.Context, place: str, run_id: str | None) -> None:
    """Show what was quarantined at PLACE (FILE:LINE, or FILE), with its raw bytes escaped."""
    file, _, tail = place.rpartition(":")
    line: int | None = int(tail) if file and tail.isdigit() else None
    if line is None:
        file = place
    run_id, rows = _rows(ctx, run_id, file, line, with_raw=True)
    if rows.empty:
        raise PipelineError(f"nothing quarantined at {place}" + (f" in run {run_id}" if run_id else ""),
                            hint="see what was with: compliance quarantine list")
    for r in rows.itertuples(index=False):
        where = f"{shown(r.source_file)}" + (f":{_line(r.source_line)}" if _line(r.source_line) else "")
        click.echo(f"{where} (run {r.run_id}, {r.source})")
        click.echo(f"  reason: {shown(r.reason)}")
        raw = bytes(r.raw) if r.raw is not None else b""
        click.echo(f"  raw ({len(raw)} bytes): {shown_bytes(raw)}")
