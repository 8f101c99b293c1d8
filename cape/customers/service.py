"""Customers: who someone is across channels, merging duplicates, and their whole timeline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from cape.audit.service import record_audit
from cape.channels.base import Sender
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from cape.kit.rawsql import RawSql
from cape.models import (
    Action,
    Activity,
    Conversation,
    Customer,
    HeroMoment,
    Identity,
    IdentityKind,
    LedgerEntry,
    Message,
    Order,
    Role,
    User,
)


def normalize_identity(kind: IdentityKind, value: str) -> str:
    """The canonical form of an identity value: lower-case email, E.164 phone."""
    value = value.strip()
    if kind is IdentityKind.email:
        if "@" not in value or len(value) > 320 or any(c.isspace() for c in value):
            raise InvalidInput("from.email", "not an email address")
        return value.lower()
    if kind is IdentityKind.phone:
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise InvalidInput("from.phone", "must be an international number such as +4512345678") from exc
        if not phonenumbers.is_possible_number(number):
            raise InvalidInput("from.phone", "not a possible phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not value:
        raise InvalidInput(kind.value, "must not be empty")
    return value


def sender_identities(sender: Sender) -> list[tuple[IdentityKind, str]]:
    """The identities a sender presents, strongest first."""
    pairs = [
        (IdentityKind.email, sender.email),
        (IdentityKind.phone, sender.phone),
        (IdentityKind.chat_visitor, sender.chat_visitor),
        (IdentityKind.review_handle, sender.review_handle),
    ]
    return [(kind, normalize_identity(kind, value)) for kind, value in pairs if value]


_MAX_MERGE_HOPS = 50
# The ingest hot path's statements, for the driver directly (see cape.kit.rawsql).
_INSERT_CUSTOMER = "INSERT INTO customers (name, created_at) VALUES (:name, :created_at) RETURNING id"
_CUSTOMER_LINK = "SELECT merged_into_id, name FROM customers WHERE id = :customer_id"
_NAME_CUSTOMER = "UPDATE customers SET name = :name WHERE id = :customer_id"
_INSERT_IDENTITY = (
    "INSERT INTO identities (customer_id, kind, value, created_at) VALUES (:customer_id, :kind, :value, :created_at)"
)


def resolve_customer_id(session: Session, *, sender: Sender) -> int:
    """The id of the customer behind these identities; a new customer when none is known.

    Runs on the ingest hot path, hence plain driver statements. A concurrent ingest may insert
    the same identity between our lookup and insert; the unique constraint then fails the
    insert and ingest retries, finding it.
    """
    identities = sender_identities(sender)
    if not identities:
        raise InvalidInput("from", "give at least an email or a phone number")
    raw = RawSql.of(session)
    # One index lookup per (kind, value) pair: the unique index leads with kind.
    matches = " OR ".join(f"(kind = :kind_{n} AND value = :value_{n})" for n in range(len(identities)))
    params = {}
    for n, (kind, value) in enumerate(identities):
        params[f"kind_{n}"], params[f"value_{n}"] = kind.value, value
    known = {
        (kind, value): customer_id
        for kind, value, customer_id in raw.all(
            # Reviewed: only generated placeholders are interpolated; the values are parameters.
            f"SELECT kind, value, customer_id FROM identities WHERE {matches}",  # noqa: S608
            params,
        )
    }
    customer_id = next((known[(kind.value, value)] for kind, value in identities if (kind.value, value) in known), None)
    name = (sender.name or "").replace("\x00", "").strip()[:200] or None
    now = raw.datetime(utcnow())
    if customer_id is None:
        customer_id = raw.scalar(_INSERT_CUSTOMER, {"name": name, "created_at": now})
    else:
        merged_into_id, known_name = raw.first(_CUSTOMER_LINK, {"customer_id": customer_id})
        hops = 0
        while merged_into_id is not None:  # an identity left behind by a merge
            hops += 1
            if hops > _MAX_MERGE_HOPS:  # merges lock their rows, so this means corrupted data
                raise Conflict(f"customer {customer_id} has a merge chain longer than {_MAX_MERGE_HOPS}")
            customer_id = merged_into_id
            merged_into_id, known_name = raw.first(_CUSTOMER_LINK, {"customer_id": customer_id})
        if name and not known_name:
            raw.execute(_NAME_CUSTOMER, {"name": name, "customer_id": customer_id})
    for kind, value in identities:
        if (kind.value, value) not in known:
            raw.execute(
                _INSERT_IDENTITY, {"customer_id": customer_id, "kind": kind.value, "value": value, "created_at": now}
            )
    return customer_id


def get_customer(session: Session, *, customer_id: int) -> Customer:
    """A customer with identities loaded (orders, which may be many, come a page at a time: customers.orders)."""
    customer = session.scalar(
        select(Customer).where(Customer.id == customer_id).options(selectinload(Customer.identities))
    )
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def find_customer(session: Session, *, reference: str) -> Customer:
    """A customer by number ("42" or "#42"), email address or phone number."""
    reference = reference.strip()
    if re.fullmatch(r"#?\d{1,18}", reference):
        return get_customer(session, customer_id=int(reference.lstrip("#")))
    kind = IdentityKind.email if "@" in reference else IdentityKind.phone
    value = normalize_identity(kind, reference)
    customer_id = session.scalar(select(Identity.customer_id).where(Identity.kind == kind, Identity.value == value))
    if customer_id is None:
        raise NotFound(f"no customer with {kind.value} {value}")
    return get_customer(session, customer_id=customer_id)


def merge_customers(session: Session, *, target: Customer, other: Customer, actor: User) -> Customer:
    """Fold ``other`` into ``target``: identities, conversations, messages, orders and actions move.

    Supervisors and admins only: a wrong merge shows one person's history to another. Audited;
    the audit log keeps the customer each earlier entry was written for (it is append-only).
    """
    if not actor.role.at_least(Role.supervisor):
        raise Forbidden("merging customers needs the supervisor role")
    if target.id == other.id:
        raise InvalidInput("other_id", "cannot merge a customer into itself")
    # Two merges of the same pair in opposite directions at once would both pass a check on
    # stale rows and leave a cycle (A into B, B into A); lock both rows, in id order so two
    # merges cannot deadlock, and check the locked rows.
    locked = {
        row.id: row.merged_into_id
        for row in session.execute(
            select(Customer.id, Customer.merged_into_id)
            .where(Customer.id.in_([target.id, other.id]))
            .order_by(Customer.id)
            .with_for_update()
        )
    }
    if locked.get(target.id) is not None:
        raise Conflict(f"customer {target.id} was merged into {locked[target.id]}")
    if locked.get(other.id) is not None:
        raise Conflict(f"customer {other.id} was already merged into {locked[other.id]}")
    before = {"target": _merge_snapshot(session, target), "other": _merge_snapshot(session, other)}
    moved = {}
    for model in (Identity, Conversation, Message, Order, Activity, Action, LedgerEntry, HeroMoment):
        result = session.execute(update(model).where(model.customer_id == other.id).values(customer_id=target.id))
        moved[model.__tablename__] = result.rowcount
    other.merged_into_id = target.id
    other.merged_at = utcnow()
    if not target.name and other.name:
        target.name = other.name
    session.add(
        Activity(
            customer_id=target.id,
            actor_user_id=actor.id,
            kind="customer_merged",
            data={"merged_customer_id": other.id, "merged_name": other.name, "moved": moved},
        )
    )
    session.flush()
    record_audit(
        session, actor=actor, event="customer.merged", subject_type="customer", subject_id=other.id,
        customer_id=target.id, before=before,
        after={"merged_into_id": target.id, "target_name": target.name, "moved": moved},
    )  # fmt: skip
    session.expire(target)
    return get_customer(session, customer_id=target.id)


def _merge_snapshot(session: Session, customer: Customer) -> dict:
    identities = session.execute(select(Identity.kind, Identity.value).where(Identity.customer_id == customer.id))
    return {"id": customer.id, "name": customer.name,
            "identities": sorted(f"{kind.value}:{value}" for kind, value in identities)}  # fmt: skip


@dataclass
class TimelineEntry:
    kind: str  # "message" or "activity"
    at: datetime
    conversation_id: int | None
    item: Message | Activity


def customer_timeline(session: Session, *, customer: Customer, limit: int = 500) -> list[TimelineEntry]:
    """Every message and activity of the customer, across conversations and channels, oldest first."""
    messages = session.scalars(
        select(Message)
        .where(Message.customer_id == customer.id)
        .options(joinedload(Message.channel, innerjoin=True), joinedload(Message.author_user))
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    ).all()
    activities = session.scalars(
        select(Activity)
        .where(Activity.customer_id == customer.id)
        .options(joinedload(Activity.actor))
        .order_by(Activity.created_at.desc(), Activity.id.desc())
        .limit(limit)
    ).all()
    entries = [TimelineEntry("message", m.created_at, m.conversation_id, m) for m in messages]
    entries += [TimelineEntry("activity", a.created_at, a.conversation_id, a) for a in activities]
    entries.sort(key=lambda e: (e.at, 0 if e.kind == "activity" else 1, e.item.id))
    return entries[-limit:]


def primary_email(customer: Customer) -> str | None:
    return next((i.value for i in customer.identities if i.kind is IdentityKind.email), None)
