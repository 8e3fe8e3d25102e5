"""`compliance logs ...` (retained store: ingest, verify, purge, holds, regulators' queries) and
`compliance audit ...` (verify and list the audit log).

The case store and the query engine (pandas, DuckDB: a second of imports) are imported by the
commands that use them, so that `logs ingest` does not pay for them.
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import ConfigError, SourceError, StoreError
from ..sources.bindings import load_bindings, owners
from ..retention import IngestReport, hold_add, hold_list, hold_release, ingest, purge, verify
from ..retention.ingest import LogSource, missing_domain_message
from ..sources.logs_common import NO_DOMAIN_FORMATS
from ..display import shown
from . import get_settings, main
from .scan import EXIT_COMPLETED_WITH_ERRORS


@click.group("logs")
def logs() -> None:
    """The retained access-log store and regulators' queries."""


@logs.command("ingest")
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", help="Log format of PATHs (combined, common, qiniu-kodo, tencent-cdn, s3-access, w3c, jsonl).")
@click.option("--domain", help="Domain the logs were served for, where the format does not carry it "
                                "(required for combined, common and qiniu-kodo).")
@click.option("--account", "account_id", help="Account owning them, where the format does not carry it.")
@click.option("--encoding", type=click.Choice(["utf-8", "gb18030", "gbk", "utf-16", "auto"]), default=None,
              help="How PATHs' bytes are text (default utf-8; config entries use their own `encoding:`).")
@click.option("--strict", is_flag=True, help="Stop at the first file that cannot be read, or a path naming no file.")
@click.pass_context
def ingest_cmd(ctx: click.Context, paths: tuple[str, ...], fmt: str | None, domain: str | None,
               account_id: str | None, encoding: str | None, strict: bool) -> None:
    """Ingest log files (default: the config's sources.logs) into the retained store.

    \b
    Exit codes: 0 every file ingested (or already); 4 some file could not be read, or only up to a
    truncated tail: the others were ingested, it is listed and read again by the next ingest;
    2 bad input (with --strict, also an unreadable file).
    """
    settings = get_settings(ctx)
    if paths:
        if not fmt:
            raise SourceError("--format is required with paths", hint="e.g. --format combined")
        bindings = owners(load_bindings(settings.sources.bindings, settings.resolve), "domain")
        report = ingest(settings, [(p, fmt) for p in paths], bindings=bindings, domain=domain, account_id=account_id,
                        encoding=encoding or "utf-8", strict=strict)
        _print_ingest(report)
        if report.files_quarantined:
            ctx.exit(EXIT_COMPLETED_WITH_ERRORS)
        return
    if not settings.sources.logs:
        raise SourceError("no paths given and no sources.logs in the config",
                          hint="pass PATH... --format F, or list sources.logs in config.yaml")
    for number, entry in enumerate(settings.sources.logs, start=1):
        # Checked for every entry before any is ingested, so a bad entry leaves the store untouched.
        if entry.format in NO_DOMAIN_FORMATS and not (entry.domain or domain or "").strip():
            raise ConfigError(f"sources.logs entry {number} ({entry.path}): {missing_domain_message(entry.format)}",
                              hint="add `domain:` to that entry (or pass --domain); nothing was ingested")
    bindings = owners(load_bindings(settings.sources.bindings, settings.resolve), "domain")
    # One pass over every entry: each day's partition is rewritten once, not once per entry.
    report = ingest(settings, [LogSource(settings.resolve(e.path), e.format, e.domain or domain,
                                         e.account_id or account_id, encoding or e.encoding)
                               for e in settings.sources.logs], bindings=bindings, strict=strict)
    _print_ingest(report)
    if report.files_quarantined:
        ctx.exit(EXIT_COMPLETED_WITH_ERRORS)


def _print_ingest(report: IngestReport) -> None:
    click.echo(f"{report.files_read} file(s) read, {len(report.files_skipped)} already ingested; "
               f"rows: {report.rows_read} read = {report.rows_stored} stored + {report.rows_quarantined} quarantined"
               + (f" (of them {report.blank_lines} blank line(s))" if report.blank_lines else "")
               + (f" ({report.rows_recovered} recovered from an interrupted ingest)" if report.rows_recovered else "")
               + f"; {len(report.partitions_written)} partition(s) written")
    for path in report.files_skipped:
        click.echo(f"skipped (same SHA-256 already ingested): {shown(path)}")
    for f in report.files_quarantined:
        what = "tail not read" if f["partial"] else "file quarantined"
        click.echo(f"{what}: {shown(f['path'])} ({f['bytes']} bytes): {shown(f['reason'])}", err=True)


@logs.command("verify")
@click.pass_context
def verify_cmd(ctx: click.Context) -> None:
    """Check every data file against its manifest; exit 1 on any problem, one line each."""
    report = verify(get_settings(ctx))
    for problem in report.problems:
        click.echo(str(problem))
    for path in report.leftovers:
        click.echo(f"leftover (ignored; removed by the next ingest): {path}", err=True)
    click.echo(f"{report.partitions} partition(s), {report.files} file(s), {report.rows} rows checked: "
               + ("ok" if report.ok else f"{len(report.problems)} problem(s)"), err=not report.ok)
    if not report.ok:
        sys.exit(1)


@logs.command("purge")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--by", "actor", help="Who runs the purge (recorded in the audit log).")
@click.pass_context
def purge_cmd(ctx: click.Context, dry_run: bool, actor: str | None) -> None:
    """Delete partitions past retention.days, except days under a legal hold."""
    from ..cases.store import open_store
    settings = get_settings(ctx)
    store = open_store(settings.state_path, settings.case_store)
    try:
        by_cases = store.held_days()  # open cases hold the days of logs they cite
    finally:
        store.close()
    report = purge(settings, dry_run=dry_run, actor=actor, extra_holds=by_cases)
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"cutoff {report.cutoff}: {verb} {len(report.deleted)} partition(s), "
               f"kept {len(report.kept_held)} under hold")
    for day in report.deleted:
        click.echo(f"{verb}: {day}")
    for day in report.kept_held:
        cases = by_cases.get(day, [])
        click.echo(f"held: {day}" + (f" (open case(s) {', '.join(cases[:3])}{' …' if len(cases) > 3 else ''})"
                                     if cases else ""))


@logs.group("hold")
def hold() -> None:
    """Legal holds: days that purge keeps."""


@hold.command("add")
@click.option("--from", "start", required=True, help="First day held (YYYY-MM-DD).")
@click.option("--to", "end", required=True, help="Last day held, inclusive (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why, e.g. the regulator's request reference.")
@click.option("--by", "by", required=True, help="Who places the hold.")
@click.pass_context
def hold_add_cmd(ctx: click.Context, start: str, end: str, reason: str, by: str) -> None:
    """Place a legal hold on a range of days."""
    placed = hold_add(get_settings(ctx), start, end, reason, by)
    click.echo(f"{placed.id}: {placed.start_day} .. {placed.end_day} held ({placed.reason})")


@hold.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include released holds.")
@click.pass_context
def hold_list_cmd(ctx: click.Context, show_all: bool) -> None:
    """List holds (active ones unless --all)."""
    holds = hold_list(get_settings(ctx), include_released=show_all)
    if not holds:
        click.echo("no holds")
    for h in holds:
        state = "active" if h.active else f"released {h.released_at} by {h.released_by}: {h.release_reason}"
        click.echo(f"{h.id}  {h.start_day} .. {h.end_day}  by {h.by}  {h.reason}  [{state}]")


@hold.command("release")
@click.argument("hold_id")
@click.option("--by", "by", required=True, help="Who releases it.")
@click.option("--reason", required=True, help="Why it is released.")
@click.pass_context
def hold_release_cmd(ctx: click.Context, hold_id: str, by: str, reason: str) -> None:
    """Release a legal hold (it stays listed with who released it and why)."""
    released = hold_release(get_settings(ctx), hold_id, by, reason)
    click.echo(f"{released.id} released")


@logs.command("query")
@click.option("--request-ref", help="Reference number of the regulator's request (required).")
@click.option("--authority", help="Requesting authority (required).")
@click.option("--ip", help="One client IP (IPv4 or IPv6).")
@click.option("--cidr", help="A block of client IPs, e.g. 203.0.113.0/24 or 2001:db8::/32.")
@click.option("--domain", help="Requests to this domain.")
@click.option("--url-contains", help="Requests whose URI (path + query) contains this text.")
@click.option("--account", help="Requests to this account's domains.")
@click.option("--from", "start", help="Start, inclusive (ISO-8601; bare dates and naive times are in retention.timezone).")
@click.option("--to", "end", help="End, exclusive (ISO-8601; bare dates and naive times are in retention.timezone).")
@click.option("--fields", help="Comma-separated fields to export (default: all canonical log fields).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Export folder (default: <state>/exports/...).")
@click.option("--by", "requested_by", help="Who runs the query (recorded in the audit log).")
@click.pass_context
def query_cmd(ctx: click.Context, request_ref: str | None, authority: str | None, ip: str | None, cidr: str | None,
              domain: str | None, url_contains: str | None, account: str | None, start: str | None,
              end: str | None, fields: str | None, out_dir: str | None, requested_by: str | None) -> None:
    """Answer a regulator's request; export CSV, Parquet and a manifest; audit it."""
    from ..query import run_query
    result = run_query(get_settings(ctx), request_ref=request_ref, authority=authority, ip=ip, cidr=cidr,
                       domain=domain, url_contains=url_contains, account=account, start=start, end=end,
                       fields=fields, out_dir=out_dir, requested_by=requested_by)
    days = [p["day"] for p in result.manifest["partitions_read"]]
    click.echo(f"{len(result.df)} row(s) from {len(days)} partition(s)"
               + (f" ({days[0]} .. {days[-1]}, UTC days)" if days else ""))
    click.echo(f"window: {result.window}")
    for name in (*result.manifest["outputs"], "manifest.json"):
        click.echo(f"wrote {result.out_dir / name}")


@click.group("audit")
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
@click.pass_context
def audit_verify_cmd(ctx: click.Context) -> None:
    """Check the chain; exit 1 naming the first bad entry."""
    from ..query import verify_audit
    report = verify_audit(get_settings(ctx))
    if report.ok:
        click.echo(f"{report.entries} entries: chain intact")
        return
    click.echo(f"seq {report.first_bad_seq} (line {report.line}): {report.problem}")
    click.echo(f"{report.entries} entries before it are intact", err=True)
    sys.exit(1)


@audit.command("repair")
@click.option("--by", "actor", help="Who repairs it (recorded in the repair's own entry).")
@click.pass_context
def audit_repair_cmd(ctx: click.Context, actor: str | None) -> None:
    """Cut back a torn tail (a write cut short by a full disk or a kill) and catch up a lagging head.

    The repair is recorded as an entry of its own, with the bytes it cut; an intact entry is never
    rewritten, and a chain broken anywhere else is refused (exit 2: restore from backup)."""
    from ..query import repair_audit
    report = repair_audit(get_settings(ctx), actor)
    if not report.repaired:
        click.echo(f"{report.entries} entries: nothing to repair")
        return
    done = []
    if report.cut_bytes:
        done.append(f"cut back a torn tail of {report.cut_bytes} byte(s)")
    if report.head_behind:
        done.append(f"caught up a head {report.head_behind} entry(ies) behind")
    assert report.entry is not None
    click.echo(f"{report.entries} intact entries kept; " + "; ".join(done)
               + f"; recorded as seq {report.entry['seq']} (audit.repair)")


@audit.command("list")
@click.option("--action", help="Only entries with this action (e.g. query, query.refused, query.failed, hold.add).")
@click.option("--last", type=int, default=None, help="Only the last N entries.")
@click.option("--json", "as_json", is_flag=True, help="Print entries as JSON lines.")
@click.pass_context
def audit_list_cmd(ctx: click.Context, action: str | None, last: int | None, as_json: bool) -> None:
    """Show audit entries (oldest first)."""
    from ..query import read_audit
    try:
        entries = read_audit(get_settings(ctx))
    except ValueError as exc:
        raise StoreError(f"the audit log is unreadable ({exc})", hint="run `compliance audit verify`") from None
    if action:
        entries = [e for e in entries if e.get("action") == action]
    if last is not None:
        entries = entries[-last:] if last > 0 else []
    for e in entries:
        if as_json:
            click.echo(json.dumps(e, ensure_ascii=False))
        else:
            details = e.get("details", {})
            ref = details.get("request_ref") if isinstance(details, dict) else None
            click.echo(f"{e.get('seq'):>6}  {e.get('ts')}  {e.get('actor')}  {e.get('action')}"
                       + (f"  {ref}" if ref else "") + f"  {json.dumps(details, ensure_ascii=False)[:160]}")


main.add_command(logs)
main.add_command(audit)
