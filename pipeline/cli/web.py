"""`compliance serve` (the case review web app) and `compliance users add|list` (its accounts)."""

from __future__ import annotations

import sys

import click

from ..cases.store import open_store
from ..errors import PipelineError
from . import get_settings, main


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default: web.port, 8080).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the case review app on the case store: queue, cases, decisions, enforcement, rules."""
    import uvicorn

    from ..web.app import create_app

    settings = get_settings(ctx)
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    app = create_app(settings)
    store = open_store(settings.state_path, settings.case_store)
    try:
        n = store.db.scalar("SELECT COUNT(*) FROM web_users WHERE disabled = 0")
    finally:
        store.close()
    if not n:
        click.echo("no user can log in yet: add one with `compliance users add NAME --role reviewer`", err=True)
    click.echo(f"serving the case review app on http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except OSError as exc:   # the port is taken, or the address is not this machine's
        raise PipelineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                            hint="pick another --port or --host") from None


@main.group()
def users() -> None:
    """Accounts of the review app (`compliance serve`)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["reviewer", "approver", "admin"]), required=True,
              help="reviewer: decides cases; approver: also applies enforcement plans and undoes them; admin: all.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--sso", is_flag=True, help="No password: the user logs in through the proxy header (web.proxy_user_header).")
@click.option("--replace", is_flag=True, help="Change an existing user's role and password (ends their sessions).")
@click.pass_context
def users_add(ctx: click.Context, name: str, role: str, password_stdin: bool, sso: bool, replace: bool) -> None:
    """Add a user of the review app; asks for the password (twice) unless --password-stdin or --sso."""
    from ..web.users import add_user, migrate

    settings = get_settings(ctx)
    if sso:
        password = None
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    store = open_store(settings.state_path, settings.case_store)
    try:
        migrate(store.db)
        user = add_user(store.db, name, role, password, replace=replace)
    finally:
        store.close()
    from ..query.audit import append_audit, default_actor

    append_audit(settings, default_actor(), "web.user_added", {"name": user.name, "role": user.role,
                                                               "sso": sso, "replaced": replace})
    click.echo(f"user {user.name} ({user.role}) {'updated' if replace else 'added'}")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """List the review app's users and their roles."""
    from ..web.users import list_users, migrate

    settings = get_settings(ctx)
    store = open_store(settings.state_path, settings.case_store)
    try:
        migrate(store.db)
        rows = list_users(store.db)
    finally:
        store.close()
    for r in rows:
        login = "password" if r["has_password"] else "sso"
        click.echo(f"{r['name']}\t{r['role']}\t{login}\t{'disabled' if r['disabled'] else 'active'}\t{r['created_at'][:19]}")
