"""Customers API: the customer (with their orders' value), their timeline, notes, merging duplicates; orders."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cape.auth.deps import Admin, CurrentUser, DbSession, Supervisor
from cape.customers import orders, service
from cape.customers.schemas import (
    CustomerOut,
    CustomerPatch,
    LifetimeValueOut,
    MergeIn,
    OrderIn,
    OrderOut,
    OrderPage,
    TimelineItemOut,
    TimelineOut,
)
from cape.kit.validation import IdPath
from cape.models import Customer, Message

router = APIRouter(prefix="/api/v1", tags=["customers"])

# The customer's latest orders shown with them; the rest page through GET /customers/{id}/orders.
ORDERS_WITH_CUSTOMER = 100
ORDERS_PER_PAGE = 100


def customer_out(request: Request, session, customer: Customer) -> CustomerOut:
    latest = orders.customer_orders(session, customer_id=customer.id, limit=ORDERS_WITH_CUSTOMER)
    value = orders.customer_value(
        session, customer_id=customer.id, currency=request.app.state.settings.default_currency
    )
    return CustomerOut(
        id=customer.id, name=customer.name, language=customer.language, created_at=customer.created_at,
        merged_into_id=customer.merged_into_id, identities=customer.identities,
        orders=[OrderOut.model_validate(o) for o in latest.rows],
        lifetime_value=[LifetimeValueOut(currency=c, total_amount=t, orders=n) for c, t, n in value.lifetime_value],
        loyalty_tier=value.loyalty_tier, notes=customer.notes,
    )  # fmt: skip


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: IdPath, request: Request, session: DbSession, user: CurrentUser):
    return customer_out(request, session, service.get_customer(session, customer_id=customer_id))


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def patch_customer(customer_id: IdPath, body: CustomerPatch, request: Request, session: DbSession, user: CurrentUser):
    """Change the agents' notes on the customer (each version is kept in the history and the audit log)."""
    customer = service.get_customer(session, customer_id=customer_id)
    if "notes" in body.model_fields_set:
        customer = orders.update_notes(session, customer=customer, notes=body.notes, actor=user)
    return customer_out(request, session, customer)


@router.get("/customers/{customer_id}/orders", response_model=OrderPage)
def customer_orders(customer_id: IdPath, session: DbSession, user: CurrentUser, cursor: str | None = None):
    """The customer's orders, newest first, a page at a time (``next_cursor`` gives the next)."""
    customer = service.get_customer(session, customer_id=customer_id)
    page = orders.customer_orders(session, customer_id=customer.id, limit=ORDERS_PER_PAGE, cursor=cursor)
    return OrderPage(items=[OrderOut.model_validate(o) for o in page.rows], next_cursor=page.next_cursor)


@router.post(
    "/orders", response_model=OrderOut, status_code=201,
    responses={200: {"model": OrderOut, "description": "An order with this number existed: updated"}},
)  # fmt: skip
def post_order(body: OrderIn, session: DbSession, user: Admin):
    """Create or update the shop's order with this ``number`` (admins: the shop's integration token)."""
    order, created = orders.upsert_order(session, data=body, actor=user)
    return JSONResponse(OrderOut.model_validate(order).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/customers/{customer_id}/timeline", response_model=TimelineOut)
def customer_timeline(customer_id: IdPath, session: DbSession, user: CurrentUser):
    customer = service.get_customer(session, customer_id=customer_id)
    entries = service.customer_timeline(session, customer=customer)
    return TimelineOut(customer_id=customer.id, items=[_timeline_item(e) for e in entries])


@router.post("/customers/{customer_id}/merge", response_model=CustomerOut)
def merge_customers(customer_id: IdPath, body: MergeIn, request: Request, session: DbSession, user: Supervisor):
    """Fold a duplicate into this customer (supervisors and admins)."""
    target = service.get_customer(session, customer_id=customer_id)
    other = service.get_customer(session, customer_id=body.other_id)
    return customer_out(request, session, service.merge_customers(session, target=target, other=other, actor=user))


def _timeline_item(entry: service.TimelineEntry) -> TimelineItemOut:
    item = entry.item
    if isinstance(item, Message):
        return TimelineItemOut(
            type="message", at=entry.at, conversation_id=entry.conversation_id, id=item.id,
            direction=item.direction.value, channel=item.channel.kind.value,
            author_type=item.author_type.value, author_user_id=item.author_user_id,
            subject=item.subject, body=item.body_text,
        )  # fmt: skip
    return TimelineItemOut(
        type="activity", at=entry.at, conversation_id=entry.conversation_id, id=item.id,
        kind=item.kind, actor_user_id=item.actor_user_id, data=item.data,
    )  # fmt: skip
