"""FastAPI dependencies: the database session, the signed-in user, roles and CSRF."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from cape.auth.service import user_for_token
from cape.kit.errors import Forbidden, NotAuthenticated
from cape.models import Role, User

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def _session(request: Request) -> Iterator[Session]:
    """One session per request: committed once when the handler returns, else rolled back."""
    session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": commit before the response is sent, so a client never sees a success
# that was not committed, and a commit failure becomes the response.
DbSession = Annotated[Session, Depends(_session, scope="function")]


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser session, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def check_csrf(request: Request) -> None:
    """Unsafe requests made with the session cookie must carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise Forbidden("missing or invalid CSRF token", code="csrf_failed")


async def _current_user(request: Request, session: DbSession) -> User:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        # Database work runs in the thread pool, never on the event loop: a query blocked there
        # (on a pooled connection, or on SQLite's write lock) would stall the very requests that
        # must finish to release it.
        user = await run_in_threadpool(user_for_token, session, token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise NotAuthenticated("invalid or revoked API token")
        return user
    user_id = request.session.get("user_id")
    if user_id is not None:
        user = await run_in_threadpool(session.get, User, user_id)
        if user is not None and user.is_active:
            await check_csrf(request)
            return user
        request.session.clear()
    raise NotAuthenticated("sign in, or send an API token as 'Authorization: Bearer <token>'")


CurrentUser = Annotated[User, Depends(_current_user)]


def require_role(role: Role):
    """A dependency that lets through users with at least ``role``."""

    def dependency(user: CurrentUser) -> User:
        if not user.role.at_least(role):
            raise Forbidden(f"this needs the {role.value} role")
        return user

    return Depends(dependency)


Supervisor = Annotated[User, require_role(Role.supervisor)]
Admin = Annotated[User, require_role(Role.admin)]
