"""The customer page: identities, orders, conversations and the timeline; merging a duplicate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.auth.deps import CurrentUser, DbSession, Supervisor
from cape.conversations import service as conversations_service
from cape.customers import orders as orders_service
from cape.customers import service as customers_service
from cape.kit.errors import CapeError
from cape.kit.validation import IdPath
from cape.models import Role, User
from cape.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/customers/{customer_id}")
def customer_page(request: Request, customer_id: IdPath, session: DbSession, user: CurrentUser):
    return render(request, "customer.html", _customer_context(request, session, customer_id, user), user=user)


# The page lists this many conversations and orders at first ("older ..." brings more), and the
# latest entries of the timeline.
CONVERSATIONS_PER_PAGE = 20
ORDERS_PER_PAGE = 20
TIMELINE_ENTRIES = 100


def customer_360(request: Request, session, *, customer, orders_limit: int) -> dict:
    """The customer 360 the customer page and every conversation show: value, tier, notes, latest orders."""
    page = orders_service.customer_orders(session, customer_id=customer.id, limit=orders_limit)
    value = orders_service.customer_value(
        session, customer_id=customer.id, currency=request.app.state.settings.default_currency
    )
    return {"customer_value": value, "orders": page.rows, "older_orders": page.next_cursor}


def _customer_context(request: Request, session, customer_id: int, user: User) -> dict:
    customer = customers_service.get_customer(session, customer_id=customer_id)
    conversations, older = conversations_service.list_conversations(
        session, customer_id=customer.id, limit=CONVERSATIONS_PER_PAGE
    )
    return {
        **customer_360(request, session, customer=customer, orders_limit=ORDERS_PER_PAGE),
        "customer": customer,
        "can_merge": user.role.at_least(Role.supervisor),
        "conversations": conversations,
        "older_conversations": older,
        "timeline": customers_service.customer_timeline(session, customer=customer, limit=TIMELINE_ENTRIES),
    }


@router.get("/customers/{customer_id}/conversations")
def older_conversations(
    request: Request, customer_id: IdPath, session: DbSession, user: CurrentUser, cursor: str | None = None
):
    """The customer's page of conversations after ``cursor`` (the first without it), for "older conversations"."""
    customer = customers_service.get_customer(session, customer_id=customer_id)
    conversations, older = conversations_service.list_conversations(
        session, customer_id=customer.id, limit=CONVERSATIONS_PER_PAGE, cursor=cursor
    )
    context = {"customer": customer, "conversations": conversations, "older_conversations": older}
    return render(request, "_customer_conversations.html", context, user=user)


@router.get("/customers/{customer_id}/orders")
def older_orders(
    request: Request, customer_id: IdPath, session: DbSession, user: CurrentUser, cursor: str | None = None
):
    """The customer's page of orders after ``cursor`` (the first without it), for "older orders"."""
    customer = customers_service.get_customer(session, customer_id=customer_id)
    page = orders_service.customer_orders(session, customer_id=customer.id, limit=ORDERS_PER_PAGE, cursor=cursor)
    context = {"customer": customer, "orders": page.rows, "older_orders": page.next_cursor}
    return render(request, "_customer_orders.html", context, user=user)


@router.post("/customers/{customer_id}/notes")
def customer_notes(
    customer_id: IdPath,
    session: DbSession,
    user: CurrentUser,
    notes: Annotated[str, Form(max_length=orders_service.MAX_NOTES)] = "",
    back: Annotated[str, Form()] = "",
):
    """Save the agents' notes on a customer, then go back to the page the form was on."""
    customer = customers_service.get_customer(session, customer_id=customer_id)
    orders_service.update_notes(session, customer=customer, notes=notes, actor=user)
    # Only a path of this site: never an address elsewhere ("//host" or "/\\host" would be one).
    target = back if back.startswith("/") and not back.startswith(("//", "/\\")) else f"/customers/{customer_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/customers/{customer_id}/merge")
def customer_merge(
    request: Request,
    customer_id: IdPath,
    session: DbSession,
    user: Supervisor,
    other: Annotated[str, Form()] = "",
):
    """Fold a duplicate (given by customer number, email or phone) into this customer (supervisors)."""
    target = customers_service.get_customer(session, customer_id=customer_id)
    try:
        with session.begin_nested():  # a refused merge leaves nothing half done
            duplicate = customers_service.find_customer(session, reference=other)
            customers_service.merge_customers(session, target=target, other=duplicate, actor=user)
    except CapeError as exc:
        session.expire_all()
        context = _customer_context(request, session, customer_id, user)
        context |= {"merge_error": exc.message, "merge_value": other}
        return render(request, "customer.html", context, user=user, status_code=exc.status_code)
    return RedirectResponse(f"/customers/{customer_id}", status_code=303)
