"""Demo data: a small shop's support desk in English, French and Danish. Safe to run again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cape.actions.authority import set_authority
from cape.actions.service import take_action
from cape.auth.service import create_user
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.conversations.service import add_reply, get_conversation, ingest, update_conversation
from cape.insights.heroes import record_hero_moment
from cape.kit.clock import utcnow
from cape.models import (
    ActionType,
    AuthorityPolicy,
    ChannelKind,
    ConversationStatus,
    Customer,
    Identity,
    IdentityKind,
    Order,
    Priority,
    Role,
    User,
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    language: str
    password: str


DEMO_USERS = (
    DemoUser("admin@example.com", "Ada Admin", Role.admin, "en", "cape-admin"),
    DemoUser("sam@example.com", "Sam Supervisor", Role.supervisor, "en", "cape-supervisor"),
    DemoUser("amelie@example.com", "Amélie Agent", Role.agent, "fr", "cape-agent"),
    DemoUser("mads@example.com", "Mads Agent", Role.agent, "da", "cape-agent"),
)

# (external id, name, email, phone, subject, body, language)
_INBOUND = (
    ("demo-1", "Olivia Bennett", "olivia.bennett@example.org", "+14155550101",
     "Snow tyres", "Hi, I'd like to return the four snow tyres I bought last winter. "
     "They were never fitted. Is that possible?", "en"),
    ("demo-2", "Camille Laurent", "camille.laurent@example.fr", None,
     "Commande en retard", "Bonjour, ma commande n'est toujours pas arrivée après deux semaines. "
     "Pouvez-vous vérifier où elle en est ? Merci.", "fr"),
    ("demo-3", "Freja Nielsen", "freja.nielsen@example.dk", "+4520123456",
     "Forkert størrelse", "Hej, jeg har fået jakken i den forkerte størrelse. "
     "Kan jeg bytte den til en medium?", "da"),
    ("demo-4", "Olivia Bennett", "olivia.bennett@example.org", None,
     "Gift card balance", "Also, could you tell me the balance left on my gift card?", "en"),
    ("demo-5", "Jean Dupont", "jean.dupont@example.fr", None,
     "Retouche gratuite ?", "Le pantalon acheté samedi est trop long. Proposez-vous des retouches ?", "fr"),
    ("demo-6", "Lars Hansen", "lars.hansen@example.dk", None,
     "Tak for hjælpen", "Tusind tak til Mads for den hurtige hjælp i går!", "da"),
)  # fmt: skip

_ORDERS = (
    ("olivia.bennett@example.org", "NS-10001", 4 * 12900, "USD",
     [{"sku": "TYRE-W-205", "name": "Winter tyre 205/55 R16", "quantity": 4, "unit_amount": 12900}], 300),
    ("camille.laurent@example.fr", "NS-10002", 8900, "EUR",
     [{"sku": "SCARF-WOOL", "name": "Écharpe en laine", "quantity": 1, "unit_amount": 8900}], 15),
    ("freja.nielsen@example.dk", "NS-10003", 149900, "DKK",
     [{"sku": "JACKET-S", "name": "Vinterjakke, small", "quantity": 1, "unit_amount": 149900}], 6),
    ("jean.dupont@example.fr", "NS-10004", 6900, "EUR",
     [{"sku": "TROUSERS-42", "name": "Pantalon chino 42", "quantity": 1, "unit_amount": 6900}], 3),
)  # fmt: skip


def seed_demo(session: Session) -> dict[str, User]:
    """Create the demo users, customers, orders and conversations that are not there yet."""
    users = {}
    for demo in DEMO_USERS:
        user = session.scalar(select(User).where(User.email == demo.email))
        if user is None:
            user = create_user(
                session, email=demo.email, name=demo.name, role=demo.role,
                password=demo.password, language=demo.language, reason="demo data",
            )  # fmt: skip
        users[demo.email] = user
    session.commit()

    web = builtin_channel(session, ChannelKind.web)
    session.commit()
    created = {}
    for external_id, name, email, phone, subject, body, language in _INBOUND:
        result = ingest(
            session,
            inbound=InboundMessage(
                channel=web,
                sender=Sender(email=email, phone=phone, name=name),
                subject=subject,
                body_text=body,
                external_id=external_id,
                raw=f"demo message {external_id}".encode(),
                raw_content_type="text/plain",
            ),
        )
        created[external_id] = result
        if result.created:
            session.get_one(Customer, result.customer_id).language = language
            conversation = get_conversation(session, result.conversation_id, with_messages=False)
            conversation.language = language
    session.commit()

    now = utcnow()
    for email, number, total, currency, items, days_ago in _ORDERS:
        if session.scalar(select(Order.id).where(Order.number == number)) is None:
            customer_id = session.scalar(
                select(Identity.customer_id).where(Identity.kind == IdentityKind.email, Identity.value == email)
            )
            session.add(
                Order(
                    customer_id=customer_id, number=number, total_amount=total, currency=currency,
                    items=items, placed_at=now - timedelta(days=days_ago), status="delivered",
                )
            )  # fmt: skip
    session.commit()

    # A little history, only the first time.
    first = created["demo-3"]
    if first.created:
        mads = users["mads@example.com"]
        conversation = get_conversation(session, first.conversation_id, with_messages=False)
        update_conversation(session, conversation=conversation, actor=mads, assignee_id=mads.id,
                            priority=Priority.high, tags=["exchange"])  # fmt: skip
        add_reply(session, conversation=conversation, author=mads, internal=True,
                  body="Medium is in stock in Aarhus; I will send it today.")  # fmt: skip
    thanks = created["demo-6"]
    if thanks.created:
        mads = users["mads@example.com"]
        conversation = get_conversation(session, thanks.conversation_id, with_messages=False)
        add_reply(session, conversation=conversation, author=mads, body="Selv tak, Lars! God dag.")
        update_conversation(session, conversation=conversation, actor=mads, status=ConversationStatus.resolved)
        record_hero_moment(session, conversation=conversation, user=mads, source="customer_message",
                           quote="Tusind tak til Mads for den hurtige hjælp i går!")  # fmt: skip
    session.commit()
    _seed_actions(session, users, created)
    return users


def _seed_actions(session: Session, users: dict[str, User], created: dict) -> None:
    """Agents' authority in the currency they sell in, and one request waiting for Sam."""
    admin, amelie, mads = users["admin@example.com"], users["amelie@example.com"], users["mads@example.com"]
    for agent, currency, scale in ((amelie, "EUR", 1), (mads, "DKK", 7)):
        if session.scalar(select(AuthorityPolicy.id).where(AuthorityPolicy.user_id == agent.id)) is None:
            set_authority(
                session, actor=admin, user=agent, currency=currency,
                per_action=dict.fromkeys((t.value for t in ActionType), 300_00 * scale),
                per_customer_30d=600_00 * scale, daily_budget=1_500_00 * scale,
            )  # fmt: skip
    late = created["demo-2"]
    if late.created:
        conversation = get_conversation(session, late.conversation_id, with_messages=False)
        take_action(
            session, conversation=conversation, actor=amelie, action_type=ActionType.store_credit,
            amount=400_00, currency="EUR", reason="late_delivery",
            note="Deux semaines de retard, cliente fidèle depuis 2019",
        )  # fmt: skip
    session.commit()
