"""The ASGI application: routers, web pages, middleware and error mapping."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

import cape
from cape import jobs
from cape.actions import connectors
from cape.actions.api import router as actions_router
from cape.auth.api import router as users_router
from cape.channels.email.api import router as attachments_router
from cape.channels.email.service import log_insecure_transports
from cape.config import Settings
from cape.conversations.api import router as conversations_router
from cape.conversations.inbound_queue import InboundQueue
from cape.customers.api import router as customers_router
from cape.db import create_db_engine, create_session_factory
from cape.kit.errors import CapeError, DatabaseBusy, InvalidInput, NotAuthenticated

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
    jobs.load_tasks()  # task modules also register channels' outbound senders

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log_insecure_transports(app.state.session_factory, settings=settings)
        consumer = jobs.start_in_process_consumer() if run_jobs else None
        yield
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
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
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
    app.add_middleware(RequestLogMiddleware)
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz():
        return {"status": "ok"}

    app.include_router(conversations_router)
    app.include_router(customers_router)
    app.include_router(users_router)
    app.include_router(actions_router)
    app.include_router(attachments_router)

    from cape.web import install_web

    install_web(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static")
    return app


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CapeError)
    async def cape_error(request: Request, exc: CapeError):
        if isinstance(exc, NotAuthenticated) and _wants_html(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        extra = {"field": exc.field} if isinstance(exc, InvalidInput) else {}
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, DatabaseBusy) else None
        return JSONResponse(error_body(exc.code, exc.message, **extra), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return JSONResponse(error_body("bad_request", "the body is not valid JSON"), status_code=400)
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in errors)
        return JSONResponse(error_body("invalid_input", message, details=jsonable_encoder(errors)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)


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
