"""The Starlette application: one store connection per request, login and sessions, CSRF on every
POST, roles, flash messages, and the routes of the pages (pages.py, ops.py).

A request without a valid session gets the login page and nothing else: every route but /login and
/static/ sends it there. Nothing changes state on GET: every action is a POST carrying the session's
CSRF token.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..cases.store import CaseStore, store_url
from ..config import Settings
from ..errors import PipelineError
from ..query.audit import append_audit
from . import users as u
from .queue import CountCache
from .security import FLASH_COOKIE, LOGIN_COOKIE, SESSION_COOKIE, SecurityHeaders, Signer, same_token, session_key
from .terms import cite, clause_text


RULES_TTL_S = 10


@dataclass
class Ctx:
    """What a handler works with: the request, the store, the logged-in user and their CSRF token."""

    request: Request
    store: CaseStore
    user: u.User
    csrf: str


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = store_url(settings.state_path, settings.case_store)
        self.signer = Signer(session_key(settings))
        self.counts = CountCache(settings.web.counts_ttl_s)
        self.last_backtest: dict[str, Any] | None = None
        self._rules: tuple[float, Any] | None = None
        self._local = threading.local()
        # every thread's open store; weak, so a request thread that ends takes its connection with it
        self._open: weakref.WeakSet[CaseStore] = weakref.WeakSet()
        self._lock = threading.Lock()
        folder = Path(str(resources.files("pipeline").joinpath("web/templates")))
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                                      undefined=jinja2.StrictUndefined)
        self.env.globals.update(cite=cite, clause_text=clause_text, qs=lambda d: urlencode(d))
        store = CaseStore(self.url)
        try:
            u.migrate(store.db)
            if store.dialect == "sqlite":
                # statistics let SQLite pick an account's index over a sort index on a large store
                store.db.execute("PRAGMA analysis_limit=1000")
                store.db.execute("ANALYZE")
        finally:
            store.close()

    def rules(self) -> Any:
        """The live rule set (reloaded when older than a few seconds); None when it does not load."""
        import time

        from ..rules.loader import load_configured_rules

        now = time.monotonic()
        if self._rules is None or now - self._rules[0] > RULES_TTL_S:
            try:
                # the rules a scan runs: the rules folder, its lists and the Sigma folders
                loaded = load_configured_rules(self.settings)
            except PipelineError as exc:
                logger.warning("rules do not load: {}", exc)
                loaded = None
            self._rules = (now, loaded)
        return self._rules[1]

    @contextmanager
    def store(self) -> Iterator[CaseStore]:
        """This request thread's store connection, opened on the thread's first request and kept:
        opening one checks the schema inside a write transaction, which would make every page wait
        for a running scan's fold and pay a PostgreSQL connection each time."""
        store = getattr(self._local, "store", None)
        if store is None:
            store = CaseStore(self.url)
            self._local.store = store
            with self._lock:
                self._open.add(store)
        try:
            yield store
        except BaseException:
            # an unexpected failure may leave the connection unusable (PostgreSQL restarted): the
            # thread's next request opens a new one
            self._local.store = None
            self._drop(store)
            raise

    def _drop(self, store: CaseStore) -> None:
        with self._lock:
            self._open.discard(store)
        with suppress(Exception):
            store.close()

    def close(self) -> None:
        """Close every store connection the request threads hold (the server is stopping)."""
        with self._lock:
            stores = list(self._open)
        for store in stores:
            self._drop(store)

    # -- rendering ---------------------------------------------------------------------------------

    def render(self, request: Request, name: str, code: int = 200, ctx: Ctx | None = None,
               **values: Any) -> HTMLResponse:
        flash = self.signer.loads(request.cookies.get(FLASH_COOKIE), 120)
        html = self.env.get_template(name).render(
            user=ctx.user if ctx else None, csrf=ctx.csrf if ctx else None, flash=flash,
            path=request.url.path, **values)
        resp = HTMLResponse(html, status_code=code)
        if flash:
            resp.delete_cookie(FLASH_COOKIE, path="/")
        return resp

    def redirect(self, request: Request, to: str, message: str | None = None, error: bool = False) -> Response:
        resp = RedirectResponse(to, status_code=303)
        if message:
            resp.set_cookie(FLASH_COOKIE, self.signer.dumps({"text": message[:1500], "error": error}),
                            httponly=True, samesite="strict", secure=self.settings.web.secure_cookies, path="/")
        return resp

    # -- who is asking -----------------------------------------------------------------------------

    def session(self, request: Request, store: CaseStore) -> tuple[u.User, str] | None:
        sid = self.signer.loads(request.cookies.get(SESSION_COOKIE), self.settings.web.session_hours * 3600)
        found = u.session_user(store.db, sid) if isinstance(sid, str) else None
        header = self.settings.web.proxy_user_header
        if header and request.headers.get(header):
            name = request.headers[header].strip()
            if found and found[0].name == name:
                return found
            user = u.get_user(store.db, name)
            if user is None:
                return None
            sid, csrf = u.new_session(store.db, user, self.settings.web.session_hours)
            request.state.new_sid = sid
            return user, csrf
        return found

    def set_session_cookie(self, resp: Response, sid: str) -> None:
        resp.set_cookie(SESSION_COOKIE, self.signer.dumps(sid), httponly=True, samesite="strict",
                        secure=self.settings.web.secure_cookies, path="/",
                        max_age=int(self.settings.web.session_hours * 3600))


def page(app: App, *, role: str | None = None, post: bool = False) -> Callable[..., Any]:
    """Wrap a handler ``fn(ctx, **path_params)``: no session → the login page; POST → a form with the
    session's CSRF token; ``role`` → refused (403) for users without it; a PipelineError → a flash
    message and back to the page the form was on."""

    def wrap(fn: Callable[..., Response]) -> Callable[[Request], Any]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            form = await request.form() if post else None
            from starlette.concurrency import run_in_threadpool

            return await run_in_threadpool(_handle, request, form)

        def _handle(request: Request, form: Any) -> Response:
            with app.store() as store:
                who = app.session(request, store)
                if who is None:
                    if post:
                        return app.render(request, "error.html", 403, title="Not logged in",
                                          message="Log in first; nothing was changed.")
                    return RedirectResponse("/login?" + urlencode({"next": _local(request.url.path)}), 303)
                ctx = Ctx(request, store, *who)
                if post and not same_token(form.get("csrf") if form else None, ctx.csrf):
                    logger.warning("refused a form without a valid CSRF token from {} for {}", ctx.user.name,
                                   request.url.path)
                    return app.render(request, "error.html", 403, ctx, title="Refused",
                                      message="The form's security token is missing or stale; nothing was changed. "
                                              "Reload the page and try again.")
                if role and not ctx.user.can(role):
                    return _forbidden(app, ctx, f"this needs the {role} role; you are a {ctx.user.role}")
                try:
                    resp = fn(ctx, form, **request.path_params) if post else fn(ctx, **request.path_params)
                except PermissionError as exc:
                    return _forbidden(app, ctx, str(exc))
                except PipelineError as exc:
                    if not post:
                        return app.render(request, "error.html", 404 if "no case" in exc.message else 400, ctx,
                                          title="Not found" if "no case" in exc.message else "Error",
                                          message=str(exc))
                    return app.redirect(request, _back(request, form), str(exc), error=True)
                if getattr(request.state, "new_sid", None):
                    app.set_session_cookie(resp, request.state.new_sid)
                return resp

        return endpoint

    return wrap


def _forbidden(app: App, ctx: Ctx, why: str) -> Response:
    logger.warning("refused {} to {} ({})", ctx.request.url.path, ctx.user.name, why)
    append_audit(app.settings, ctx.user.name, "web.refused", {"path": ctx.request.url.path, "why": why})
    return app.render(ctx.request, "error.html", 403, ctx, title="Refused", message=f"Refused: {why}. Nothing was changed.")


def _local(path: str | None) -> str:
    """Only a path on this site is a place to go back to (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _back(request: Request, form: Any) -> str:
    return _local(form.get("back") if form else None) if form and form.get("back") else _local(request.url.path.rsplit("/", 1)[0] or "/")


# -- login ----------------------------------------------------------------------------------------

def login_routes(app: App) -> list[Route]:
    import secrets

    def login_form(request: Request, message: str | None = None, code: int = 200) -> Response:
        # one token per browser, kept while it is valid: a second tab (or the browser fetching
        # /favicon.ico through the login redirect) must not invalidate the form already shown
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if len(token) < 24:
            token = secrets.token_urlsafe(24)
        resp = app.render(request, "login.html", code, login_csrf=token, message=message,
                          next=_local(request.query_params.get("next")),
                          sso=app.settings.web.proxy_user_header)
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=app.settings.web.secure_cookies, path="/login", max_age=3600)
        return resp

    async def get_login(request: Request) -> Response:
        return login_form(request)

    async def post_login(request: Request) -> Response:
        form = await request.form()
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_login, request, form)

    def _login(request: Request, form: Any) -> Response:
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            return login_form(request, "The login form expired; please try again.", 403)
        name = str(form.get("name") or "").strip()[:64]
        password = str(form.get("password") or "")
        address = request.client.host if request.client else "?"
        ws = app.settings.web
        with app.store() as store:
            wait = u.login_refused(store.db, name, address, ws.login_max_failures, ws.login_window_s)
            if wait > 0:
                logger.warning("login for {!r} from {} refused: too many failures", name, address)
                return login_form(request, f"Too many failed logins; try again in {int(wait) + 1} s.", 429)
            user = u.authenticate(store.db, name, password)
            if user is None:
                u.record_failure(store.db, name, address, ws.login_window_s)
                logger.warning("failed login for {!r} from {}", name, address)
                return login_form(request, "Wrong user name or password.", 401)
            u.clear_failures(store.db, name)
            sid, _ = u.new_session(store.db, user, ws.session_hours)
        append_audit(app.settings, user.name, "web.login", {"address": address})
        resp = RedirectResponse(_local(str(form.get("next") or "/")), status_code=303)
        app.set_session_cookie(resp, sid)
        resp.delete_cookie(LOGIN_COOKIE, path="/login")
        return resp

    @page(app, post=True)
    def logout(ctx: Ctx, form: Any) -> Response:
        sid = app.signer.loads(ctx.request.cookies.get(SESSION_COOKIE), app.settings.web.session_hours * 3600)
        if isinstance(sid, str):
            u.end_session(ctx.store.db, sid)
        append_audit(app.settings, ctx.user.name, "web.logout", {})
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    return [Route("/login", get_login, methods=["GET"]), Route("/login", post_login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]


def create_app(settings: Settings) -> Starlette:
    from . import ops, pages

    app = App(settings)
    static = Path(str(resources.files("pipeline").joinpath("web/static")))
    routes = [*login_routes(app), *pages.routes(app), *ops.routes(app),
              Mount("/static", StaticFiles(directory=static), name="static")]

    async def not_found(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        if code == 405:
            return HTMLResponse("Method not allowed: actions are forms sent with POST.", status_code=405,
                                headers={"Allow": "POST"})
        # an unknown path says nothing about what exists to someone who is not logged in
        return RedirectResponse("/", status_code=303) if code == 404 else HTMLResponse("error", status_code=code)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        app.close()

    web = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)
    web.state.app = app
    return web


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
