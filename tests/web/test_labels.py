"""People read labels, never the codes the system keeps (the API keeps the codes).

Every page that shows a status, a type, a reason, a channel, a role or a kind is rendered in
French and Danish, and in English for the codes that are no English word, and no code may be
read as a word of its visible text. Every code of those enums must have a label, so a new one
cannot reach a page unlabelled.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from cape.actions.history import record_activity
from cape.actions.service import REASONS
from cape.conversations import service as conversations_service
from cape.customers.orders import LOYALTY_TIERS, update_notes, upsert_order
from cape.customers.schemas import OrderIn
from cape.i18n import translations
from cape.kit.clock import utcnow
from cape.models import (
    Action,
    ActionStatus,
    ActionType,
    Activity,
    ChannelKind,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    FulfilmentStatus,
    Identity,
    IdentityKind,
    Message,
    MessageDirection,
    Order,
    Priority,
    Role,
    Team,
)
from cape.web.labels import LABELS, label
from tests.fixtures.factories import make_inbound

# Each enum a page shows, and the label kinds that must name every one of its codes.
ENUM_KINDS = {
    ActionType: ("action_type", "action_noun"),
    ActionStatus: ("action_status",),
    FulfilmentStatus: ("fulfilment_status",),
    ConversationStatus: ("conversation_status",),
    Priority: ("priority",),
    ChannelKind: ("channel",),
    IdentityKind: ("identity_kind",),
    Role: ("role", "role_plural", "role_name"),
    DeliveryStatus: ("delivery_status",),
}
CODES = sorted(
    {m.value for enum_class in ENUM_KINDS for m in enum_class}
    | set(REASONS)
    | set(LABELS["order_status"])
    | set(LABELS["over_authority"])
    | set(LABELS["authority_source"])
)
# In English a code like "open" or "email" is also the word its label uses; these are not words.
NOT_ENGLISH = {code for code in CODES if "_" in code} | {"api", "sms", "whatsapp", "reship"}
# History entries whose kind is no word either: a page must never fall back to printing one.
ACTIVITY_KINDS = {
    "conversation_opened", "linked_conversation_opened", "status_changed", "snooze_changed", "assigned",
    "team_changed", "priority_changed", "tags_changed", "cc_changed", "customer_merged", "delivery_failed",
    "delivery_retried", "identity_failing", "hero_moment", "action_executed", "action_requested",
    "action_approved", "action_declined", "action_done", "action_failed", "action_reversed",
}  # fmt: skip
# ...and those of a customer's own history (orders, notes), outside any conversation.
CUSTOMER_ACTIVITY_KINDS = {"order_placed", "order_status_changed", "customer_notes_changed"}


def test_every_code_of_every_enum_a_page_shows_has_a_label():
    missing = [
        f"{kind}:{member.value}"
        for enum_class, kinds in ENUM_KINDS.items()
        for kind in kinds
        for member in enum_class
        if member.value not in LABELS[kind]
    ]
    missing += [f"reason:{reason}" for reason in REASONS if reason not in LABELS["reason"]]
    missing += [f"loyalty_tier:{tier}" for tier in LOYALTY_TIERS if tier not in LABELS["loyalty_tier"]]
    assert not missing, f"add these to cape/web/labels.py LABELS: {missing}"


def test_a_label_is_translated_an_unknown_code_reads_as_itself_and_languages_have_names():
    french = translations("fr")

    def fr(kind, value):
        return label(french.gettext, kind, value, pgettext=french.pgettext, language="fr")

    assert fr("action_type", ActionType.store_credit) == "Avoir"
    assert fr("reason", "late_delivery") == "Livraison en retard"
    assert fr("reason", "the box was wet") == "the box was wet"  # free text, kept as typed
    # The same English word, translated for what it names: an order, a message.
    assert fr("order_status", "delivered") == "Livrée"
    assert fr("delivery_status", "delivered") != "Livrée"
    assert fr("order_status", "awaiting_pickup") == "awaiting_pickup"  # a shop's own status
    assert fr("language", "da") == "danois"
    assert label(str, "language", "pt-BR", language="da") == "portugisisk (Brasilien)"
    assert label(str, "language", "not a language", language="fr") == "not a language"
    assert label(str, "order_status", "shipped") == "Shipped"  # English, without a catalog


class _VisibleText(HTMLParser):
    """The text a person reads: no tags, no attributes, no scripts."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0  # depth inside a script or style

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        if self.skipping or tag in ("script", "style"):
            self.skipping += 1

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def _words_of_labels(language: str) -> set[str]:
    """The words this language's labels use: a code that is one of them ("chat", "normal") is no code."""
    catalog = translations(language)
    words = set()
    for kind in LABELS.values():
        for text in kind.values():
            translated = catalog.pgettext(*text) if isinstance(text, tuple) else catalog.gettext(text)
            words.update(re.findall(r"[\w-]+", translated))
    return words


def codes_read_in(text: str, language: str) -> list[str]:
    if language == "en":
        candidates = NOT_ENGLISH | {kind for kind in ACTIVITY_KINDS | CUSTOMER_ACTIVITY_KINDS if "_" in kind}
    else:
        candidates = set(CODES) | ACTIVITY_KINDS | CUSTOMER_ACTIVITY_KINDS
    candidates -= _words_of_labels(language)
    found = []
    for code in sorted(candidates):
        match = re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text)
        if match:
            found.append(f"{code!r} in …{text[max(0, match.start() - 40) : match.end() + 40]}…")
    return found


@pytest.fixture
def shop(db, client, alice_agent, bob_supervisor, carol_admin):
    """A customer on every channel, with every identity kind, orders, history of every kind and
    actions of every type, reason and status; returns the pages to read, by who reads them."""
    email = "lea.martin@example.org"
    first = make_inbound(db, email=email, phone="+4520202020", name="Léa Martin", subject="Bottes",
                         body="Bonjour", channel=ChannelKind.email)  # fmt: skip
    conversation_id, customer_id = first.conversation_id, first.customer_id
    for n, kind in enumerate(ChannelKind):  # one conversation per channel, in every status
        if kind is not ChannelKind.email:
            make_inbound(db, email=email, name="Léa Martin", subject=f"Sujet {n}", body="Salut", channel=kind)
    others = db.query(Conversation).filter(Conversation.customer_id == customer_id, Conversation.id != conversation_id)
    for other, status in zip(others.order_by(Conversation.id), [*ConversationStatus] * 2, strict=False):
        other.status = status
    db.add_all([
        Identity(customer_id=customer_id, kind=IdentityKind.chat_visitor, value="visiteur-81"),
        Identity(customer_id=customer_id, kind=IdentityKind.review_handle, value="@lea"),
        *(
            Order(customer_id=customer_id, number=f"NS-{n}", status=status, currency="USD", total_amount=200_00,
                  items=[], placed_at=utcnow())
            for n, status in enumerate(LABELS["order_status"], 100)
        ),
    ])  # fmt: skip
    customer = db.get(Customer, customer_id)
    customer.language = "da"
    shop_order = {"number": "NS-99", "customer_id": customer_id, "currency": "EUR", "total_amount": 89_00}
    upsert_order(db, data=OrderIn(**shop_order, status="in_transit"), actor=None)
    upsert_order(db, data=OrderIn(**shop_order, status="partially_refunded"), actor=carol_admin.user)
    update_notes(db, customer=customer, notes="Préfère être rappelée", actor=alice_agent.user)
    db.commit()

    conversation = conversations_service.get_conversation(db, conversation_id=conversation_id)
    team = Team(name="Retours")
    db.add(team)
    db.flush()
    agent = alice_agent.user
    for change in (
        {"assignee_id": agent.id}, {"assignee_id": bob_supervisor.user.id}, {"assignee_id": None},
        {"team_id": team.id}, {"team_id": None}, {"priority": Priority.urgent}, {"tags": ["bottes", "vip"]},
        {"status": ConversationStatus.pending},
        {"status": ConversationStatus.snoozed, "snoozed_until": utcnow() + timedelta(days=1)},
        {"snoozed_until": utcnow() + timedelta(days=2)},
        {"status": ConversationStatus.open},
    ):  # fmt: skip
        conversations_service.update_conversation(db, conversation=conversation, actor=agent, **change)
    conversations_service.set_cc(db, conversation=conversation, addresses=["paul@example.org"], actor=agent)
    replies = [conversations_service.add_reply(db, conversation=conversation, author=agent, body=f"Réponse {n}")
               for n in range(len(DeliveryStatus))]  # fmt: skip
    for reply, status in zip(replies, DeliveryStatus, strict=True):
        reply.delivery_status = status
    other_customer = make_inbound(db, email="lea.m@example.org", name="Léa M.").customer_id
    db.add_all([
        Activity(customer_id=customer_id, conversation_id=conversation_id, kind=kind, data=data)
        for kind, data in (
            ("delivery_failed", {"message_id": replies[0].id, "reason": "550 boîte pleine"}),
            ("delivery_retried", {"message_id": replies[0].id, "previous_error": "550 boîte pleine"}),
            ("identity_failing", {"value": email, "reason": "550 boîte pleine"}),
            ("linked_conversation_opened", {"new_conversation_id": conversation_id}),
            ("customer_merged", {"merged_customer_id": other_customer, "merged_name": "Léa M."}),
        )
    ])  # fmt: skip
    db.commit()

    def act(type_, amount, reason):
        return client.post(
            f"/api/v1/conversations/{conversation_id}/actions",
            json={"type": type_.value, "amount": amount, "currency": "USD", "reason": reason},
            headers=alice_agent.headers,
        ).json()["id"]

    reasons = iter(REASONS * 2)
    within = [act(type_, 5_00, next(reasons)) for type_ in ActionType]
    approved, declined, waiting = (act(ActionType.refund, 700_00, next(reasons)),
                                   act(ActionType.goodwill, 800_00, next(reasons)),
                                   act(ActionType.store_credit, 900_00, next(reasons)))  # fmt: skip
    client.post(f"/api/v1/actions/{approved}/approve", headers=bob_supervisor.headers)
    client.post(f"/api/v1/actions/{declined}/decline", json={"note": "trop"}, headers=bob_supervisor.headers)
    client.post(f"/api/v1/actions/{within[0]}/reverse", json={"reason": "erreur"}, headers=alice_agent.headers)
    client.post(f"/api/v1/conversations/{conversation_id}/hero-moments",
                json={"user_id": agent.id, "quote": "Merci Alice !"}, headers=bob_supervisor.headers)  # fmt: skip
    # The store's answers (a webhook store does this after commit): one confirmed, one refused.
    done, refused = db.get(Action, within[1]), db.get(Action, within[2])
    record_activity(db, action=done, actor=None, kind="action_done", reference="STORE-42")
    refused.status, refused.fulfilment_status = ActionStatus.failed, FulfilmentStatus.failed
    record_activity(db, action=refused, actor=None, kind="action_failed", error="refusé par la boutique")
    db.commit()
    assert db.get(Action, waiting).status is ActionStatus.pending_approval
    assert {a.kind for a in db.query(Activity).filter(Activity.conversation_id == conversation_id)} == ACTIVITY_KINDS
    assert db.query(Message).filter(Message.direction == MessageDirection.outbound).count() == len(DeliveryStatus)

    conversation_page = f"/conversations/{conversation_id}"
    inbox = ["/inbox?view=all&status=all", "/inbox/rows?view=all&status=all"]
    return [
        (alice_agent, [conversation_page, f"/customers/{customer_id}", "/heroes", "/admin/authority", *inbox]),
        (bob_supervisor, ["/approvals", "/approvals/rows", "/review"]),
        (carol_admin, ["/admin/authority", "/admin/channels", "/admin/settings", conversation_page]),
    ]


@pytest.mark.parametrize("language", ["fr", "da", "en"])
def test_pages_show_labels_and_never_a_code(language, client, db, shop):
    offenders = {}
    for actor, paths in shop:
        actor.user.language = language
        db.commit()
        for path in paths:
            response = client.get(path, headers={**actor.headers, "Accept": "text/html"})
            assert response.status_code in (200, 403), (path, response.status_code)
            found = codes_read_in(visible_text(response.text), language)
            if found:
                offenders[f"{actor.user.name} {path}"] = found
    assert not offenders, f"codes shown to a {language} reader: {offenders}"
