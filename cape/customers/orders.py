"""Orders from the shop (upserted by number), and what they say about a customer: lifetime value,
loyalty tier; with the notes agents keep about the customer.

The loyalty tier is computed from orders, never stored, so it is always current:

- counted orders are all but those that did not go through (``UNCOUNTED_STATUSES``);
- ``vip``: 6 or more counted orders in the last 12 months, or 12 months' spend of at least
  ``VIP_SPEND`` in the deployment's currency (orders in other currencies count by number only);
- ``loyal``: 3 or more counted orders in the last 12 months;
- ``regular``: 2 or more counted orders, ever;
- ``new``: anyone else (no order yet, or one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cape.audit.service import record_audit
from cape.channels.base import Sender
from cape.customers.schemas import OrderIn
from cape.customers.service import get_customer, resolve_customer_id
from cape.kit.clock import utcnow
from cape.kit.errors import InvalidInput, NotFound
from cape.kit.money import minor_digits
from cape.kit.pagination import Page, newest_first
from cape.models import Activity, Customer, Order, User

# Orders that did not go through: they are no value and no sign of loyalty.
UNCOUNTED_STATUSES = ("cancelled", "canceled", "failed", "refunded", "returned")
LOYALTY_TIERS = ("new", "regular", "loyal", "vip")
VIP_ORDERS_12M = 6
LOYAL_ORDERS_12M = 3
REGULAR_ORDERS = 2
VIP_SPEND = 1000  # in whole units of the deployment's currency (1,000.00)
MAX_NOTES = 5000


@dataclass
class CustomerValue:
    """What a customer's orders add up to: per currency (never mixed), and the loyalty tier."""

    lifetime_value: list[tuple[str, int, int]] = field(default_factory=list)  # (currency, minor units, orders)
    loyalty_tier: str = "new"
    orders: int = 0
    orders_12m: int = 0


def upsert_order(session: Session, *, data: OrderIn, actor: User | None) -> tuple[Order, bool]:
    """Create the order with ``data.number``, or update it with the fields ``data`` carries; (order, created).

    The customer is ``data.customer_id`` or the one with ``data.customer_email`` (created when
    unknown); a customer merged away stands for the one it was merged into. Creating an order and
    changing its status leave an entry on the customer's timeline.
    """
    sent = data.model_fields_set
    customer_id = _customer_for(session, data=data) if sent & {"customer_id", "customer_email"} else None
    order = _locked_order(session, number=data.number)
    created = False
    if order is None:
        if customer_id is None:
            raise InvalidInput("customer_email", "give customer_id or customer_email for a new order")
        # Two requests creating the same number at once: both miss it above; the unique number lets
        # one insert, the other inserts nothing and then updates the row the first made.
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        values = {
            "customer_id": customer_id, "number": data.number, "status": data.status, "currency": data.currency,
            "total_amount": data.total_amount, "items": _items(data), "placed_at": data.placed_at or utcnow(),
            "created_at": utcnow(), **_delivery(data),
        }  # fmt: skip
        order_id = session.scalar(
            insert(Order).values(values).on_conflict_do_nothing(index_elements=[Order.number]).returning(Order.id)
        )
        if order_id is not None:
            order = session.get_one(Order, order_id)
            _log(session, order=order, actor=actor, kind="order_placed", status=order.status,
                 total_amount=order.total_amount, currency=order.currency)  # fmt: skip
            return order, True
        order = _locked_order(session, number=data.number)
    old_status = order.status
    if customer_id is not None:
        order.customer_id = customer_id
    for name in ("status", "currency", "total_amount", "placed_at"):
        if name in sent and getattr(data, name) is not None:
            setattr(order, name, getattr(data, name))
    if "items" in sent:
        order.items = _items(data)
    if "delivery" in sent:
        for name, value in _delivery(data).items():
            setattr(order, name, value)
    session.flush()
    if order.status != old_status:
        _log(session, order=order, actor=actor, kind="order_status_changed", old=old_status, new=order.status)
    return order, created


def _locked_order(session: Session, *, number: str) -> Order | None:
    # Locked: two updates of one order at once must not both read the old status (each logs a change).
    return session.scalar(select(Order).where(Order.number == number).with_for_update().execution_options(
        populate_existing=True))  # fmt: skip


def _customer_for(session: Session, *, data: OrderIn) -> int:
    if data.customer_id is not None:
        customer = session.get(Customer, data.customer_id)
        if customer is None:
            raise InvalidInput("customer_id", f"no customer {data.customer_id}")
        while customer.merged_into_id is not None:
            customer = session.get_one(Customer, customer.merged_into_id)
        return customer.id
    if not data.customer_email:
        raise InvalidInput("customer_email", "give customer_id or customer_email")
    sender = Sender(email=data.customer_email, name=data.customer_name)
    try:
        with session.begin_nested():
            return resolve_customer_id(session, sender=sender)
    except IntegrityError:
        # Someone else added the same email identity meanwhile: it is known now.
        return resolve_customer_id(session, sender=sender)


def _items(data: OrderIn) -> list[dict]:
    return [item.model_dump(exclude_none=True) for item in data.items]


def _delivery(data: OrderIn) -> dict:
    delivery = data.delivery
    return {
        "carrier": delivery.carrier if delivery else None,
        "tracking_number": delivery.tracking_number if delivery else None,
        "delivered_at": delivery.delivered_at if delivery else None,
    }


def _log(session: Session, *, order: Order, actor: User | None, kind: str, **data: object) -> None:
    entry = {"order_id": order.id, "number": order.number, **data}
    actor_id = actor.id if actor else None
    session.add(Activity(customer_id=order.customer_id, actor_user_id=actor_id, kind=kind, data=entry))


def customer_orders(session: Session, *, customer_id: int, limit: int, cursor: str | None = None) -> Page:
    """A page of the customer's orders, newest first, after ``cursor``."""
    query = select(Order).where(Order.customer_id == customer_id)
    return newest_first(session, query, at=Order.placed_at, row_id=Order.id, limit=limit, cursor=cursor)


def customer_value(session: Session, *, customer_id: int, currency: str, now: datetime | None = None) -> CustomerValue:
    """Lifetime value per currency and the loyalty tier (the rule is in this module's docstring).

    ``currency``: the deployment's, in which the VIP spend is counted.
    """
    now = now or utcnow()
    counted = (Order.customer_id == customer_id, Order.status.not_in(UNCOUNTED_STATUSES))
    per_currency = session.execute(
        select(Order.currency, func.sum(Order.total_amount), func.count())
        .where(*counted)
        .group_by(Order.currency)
        .order_by(Order.currency)
    ).all()
    recent, spend = session.execute(
        select(func.count(), func.sum(case((Order.currency == currency, Order.total_amount), else_=0))).where(
            *counted, Order.placed_at >= now - timedelta(days=365)
        )
    ).one()
    value = CustomerValue(
        lifetime_value=[(code, int(total), int(n)) for code, total, n in per_currency],
        orders=sum(int(n) for _, _, n in per_currency),
        orders_12m=int(recent),
    )
    if recent >= VIP_ORDERS_12M or int(spend or 0) >= VIP_SPEND * 10 ** minor_digits(currency):
        value.loyalty_tier = "vip"
    elif recent >= LOYAL_ORDERS_12M:
        value.loyalty_tier = "loyal"
    elif value.orders >= REGULAR_ORDERS:
        value.loyalty_tier = "regular"
    return value


def update_notes(session: Session, *, customer: Customer, notes: str | None, actor: User) -> Customer:
    """Replace the agents' notes on a customer ("prefers a call back"); history and audit keep each version."""
    if customer.merged_into_id is not None:
        raise NotFound(f"customer {customer.id} was merged into {customer.merged_into_id}")
    text = (notes or "").replace("\r\n", "\n").strip() or None
    if text is not None and len(text) > MAX_NOTES:
        raise InvalidInput("notes", f"at most {MAX_NOTES} characters")
    before = customer.notes
    if text == before:
        return customer
    customer.notes = text
    session.add(Activity(customer_id=customer.id, actor_user_id=actor.id, kind="customer_notes_changed",
                         data={"before": before, "after": text}))  # fmt: skip
    session.flush()
    record_audit(
        session, actor=actor, event="customer.notes_updated", subject_type="customer", subject_id=customer.id,
        customer_id=customer.id, before={"notes": before}, after={"notes": text},
    )  # fmt: skip
    return get_customer(session, customer_id=customer.id)
