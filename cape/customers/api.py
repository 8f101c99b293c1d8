"""Customers API: the customer, their timeline, merging duplicates."""

from __future__ import annotations

from fastapi import APIRouter

from cape.auth.deps import CurrentUser, DbSession, Supervisor
from cape.customers import service
from cape.customers.schemas import CustomerOut, MergeIn, TimelineItemOut, TimelineOut
from cape.kit.validation import IdPath
from cape.models import Message

router = APIRouter(prefix="/api/v1", tags=["customers"])


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: IdPath, session: DbSession, user: CurrentUser):
    return service.get_customer(session, customer_id=customer_id)


@router.get("/customers/{customer_id}/timeline", response_model=TimelineOut)
def customer_timeline(customer_id: IdPath, session: DbSession, user: CurrentUser):
    customer = service.get_customer(session, customer_id=customer_id)
    entries = service.customer_timeline(session, customer=customer)
    return TimelineOut(customer_id=customer.id, items=[_timeline_item(e) for e in entries])


@router.post("/customers/{customer_id}/merge", response_model=CustomerOut)
def merge_customers(customer_id: IdPath, body: MergeIn, session: DbSession, user: Supervisor):
    """Fold a duplicate into this customer (supervisors and admins)."""
    target = service.get_customer(session, customer_id=customer_id)
    other = service.get_customer(session, customer_id=body.other_id)
    return service.merge_customers(session, target=target, other=other, actor=user)


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
