"""FastAPI dependencies: the database session, the signed-in user, roles and CSRF."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from cape.auth.service import note_token_use, token_caller, user_id_for_web_session
from cape.db import is_read_only, mark_read_only, unit_of_work
from cape.kit.errors import DatabaseBusy, Forbidden, NotAuthenticated
from cape.models import Role, User

log = logging.getLogger(__name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_KEY = "sid"  # in the signed cookie: the key of the browser's sign-in (auth.service)


def _session(request: Request) -> Iterator[Session]:
    """One session per request: committed once when the handler returns, else rolled back.

    Read-only for GET and HEAD: on SQLite, page loads and API reads then run beside the writer
    instead of waiting for ingestion's write turn (cape.db).
    """
    session = request.app.state.session_factory()
    if request.method in SAFE_METHODS:
        mark_read_only(session)
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


async def _cookie_csrf_first(request: Request) -> None:
    """Check a cookie session's CSRF token before any database work.

    Reading a form body waits on the client; doing it before the first query means a slow
    client never holds a transaction (on SQLite, the write lock) while it dribbles its body.
    """
    if "authorization" not in request.headers and request.session.get(SESSION_KEY) is not None:
        await check_csrf(request)


def _authenticate(
    request: Request, session: DbSession, background: BackgroundTasks,
    _csrf: Annotated[None, Depends(_cookie_csrf_first)],
) -> User:  # fmt: skip
    # Sync on purpose: it queries the database, which must never happen on the event loop
    # (a blocked loop cannot finish the request that holds SQLite's write lock).
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        caller = token_caller(session, plain=token.strip()) if scheme.lower() == "bearer" else None
        if caller is None:
            raise NotAuthenticated("invalid or revoked API token")
        if caller.use_unnoted:
            if is_read_only(session):  # noted in a write of its own, once the response is sent
                background.add_task(_note_token_use, request.app.state.session_factory, caller.token_id)
            else:
                note_token_use(session, token_id=caller.token_id)
        request.state.authenticated_by = "token"
        user = session.get_one(User, caller.user_id)
        request.state.viewer = Viewer.of(user)
        return user
    key = request.session.get(SESSION_KEY)
    if isinstance(key, str):
        user_id = user_id_for_web_session(session, key=key)
        if user_id is not None:
            request.state.authenticated_by = "cookie"
            user = session.get_one(User, user_id)
            request.state.viewer = Viewer.of(user)
            return user
    if key is not None:
        request.session.clear()  # signed out elsewhere, or deactivated
    raise NotAuthenticated("sign in, or send an API token as 'Authorization: Bearer <token>'")


def _note_token_use(session_factory: sessionmaker[Session], token_id: int) -> None:
    try:
        with unit_of_work(session_factory) as session:
            note_token_use(session, token_id=token_id)
    except DatabaseBusy:  # a later request notes it; the time of last use is a hint, not a record
        log.warning("the API token's last use could not be noted: the database stayed busy")


@dataclass(frozen=True)
class Viewer:
    """Who is signed in, as pages need it even after the request's session has ended (error pages)."""

    id: int
    name: str
    email: str
    role: Role
    language: str

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.name, user.email, user.role, user.language)


@dataclass(frozen=True)
class Credentials:
    """What a request presents, not yet checked against the database: a token or a session's user."""

    token: str | None = None
    session_key: str | None = None


async def _credentials(request: Request, _csrf: Annotated[None, Depends(_cookie_csrf_first)]) -> Credentials:
    # For handlers that check credentials where their own database work happens
    # (auth.service.active_user_id), saving a thread hop of their own for the lookup.
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            raise NotAuthenticated("invalid or revoked API token")
        return Credentials(token=token.strip())
    key = request.session.get(SESSION_KEY)
    if isinstance(key, str):
        return Credentials(session_key=key)
    raise NotAuthenticated("sign in, or send an API token as 'Authorization: Bearer <token>'")


UncheckedCredentials = Annotated[Credentials, Depends(_credentials)]


async def csrf_protect(request: Request) -> None:
    """For forms posted without a signed-in user (sign-in, the public contact form)."""
    await check_csrf(request)


CsrfProtected = Depends(csrf_protect)

CurrentUser = Annotated[User, Depends(_authenticate)]


def require_role(role: Role):
    """A dependency that lets through users with at least ``role``."""

    def dependency(user: CurrentUser) -> User:
        if not user.role.at_least(role):
            raise Forbidden(f"this needs the {role.value} role", required_role=role.value)
        return user

    return Depends(dependency)


Supervisor = Annotated[User, require_role(Role.supervisor)]
Admin = Annotated[User, require_role(Role.admin)]
