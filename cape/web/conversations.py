"""The conversation page: messages, history, replies and notes, changes, and the Actions card."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.actions import service as actions_service
from cape.auth import service as auth_service
from cape.auth.deps import CurrentUser, DbSession
from cape.channels import outbound
from cape.channels.email import service as email_service
from cape.channels.email.send import customer_address
from cape.conversations import service
from cape.customers import orders as orders_service
from cape.customers import service as customers_service
from cape.kit.errors import CapeError, Conflict, InvalidInput, NotFound
from cape.kit.validation import IdPath
from cape.models import ActionStatus, ActionType, ConversationStatus, Customer, Priority, User
from cape.realtime import presence
from cape.web.customers import customer_360
from cape.web.render import render

router = APIRouter(include_in_schema=False)

CURRENCIES = ("USD", "EUR", "GBP", "DKK", "SEK", "NOK", "CAD", "AUD", "JPY", "CHF")


# The orders an action can be taken on: the customer's latest (older ones are on the customer page).
ACTION_ORDERS = 50


def action_card_context(session, *, customer: Customer, user: User, default_currency: str) -> dict:
    """What the conversation page's Actions card needs: choices, what the agent may still give, past actions."""
    headroom = actions_service.authority_headroom(session, user=user, customer_id=customer.id)
    orders = orders_service.customer_orders(session, customer_id=customer.id, limit=ACTION_ORDERS).rows
    # The currency offered: the chosen order's (the page switches to it), else the customer's
    # last order's, else the deployment's; never the agent's own, which may be another shop's.
    currency = orders[0].currency if orders else default_currency
    extra = [currency, headroom.currency, *(o.currency for o in orders)]
    actions = actions_service.list_actions(session, customer_id=customer.id, limit=50)
    return {
        "action_orders": orders,
        "customer_actions": actions,
        "reversed_ids": {a.reverses_id for a in actions if a.reverses_id and a.status is not ActionStatus.failed},
        "store_credit": actions_service.store_credit_balance(session, customer_id=customer.id),
        "refundable": actions_service.refundable_amounts(session, orders=orders),
        "action_types": list(ActionType),
        "action_reasons": actions_service.REASONS,
        "action_currencies": list(dict.fromkeys([*CURRENCIES, *extra])),
        "action_currency": currency,
        "headroom": headroom,
    }


# What the page shows at first; "show earlier" brings the rest a page at a time.
SIDEBAR_ORDERS = 5
MESSAGES_PER_PAGE = 30
HISTORY_PER_PAGE = 30
OTHER_CONVERSATIONS = 10


def conversation_context(request: Request, session, conversation_id: int, user: User) -> dict:
    """Everything the conversation page shows, for ``user``."""
    settings = request.app.state.settings
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    customer = customers_service.get_customer(session, customer_id=conversation.customer_id)
    messages, earlier_messages = service.conversation_messages(
        session, conversation_id=conversation.id, limit=MESSAGES_PER_PAGE
    )
    activities, earlier_activities = service.conversation_activities(
        session, conversation_id=conversation.id, limit=HISTORY_PER_PAGE
    )
    others = service.recent_conversations(session, customer_id=customer.id, limit=OTHER_CONVERSATIONS + 1)
    return {
        "conversation": conversation,
        "messages": messages,
        "earlier_messages": earlier_messages,
        "attachments": email_service.attachments_by_message(session, message_ids=[m.id for m in messages]),
        "customer": customer,
        **customer_360(request, session, customer=customer, orders_limit=SIDEBAR_ORDERS),
        "activities": activities,
        "earlier_activities": earlier_activities,
        "other_conversations": [c for c in others if c.id != conversation.id][:OTHER_CONVERSATIONS],
        "users": [u for u in auth_service.list_users(session) if u.is_active],
        "presence_of": presence.presence_of,
        "statuses": [s.value for s in ConversationStatus],
        "priorities": [p.value for p in Priority],
        **composer_context(session, conversation=conversation, messages=messages),
        **action_card_context(session, customer=customer, user=user, default_currency=settings.default_currency),
    }


def composer_context(session, *, conversation, messages: list) -> dict:
    """Where a reply would go: the route (or why there is none), the customer's address, copies.
    ``messages``: the latest the page shows."""
    route = outbound.route_for(session, conversation=conversation)
    by_email = route.sender is not None and route.sender.name == "email"
    suggested = list(conversation.cc_addresses or [])
    reply_to = customer_address(session, conversation=conversation) if by_email else None
    if by_email:
        # Copies of the customer's last email are offered too; the agent keeps or removes them.
        own = {c.address for c in email_service.list_email_channels(session)}
        last = next((m for m in reversed(messages) if m.direction.value == "inbound"), None)
        if last is None:  # none among the latest shown
            last = service.last_inbound_message(session, conversation_id=conversation.id)
        for address in last.meta.get("email_cc", []) if last is not None else []:
            if address not in suggested and address not in own and address != reply_to:
                suggested.append(address)
    return {"route": route, "reply_by_email": by_email, "reply_to": reply_to, "suggested_cc": suggested}


@router.get("/conversations/{conversation_id}")
def conversation_page(request: Request, conversation_id: IdPath, session: DbSession, user: CurrentUser):
    return render(
        request, "conversation.html", conversation_context(request, session, conversation_id, user), user=user
    )


@router.get("/conversations/{conversation_id}/live")
def conversation_live(request: Request, conversation_id: IdPath, session: DbSession, user: CurrentUser):
    """What changed on the open page: its parts, each swapped into its place (the composer is left alone)."""
    context = conversation_context(request, session, conversation_id, user) | {"live": True}
    return render(request, "_conversation_main.html", context, user=user)


@router.get("/conversations/{conversation_id}/messages")
def earlier_messages(
    request: Request, conversation_id: IdPath, session: DbSession, user: CurrentUser, before: str | None = None
):
    """The page of messages before the cursor ``before`` (the latest without it), for "show earlier"."""
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    messages, earlier = service.conversation_messages(
        session, conversation_id=conversation.id, limit=MESSAGES_PER_PAGE, before=before
    )
    context = {
        "conversation": conversation, "customer": conversation.customer, "messages": messages,
        "earlier_messages": earlier,
        "attachments": email_service.attachments_by_message(session, message_ids=[m.id for m in messages]),
    }  # fmt: skip
    return render(request, "_messages.html", context, user=user)


@router.get("/conversations/{conversation_id}/history")
def earlier_history(
    request: Request, conversation_id: IdPath, session: DbSession, user: CurrentUser, before: str | None = None
):
    """The page of history entries before the cursor ``before`` (the latest without it), for "show earlier"."""
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    activities, earlier = service.conversation_activities(
        session, conversation_id=conversation.id, limit=HISTORY_PER_PAGE, before=before
    )
    context = {"conversation": conversation, "activities": activities, "earlier_activities": earlier}
    return render(request, "_history.html", context, user=user)


@router.post("/conversations/{conversation_id}/reply")
def conversation_reply(
    request: Request,
    conversation_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    body: Annotated[str, Form()] = "",
    internal: Annotated[bool, Form()] = False,
    cc: Annotated[str | None, Form()] = None,
):
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    error = None
    copies = None if cc is None else [a for a in re.split(r"[,;\s]+", cc) if a]
    try:
        with session.begin_nested():  # a refused reply leaves nothing half done
            service.add_reply(session, conversation=conversation, author=user, body=body, internal=internal, cc=copies)
    except InvalidInput as exc:
        error = exc
    session.expire_all()
    context = conversation_context(request, session, conversation_id, user)
    if error is not None:  # what was typed stays in the composer
        context |= {"reply_error": error.field, "reply_body": body, "reply_cc": cc, "reply_internal": internal}
    return render(request, "_conversation_main.html", context, user=user)


@router.post("/conversations/{conversation_id}/messages/{message_id}/retry")
def retry_delivery(
    request: Request, conversation_id: IdPath, message_id: IdPath, session: DbSession, user: CurrentUser
):
    """Try again to deliver a reply that failed or could not be sent."""
    message, conversation = service.get_message(session, message_id=message_id)
    error = None
    if conversation.id != conversation_id:
        raise NotFound(f"message {message_id} not found in this conversation")
    try:
        with session.begin_nested():
            outbound.retry_delivery(session, message=message, conversation=conversation, actor=user)
    except CapeError as exc:
        error = exc.message
    session.expire_all()
    context = conversation_context(request, session, conversation_id, user) | {"retry_error": error}
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
    assignee_seen: Annotated[str | None, Form()] = None,
):
    """The Details form and the status buttons. ``assignee_seen`` is the assignee the form showed."""
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    failure: CapeError | None = None
    try:
        with session.begin_nested():  # a refused change leaves nothing half done
            changes = _form_changes(status=status, assignee_id=assignee_id, assignee_seen=assignee_seen,
                                    priority=priority, tags=tags)  # fmt: skip
            service.update_conversation(session, conversation=conversation, actor=user, **changes)
    except CapeError as exc:
        failure = exc
    if request.headers.get("hx-request"):
        session.expire_all()
        context = conversation_context(request, session, conversation_id, user)
        if isinstance(failure, Conflict):  # someone else assigned it meanwhile: the page now shows whom
            context["update_conflict"] = True
        elif failure is not None:
            context["update_error"] = failure.message
        return render(request, "_conversation_main.html", context, user=user)
    if failure is not None:
        raise failure
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


def _form_changes(
    *, status: str | None, assignee_id: str | None, assignee_seen: str | None, priority: str | None, tags: str | None
) -> dict:
    changes: dict = {}
    if status:
        if status not in ConversationStatus.__members__:
            raise InvalidInput("status", f"unknown status {status!r}")
        changes["status"] = ConversationStatus(status)
    if assignee_id is not None:
        wanted = _user_id_field("assignee_id", assignee_id)
        if assignee_seen is None:
            changes["assignee_id"] = wanted
        elif wanted != (seen := _user_id_field("assignee_seen", assignee_seen)):
            # Only a choice the agent made is applied, and only over the assignee they saw: saving
            # the priority must not undo a colleague's assignment made since the page was loaded.
            changes["assignee_id"], changes["expected_assignee_id"] = wanted, seen
    if priority:
        if priority not in Priority.__members__:
            raise InvalidInput("priority", f"unknown priority {priority!r}")
        changes["priority"] = Priority(priority)
    if tags is not None:
        changes["tags"] = [t for t in tags.split(",") if t.strip()]
    return changes


def _user_id_field(field: str, text: str) -> int | None:
    """A user id from the form; "none" (or nothing) is nobody."""
    value = text.strip()
    if value in ("", "none"):
        return None
    if not re.fullmatch(r"\d{1,18}", value):
        raise InvalidInput(field, "not a user")
    return int(value)
