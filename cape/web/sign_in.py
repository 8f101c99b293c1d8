"""Signing in and out of the agent workspace."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.auth import service as auth_service
from cape.auth.deps import SESSION_KEY, CsrfProtected, CurrentUser, DbSession
from cape.auth.sign_in import sign_in
from cape.kit.errors import NotAuthenticated, TooManyAttempts
from cape.web.render import render

router = APIRouter(include_in_schema=False)


def client_host(request: Request) -> str | None:
    """The client's address; behind a proxy, as its X-Forwarded-For says (CAPE_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not target:
        return "/inbox"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/inbox"
    return target


@router.get("/")
def home():
    return RedirectResponse("/inbox", status_code=303)


@router.get("/favicon.ico")
def favicon():
    """For clients that ask for the icon at the conventional address."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", dependencies=[CsrfProtected])
def login(
    request: Request,
    session: DbSession,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/inbox",
):
    previous = request.session.get(SESSION_KEY)
    try:
        key = sign_in(
            session, email=email, password=password, client_host=client_host(request),
            user_agent=request.headers.get("user-agent"), previous_key=previous if isinstance(previous, str) else None,
            keep_for=timedelta(seconds=request.app.state.settings.session_max_age_s),
        )  # fmt: skip
    except (NotAuthenticated, TooManyAttempts) as exc:
        context = {"next": safe_next(next), "error": exc.code, "email": email}
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyAttempts) else None
        return render(request, "login.html", context, status_code=exc.status_code, headers=headers)
    request.session.clear()  # a fresh session (and CSRF token) at sign-in
    request.session[SESSION_KEY] = key
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: DbSession, user: CurrentUser):
    if isinstance(key := request.session.get(SESSION_KEY), str):
        auth_service.end_web_session(session, key=key)  # a copy of the cookie stops working too
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
