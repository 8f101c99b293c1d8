"""Agent workspace pages (inbox, conversation, customer), sign-in, and the public contact form."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode, urlparse

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.auth import service as auth_service
from cape.auth import throttle
from cape.auth.deps import SESSION_KEY, CsrfProtected, CurrentUser, DbSession
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.channels.email import service as email_service
from cape.conversations import service
from cape.customers import service as customers_service
from cape.kit.errors import CapeError, InvalidInput
from cape.kit.validation import IdPath
from cape.models import ChannelKind, ConversationStatus, Priority, User
from cape.web.actions import action_card_context
from cape.web.render import render

router = APIRouter(include_in_schema=False)

INBOX_VIEWS = ("mine", "unassigned", "all")
CONTACT_MESSAGE_MAX_CHARS = 20_000


def _client_host(request: Request) -> str | None:
    """The client's address; behind a proxy, as its X-Forwarded-For says (CAPE_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


def _safe_next(target: str | None) -> str:
    if not target:
        return "/inbox"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/inbox"
    return target


@router.get("/")
def home():
    return RedirectResponse("/inbox", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None):
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", dependencies=[CsrfProtected])
def login(
    request: Request,
    session: DbSession,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/inbox",
):
    refused = {"next": _safe_next(next), "error": "bad_credentials", "email": email}
    if "\x00" in email or "\x00" in password:  # no such account can exist, nor be stored
        return render(request, "login.html", refused, status_code=401)
    # Password guessing is slowed, not just logged: past a limit, the password is not even checked.
    email_key, address = auth_service.normalize_email(email), throttle.address_key(_client_host(request))
    counted = [(throttle.SIGN_IN_BY_EMAIL_AND_ADDRESS, f"{email_key} {address}"),
               (throttle.SIGN_IN_BY_EMAIL, email_key), (throttle.SIGN_IN_BY_ADDRESS, address)]  # fmt: skip
    throttle.serialize(session, email_key, address)
    if wait := max(throttle.retry_after(session, limit, key) or 0 for limit, key in counted):
        context = {"next": _safe_next(next), "error": "too_many_attempts", "email": email}
        return render(request, "login.html", context, status_code=429, headers={"Retry-After": str(wait)})
    # Counted before the password is checked, so that parallel guesses count too; taken back below
    # when the password is right.
    hit_ids = [throttle.hit(session, limit, key) for limit, key in counted]
    candidate = auth_service.sign_in_candidate(session, email=email)
    session.commit()  # hashing takes a while: no transaction (on SQLite, the write turn) waits on it
    user_id = auth_service.check_password(candidate, password)
    new_hash = auth_service.renewed_hash(candidate, password) if user_id is not None else None
    user = auth_service.signed_in_user(session, candidate=candidate, new_hash=new_hash) if user_id else None
    if user is None:
        return render(request, "login.html", refused, status_code=401)
    throttle.uncount(session, hit_ids)
    throttle.forget(session, *counted[0])  # and earlier misses on this account from this address
    if isinstance(previous := request.session.get(SESSION_KEY), str):
        auth_service.end_web_session(session, previous)
    request.session.clear()  # a fresh session (and CSRF token) at sign-in
    request.session[SESSION_KEY] = auth_service.start_web_session(
        session, user=user, user_agent=request.headers.get("user-agent"),
        keep_for=timedelta(seconds=request.app.state.settings.session_max_age_s),
    )  # fmt: skip
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: DbSession, user: CurrentUser):
    if isinstance(key := request.session.get(SESSION_KEY), str):
        auth_service.end_web_session(session, key)  # a copy of the cookie stops working too
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _inbox_context(session, user, view: str, status: str, cursor: str | None):
    view = view if view in INBOX_VIEWS else "all"
    status_filter = ConversationStatus(status) if status in ConversationStatus.__members__ else None
    rows, next_cursor = service.list_conversations(
        session,
        status=status_filter,
        assignee_id=user.id if view == "mine" else None,
        unassigned=view == "unassigned",
        limit=50,
        cursor=cursor,
    )
    return {
        "conversations": rows,
        "next_cursor": next_cursor,
        "view": view,
        "status": status_filter.value if status_filter else "all",
        "statuses": [s.value for s in ConversationStatus],
        "views": INBOX_VIEWS,
    }


@router.get("/inbox")
def inbox(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", cursor: str | None = None,
):  # fmt: skip
    return render(request, "inbox.html", _inbox_context(session, user, view, status, cursor), user=user)


@router.get("/inbox/rows")
def inbox_rows(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", cursor: str | None = None,
):  # fmt: skip
    """The inbox list alone, polled by the page so new conversations appear without a reload."""
    return render(request, "_inbox_rows.html", _inbox_context(session, user, view, status, cursor), user=user)


def _conversation_context(session, conversation_id: int, user: User):
    conversation = service.get_conversation(session, conversation_id)
    customer = customers_service.get_customer(session, conversation.customer_id)
    return {
        "conversation": conversation,
        "attachments": email_service.attachments_by_message(session, [m.id for m in conversation.messages]),
        "customer": customer,
        "activities": service.conversation_activities(session, conversation=conversation),
        "other_conversations": [
            c for c in customers_service.customer_conversations(session, customer=customer) if c.id != conversation.id
        ][:10],
        "users": [u for u in auth_service.list_users(session) if u.is_active],
        "statuses": [s.value for s in ConversationStatus],
        "priorities": [p.value for p in Priority],
        **action_card_context(session, customer=customer, user=user),
    }


@router.get("/conversations/{conversation_id}")
def conversation_page(request: Request, conversation_id: IdPath, session: DbSession, user: CurrentUser):
    return render(request, "conversation.html", _conversation_context(session, conversation_id, user), user=user)


@router.post("/conversations/{conversation_id}/reply")
def conversation_reply(
    request: Request,
    conversation_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    body: Annotated[str, Form()] = "",
    internal: Annotated[bool, Form()] = False,
):
    conversation = service.get_conversation(session, conversation_id, with_messages=False)
    error = None
    try:
        service.add_reply(session, conversation=conversation, author=user, body=body, internal=internal)
    except InvalidInput as exc:
        error = exc.reason
    session.flush()
    session.expire_all()
    context = _conversation_context(session, conversation_id, user) | {"reply_error": error}
    return render(request, "_conversation_main.html", context, user=user)


@router.post("/conversations/{conversation_id}/update")
def conversation_update(
    request: Request,
    conversation_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    status: Annotated[str | None, Form()] = None,
    assignee_id: Annotated[str | None, Form()] = None,
    priority: Annotated[str | None, Form()] = None,
    tags: Annotated[str | None, Form()] = None,
):
    conversation = service.get_conversation(session, conversation_id, with_messages=False)
    error = None
    try:
        with session.begin_nested():  # a refused change leaves nothing half done
            changes = _form_changes(status=status, assignee_id=assignee_id, priority=priority, tags=tags)
            service.update_conversation(session, conversation=conversation, actor=user, **changes)
    except CapeError as exc:
        error = exc.message
    if request.headers.get("hx-request"):
        session.expire_all()
        context = _conversation_context(session, conversation_id, user) | {"update_error": error}
        return render(request, "_conversation_main.html", context, user=user)
    if error:
        raise InvalidInput("form", error)
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


def _form_changes(*, status: str | None, assignee_id: str | None, priority: str | None, tags: str | None) -> dict:
    changes: dict = {}
    if status:
        if status not in ConversationStatus.__members__:
            raise InvalidInput("status", f"unknown status {status!r}")
        changes["status"] = ConversationStatus(status)
    if assignee_id is not None:
        value = assignee_id.strip()
        if value and not re.fullmatch(r"\d{1,18}", value):
            raise InvalidInput("assignee_id", "not a user")
        changes["assignee_id"] = int(value) if value else None
    if priority:
        if priority not in Priority.__members__:
            raise InvalidInput("priority", f"unknown priority {priority!r}")
        changes["priority"] = Priority(priority)
    if tags is not None:
        changes["tags"] = [t for t in tags.split(",") if t.strip()]
    return changes


@router.get("/customers/{customer_id}")
def customer_page(request: Request, customer_id: IdPath, session: DbSession, user: CurrentUser):
    return render(request, "customer.html", _customer_context(session, customer_id), user=user)


def _customer_context(session, customer_id: int) -> dict:
    customer = customers_service.get_customer(session, customer_id)
    return {
        "customer": customer,
        "conversations": customers_service.customer_conversations(session, customer=customer),
        "timeline": customers_service.customer_timeline(session, customer=customer),
    }


@router.post("/customers/{customer_id}/merge")
def customer_merge(
    request: Request,
    customer_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    other: Annotated[str, Form()] = "",
):
    """Fold a duplicate (given by customer number, email or phone) into this customer."""
    target = customers_service.get_customer(session, customer_id)
    try:
        with session.begin_nested():  # a refused merge leaves nothing half done
            duplicate = customers_service.find_customer(session, other)
            customers_service.merge_customers(session, target=target, other=duplicate, actor=user)
    except CapeError as exc:
        session.expire_all()
        context = _customer_context(session, customer_id) | {"merge_error": exc.message, "merge_value": other}
        return render(request, "customer.html", context, user=user, status_code=exc.status_code)
    return RedirectResponse(f"/customers/{customer_id}", status_code=303)


@router.get("/contact")
def contact_page(request: Request):
    return render(request, "contact.html", {"values": {}, "errors": {}})


@router.post("/contact", dependencies=[CsrfProtected])
def contact_submit(
    request: Request,
    session: DbSession,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",  # honeypot: people leave it empty, bots fill it
):
    values = {"name": name, "email": email, "subject": subject, "message": message}
    address = throttle.address_key(_client_host(request))
    throttle.serialize(session, address)
    if wait := throttle.retry_after(session, throttle.CONTACT_BY_ADDRESS, address):
        context = {"values": values, "errors": {}, "throttled": True}
        return render(request, "contact.html", context, status_code=429, headers={"Retry-After": str(wait)})
    errors = {}
    if not email.strip():
        errors["email"] = "required"
    if not message.strip():
        errors["message"] = "required"
    elif len(message) > CONTACT_MESSAGE_MAX_CHARS:
        errors["message"] = "too_long"
    if website:
        return render(request, "contact_thanks.html", {})
    if not errors:
        raw = urlencode(values)
        inbound = InboundMessage(
            channel=builtin_channel(session, ChannelKind.web),
            sender=Sender(email=email.strip(), name=name.strip() or None),
            subject=subject.strip() or None,
            body_text=message.strip(),
            raw=raw.encode(),
            raw_content_type="application/x-www-form-urlencoded",
        )
        # Counted in the transaction that checked the limit (ingest commits): parallel posts count too.
        throttle.hit(session, throttle.CONTACT_BY_ADDRESS, address)
        try:
            service.ingest(session, inbound=inbound)
        except CapeError as exc:
            errors[getattr(exc, "field", "email").removeprefix("from.")] = "invalid"
        else:
            return render(request, "contact_thanks.html", {})
    return render(request, "contact.html", {"values": values, "errors": errors}, status_code=422)
