"""The ASGI application: routers, web pages, middleware and error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

import cape
from cape import jobs
from cape.actions import connectors
from cape.actions.api import router as actions_router
from cape.auth.api import router as users_router
from cape.channels import registry as channels
from cape.channels.api import router as channels_router
from cape.channels.chat.api import WidgetCors
from cape.channels.chat.api import router as chat_router
from cape.channels.email.api import router as attachments_router
from cape.channels.email.service import log_insecure_transports
from cape.config import Settings
from cape.conversations.api import router as conversations_router
from cape.conversations.inbound_queue import InboundQueue
from cape.customers.api import router as customers_router
from cape.db import create_db_engine, create_session_factory
from cape.i18n.terms import N_
from cape.insights.api import router as insights_router
from cape.kit.errors import CapeError, Forbidden, InvalidInput, NotAuthenticated
from cape.realtime import bridge as realtime_bridge
from cape.realtime import hub as realtime
from cape.realtime.socket import router as realtime_router

log = logging.getLogger("cape.http")

_STATUS_CODES = {
    400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid_input",
}  # fmt: skip


def create_app(settings: Settings | None = None, *, run_jobs: bool = False) -> FastAPI:
    settings = settings or Settings()
    engine = create_db_engine(settings)
    session_factory = create_session_factory(engine)
    jobs.configure(session_factory, settings)
    connectors.configure(settings)
    channels.setup(settings)
    jobs.load_tasks()
    hub = realtime.configure(redis_url=settings.redis_url, channel=settings.realtime_channel)
    realtime_bridge.install()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log_insecure_transports(app.state.session_factory, settings=settings)
        await hub.start()
        consumer = jobs.start_in_process_consumer() if run_jobs else None
        yield
        await hub.stop()
        app.state.inbound_queue.close()
        if consumer is not None:
            # In a thread: the loop keeps running meanwhile, to give back a write turn it may
            # have been handed, which the finishing jobs may need.
            await asyncio.to_thread(consumer.stop, graceful=True)
        engine.dispose()

    app = FastAPI(
        title="Cape",
        version=cape.__version__,
        description="Customer service with one relationship per customer, on every channel.",
        lifespan=lifespan,
        docs_url=None,  # served from the package's own assets (cape.web.api_docs), not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.hub = hub
    # Sessions come from app.state at each batch, so a replaced session factory is honoured.
    app.state.inbound_queue = InboundQueue(lambda: app.state.session_factory())

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key,
        session_cookie="cape_session",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.add_middleware(ApiTooLargeAsJson)
    app.add_middleware(WidgetCors)
    app.add_middleware(RequestLogMiddleware)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz():
        return {"status": "ok"}

    app.include_router(conversations_router)
    app.include_router(customers_router)
    app.include_router(users_router)
    app.include_router(actions_router)
    app.include_router(insights_router)
    app.include_router(attachments_router)
    app.include_router(channels_router)
    app.include_router(realtime_router)
    app.include_router(chat_router)

    from cape.web import install_web
    from cape.web.api_docs import install_api_docs

    install_web(app)
    install_api_docs(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static")
    return app


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _wants_html(request: Request) -> bool:
    """A person's browser asking for a page (not the API, not an HTMX fragment, which keeps JSON)."""
    return (
        not request.url.path.startswith(("/api/", "/widget/api/"))
        and "text/html" in request.headers.get("accept", "")
        and "hx-request" not in request.headers
    )


async def _error_page(request: Request, status: int, **context):
    """A translated error page, with the navigation of whoever is signed in."""
    from cape.web.render import render

    viewer = getattr(request.state, "viewer", None)
    if viewer is None and status == 404:
        # No route ran, so nobody looked at the cookie: a signed-in person keeps their navigation.
        viewer = await run_in_threadpool(_viewer_of, request)
    titles = {
        404: N_("Page not found"),
        403: N_("Not allowed"),
        405: N_("Not allowed"),
        500: N_("Something went wrong"),
    }
    context = {"status": status, "title_id": titles.get(status, N_("This could not be done")), **context}
    return render(request, "error.html", context, user=viewer, status_code=status)


def _viewer_of(request: Request):
    """Who the browser's sign-in belongs to, if anyone (a short read of its own)."""
    from cape.auth.deps import SESSION_KEY, Viewer
    from cape.auth.service import user_id_for_web_session
    from cape.models import User

    key = request.session.get(SESSION_KEY) if "session" in request.scope else None
    if not isinstance(key, str):
        return None
    with request.app.state.session_factory() as session:
        user_id = user_id_for_web_session(session, key=key)
        return Viewer.of(session.get_one(User, user_id)) if user_id is not None else None


def _field_error(error: dict) -> str:
    """One validation error as a person reads it: the field, then what it must be."""
    field = ".".join(str(part) for part in error.get("loc", ())[1:]) or "body"
    ctx, kind = error.get("ctx") or {}, error.get("type", "")
    if kind == "string_too_long":
        return f"{field}: at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return (
            f"{field}: at least {ctx.get('min_length')} characters"
            if ctx.get("min_length", 0) > 1
            else f"{field}: required"
        )
    # A length checked after a validator is reported as "items", for text too.
    unit = "characters" if isinstance(error.get("input"), str) else "items"
    if kind == "too_long":
        return f"{field}: at most {ctx.get('max_length')} {unit}"
    if kind == "too_short":
        return f"{field}: at least {ctx.get('min_length')} {unit}"
    if kind == "missing":
        return f"{field}: required"
    return f"{field}: {error.get('msg', 'invalid')}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CapeError)
    async def cape_error(request: Request, exc: CapeError):
        if isinstance(exc, NotAuthenticated) and _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        headers = {"Retry-After": str(exc.retry_after_s)} if hasattr(exc, "retry_after_s") else None
        if _wants_html(request):
            required = exc.required_role if isinstance(exc, Forbidden) else None
            return await _error_page(
                request, exc.status_code, required_role=required, detail=exc.message, code=exc.code
            )
        extra = {"field": exc.field} if isinstance(exc, InvalidInput) else {}
        return JSONResponse(error_body(exc.code, exc.message, **extra), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        if _wants_html(request):
            # A malformed address (/conversations/abc) is, for a person, a page that is not there.
            in_path = any(e["loc"][:1] == ["path"] for e in errors)
            return await _error_page(request, 404 if in_path else 422)
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse(error_body("bad_request", "the body is not valid JSON"), status_code=400)
        message = "; ".join(_field_error(e) for e in exc.errors())
        return JSONResponse(error_body("invalid_input", message, details=jsonable_encoder(errors)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _wants_html(request) and exc.status_code in (404, 405):
            return await _error_page(request, exc.status_code)
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = "the body is larger than this endpoint takes" if exc.status_code == 413 else str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # A reference the person can quote, and that finds this log line.
        reference = uuid.uuid4().hex[:12]
        log.exception(
            "unhandled error, reference %s", reference, extra={"path": request.url.path, "reference": reference}
        )
        if _wants_html(request):
            return await _error_page(request, 500, reference=reference)
        body = error_body(
            "internal_error", f"an unexpected error occurred (reference {reference})", reference=reference
        )
        return JSONResponse(body, status_code=500)


class ApiTooLargeAsJson:
    """The request-body limit answers 413 in plain text before any route runs; API callers get the JSON
    error shape every other error has."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(("/api/", "/widget/api/")):
            return await self.app(scope, receive, send)
        rewriting = False

        async def send_json_413(message):
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                rewriting = True
                return
            if rewriting and message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                response = JSONResponse(
                    error_body("too_large", "the body is larger than this endpoint takes"), status_code=413
                )
                return await response(scope, receive, send)
            await send(message)

        await self.app(scope, receive, send_json_413)


class RequestLogMiddleware:
    """One structured log line per request: method, path, status, duration. No headers, no bodies."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
