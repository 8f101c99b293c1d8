"""Action pages: the conversation's Actions card, supervisors' approvals and review, the hero feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from cape.actions import authority as authority_service
from cape.actions import reporting, service
from cape.auth import service as auth_service
from cape.auth.deps import Admin, CurrentUser, DbSession, Supervisor
from cape.conversations import service as conversations_service
from cape.insights.heroes import hero_feed
from cape.kit.clock import utcnow
from cape.kit.errors import CapeError, InvalidInput
from cape.kit.money import parse_amount, parse_currency
from cape.kit.validation import MAX_ID, IdPath
from cape.models import ActionStatus, ActionType, Role, User
from cape.web.action_errors import APPROVALS, AUTHORITY_FORM, explain
from cape.web.conversations import conversation_context
from cape.web.render import render

router = APIRouter(include_in_schema=False)


def _conversation_fragment(request: Request, session, user: User, conversation_id: int, **extra):
    session.flush()
    session.expire_all()
    context = conversation_context(request, session, conversation_id, user) | extra
    return render(request, "_conversation_main.html", context, user=user)


@router.post("/conversations/{conversation_id}/actions")
def take_action(
    request: Request,
    conversation_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    type: Annotated[str, Form()] = "refund",
    amount: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    order_id: Annotated[str, Form()] = "",
):
    conversation = conversations_service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    typed = {"type": type, "order_id": order_id, "amount": amount, "currency": currency, "reason": reason, "note": note}
    try:
        # A savepoint, so a refusal part-way leaves nothing behind when the request commits.
        with session.begin_nested():
            action = _action_from_form(session, conversation=conversation, actor=user, form=typed)
    except CapeError as exc:
        # Shown beside its field in the Actions card (a 200, so HTMX swaps it in), with what was typed.
        error = explain(exc, language=user.language, currency=currency.strip().upper())
        return _conversation_fragment(request, session, user, conversation_id, action_error=error, action_form=typed)
    return _conversation_fragment(request, session, user, conversation_id, action_notice=action)


def _action_from_form(session, *, conversation, actor: User, form: dict[str, str]):
    """The Actions card's form as a person filled it in, read and handed to ``take_action``."""
    if form["type"] not in ActionType._value2member_map_:
        raise InvalidInput("type", "not an action type")
    order_text = form["order_id"].strip()
    if order_text and not (order_text.isdecimal() and 1 <= int(order_text) <= MAX_ID):
        raise InvalidInput("order_id", "not an order")
    order = int(order_text) if order_text else None
    action_type = ActionType(form["type"])
    if not form["amount"].strip() and order is not None and action_type is ActionType.refund:
        value = service.refundable_amount(session, order_id=order)  # "refund the order": what is left
    else:
        value = parse_amount(form["amount"], form["currency"], maximum=service.MAX_AMOUNT)
    return service.take_action(
        session, conversation=conversation, actor=actor, action_type=action_type, amount=value,
        currency=form["currency"], reason=form["reason"], note=form["note"], order_id=order,
    )  # fmt: skip


def _prompt(request: Request) -> str:
    """What the person typed in an ``hx-prompt``; htmx percent-encodes it when it is not Latin-1 ("5 €")."""
    text = request.headers.get("hx-prompt") or ""
    return unquote(text) if request.headers.get("hx-prompt-uri-autoencoded") == "true" else text


@router.post("/actions/{action_id}/reverse")
def reverse_action(request: Request, action_id: IdPath, session: DbSession, user: CurrentUser):
    action = service.get_action(session, action_id=action_id)
    reason = _prompt(request) or service.NO_REASON_GIVEN
    try:
        with session.begin_nested():
            service.reverse_action(session, action=action, actor=user, reason=reason)
    except CapeError as exc:
        error = explain(exc, language=user.language, currency=action.currency)
        return _conversation_fragment(request, session, user, action.conversation_id, action_error=error)
    return _conversation_fragment(request, session, user, action.conversation_id)


def _approvals_context(session) -> dict:
    decided = [a for a in service.list_actions(session, limit=30) if a.decided_at is not None]
    return {
        "pending": service.list_actions(session, status=ActionStatus.pending_approval, limit=200),
        "recent": sorted(decided, key=lambda a: a.decided_at, reverse=True)[:15],
    }


@router.get("/approvals")
def approvals(request: Request, session: DbSession, user: Supervisor):
    return render(request, "approvals.html", _approvals_context(session), user=user)


@router.get("/approvals/rows")
def approvals_rows(request: Request, session: DbSession, user: Supervisor):
    """The list alone, polled so a new request shows up without a reload."""
    return render(request, "_approval_rows.html", _approvals_context(session), user=user)


@router.get("/approvals/count")
def approvals_count(session: DbSession, user: Supervisor):
    """The number of waiting requests, for the badge in every supervisor's navigation."""
    count = service.pending_count(session)
    return HTMLResponse(f'<span class="badge warn" data-pending-count>{count}</span>' if count else "")


@router.post("/approvals/{action_id}/{decision}")
def decide(request: Request, action_id: IdPath, decision: str, session: DbSession, user: Supervisor):
    error, action = None, None
    try:
        # A savepoint, so a refusal part-way leaves nothing behind; the message shows in the list.
        with session.begin_nested():
            action = service.get_action(session, action_id=action_id)
            if decision == "approve":
                service.approve_action(session, action=action, actor=user)
            elif decision == "decline":
                service.decline_action(session, action=action, actor=user, note=_prompt(request) or None)
            else:
                raise InvalidInput("decision", "approve or decline")
    except CapeError as exc:
        currency = action.currency if action is not None else ""
        error = explain(exc, language=user.language, currency=currency, form=APPROVALS).message
    session.flush()
    session.expire_all()
    return render(request, "_approval_rows.html", _approvals_context(session) | {"error": error}, user=user)


@router.get("/review")
def review(request: Request, session: DbSession, user: Supervisor, days: int = 30):
    days = max(1, min(days, 366))
    result = reporting.review(session, since=utcnow() - timedelta(days=days))
    return render(request, "review.html", {"review": result, "days": days}, user=user)


@router.get("/heroes")
def heroes(request: Request, session: DbSession, user: CurrentUser):
    return render(request, "heroes.html", {"feed": hero_feed(session, limit=100)}, user=user)


@router.get("/admin/authority")
def authority_page(request: Request, session: DbSession, user: Admin):
    return render(request, "authority.html", _authority_context(session), user=user)


def _authority_context(session, **extra) -> dict:
    policies = authority_service.all_policies(session)  # one query, however many users
    users = [u for u in auth_service.list_users(session) if u.is_active]
    return {
        "roles": [(role, authority_service.resolve_authority(role=role, policies=policies)) for role in Role],
        "users": [(u, authority_service.resolve_authority(role=u.role, user=u, policies=policies)) for u in users],
        "action_types": [t.value for t in ActionType],
        **extra,
    }


async def _form_fields(request: Request) -> dict[str, str]:
    """The posted form as plain strings; reads the body only, never the database."""
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


def _policy_key(form: dict[str, str]) -> str | None:
    """Which form of the page was posted: "role:agent", "user:12", or None for neither or both."""
    user_id, role_name = form.get("user_id", "").strip(), form.get("role", "").strip()
    if bool(user_id) == bool(role_name):
        return None
    return f"user:{user_id}" if user_id else f"role:{role_name}"


@router.post("/admin/authority")
def save_authority(
    request: Request, session: DbSession, user: Admin, form: Annotated[dict[str, str], Depends(_form_fields)]
):
    """One form per role or user: blank means no limit; amounts typed in the policy's currency."""
    # A sync handler: FastAPI runs it in the thread pool, so its queries never block the event loop.
    typed_currency = form.get("currency", "").strip().upper()
    error = None
    try:
        with session.begin_nested():
            _save_policy(session, actor=user, form=form)
    except CapeError as exc:
        # Shown beside its field in the form that was posted, in the admin's language, with what was typed.
        error = explain(exc, language=user.language, currency=typed_currency, form=AUTHORITY_FORM)
    session.flush()
    context = _authority_context(session, saved=not error)
    key = _policy_key(form)
    shown = {f"role:{role.value}" for role, _ in context["roles"]} | {f"user:{u.id}" for u, _ in context["users"]}
    context |= {"posted_key": key if key in shown else None, "policy_error": error, "typed": form if error else {}}
    return render(request, "authority.html", context, user=user, status_code=422 if error else 200)


def _save_policy(session, *, actor: User, form: dict[str, str]) -> None:
    """The authority form as an admin filled it in, read and handed to ``set_authority``."""
    user_id, role_name = form.get("user_id", "").strip(), form.get("role", "").strip()
    if bool(user_id) == bool(role_name):
        raise InvalidInput("user_id", "give exactly one of a user or a role")
    if user_id and not (user_id.isdigit() and int(user_id) <= MAX_ID):
        raise InvalidInput("user_id", "not a user")
    if role_name and role_name not in Role._value2member_map_:
        raise InvalidInput("role", "not a role")
    target_user = auth_service.get_user(session, user_id=int(user_id)) if user_id else None
    currency = parse_currency(form.get("currency", ""))  # first, so amounts are read with its decimals

    def amount(name: str) -> int | None:
        text = form.get(name, "").strip()
        return parse_amount(text, currency, field=name, maximum=service.MAX_AMOUNT) if text else None

    authority_service.set_authority(
        session, actor=actor, user=target_user, role=Role(role_name) if role_name else None, currency=currency,
        per_action={t.value: amount(f"per_action.{t.value}") for t in ActionType},
        per_customer_30d=amount("per_customer_30d"), daily_budget=amount("daily_budget"),
    )  # fmt: skip
