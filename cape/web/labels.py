"""What people read for the codes the system keeps: statuses, reasons, kinds (the API keeps the codes)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from babel import Locale, UnknownLocaleError

from cape.i18n.terms import N_


class Term(NamedTuple):
    """A label whose English word means something else elsewhere, translated with its context."""

    context: str
    message: str


def pgettext(context: str, message: str) -> Term:
    """Marks a label with its context, so Babel extracts both (``Delivered`` an order, not a message)."""
    return Term(context, message)


LABELS: dict[str, dict[str, str | Term]] = {
    "role": {"agent": N_("agent"), "supervisor": N_("supervisor"), "admin": N_("admin")},
    "role_plural": {"agent": N_("agents"), "supervisor": N_("supervisors"), "admin": N_("admins")},
    "delivery_status": {
        "queued": N_("Sending…"),
        "sent": N_("Sent"),
        "delivered": N_("Delivered"),
        "failed": N_("Not delivered"),
        "undeliverable": N_("Not sent"),
    },
    # Why a reply cannot be sent (cape.channels.outbound.Unreachable codes).
    "unreachable": {
        "no_default_outbound": N_("No mailbox is set to answer contact-form and API conversations by email."),
        "no_relay": N_("This mailbox has no server to send mail through."),
        "no_email_address": N_("This customer has no email address."),
        "no_webhook": N_("The integration has not registered a webhook for replies."),
        "no_sender": N_("No channel can carry replies in this conversation."),
    },
    # A role as a name on its own (a heading, the top bar); "role" above is the word in a sentence.
    "role_name": {"agent": N_("Agent"), "supervisor": N_("Supervisor"), "admin": N_("Admin")},
    # Actions (cape.models.ActionType): the name in a list or a table...
    "action_type": {
        "refund": N_("Refund"),
        "return": N_("Return"),
        "store_credit": N_("Store credit"),
        "discount_code": N_("Discount code"),
        "reship": N_("Re-shipment"),
        "service": N_("Free service"),
        "goodwill": N_("Goodwill gesture"),
    },
    # ...and in a sentence of the history ("Amélie asked for approval of store credit of €400.00").
    "action_noun": {
        "refund": N_("a refund"),
        "return": N_("a return"),
        "store_credit": N_("store credit"),
        "discount_code": N_("a discount code"),
        "reship": N_("a re-shipment"),
        "service": N_("a free service"),
        "goodwill": N_("a goodwill gesture"),
    },
    # The reasons offered for an action (cape.actions.service.REASONS); any other reason reads as typed.
    "reason": {
        "damaged": N_("Damaged"),
        "late_delivery": N_("Late delivery"),
        "lost_in_transit": N_("Lost in transit"),
        "wrong_item": N_("Wrong item"),
        "not_as_described": N_("Not as described"),
        "defective": N_("Defective"),
        "service_failure": N_("Service failure"),
        "changed_mind": N_("Changed their mind"),
        "loyalty": N_("Loyal customer"),
        "other": N_("Other"),
        "no_reason_given": N_("No reason given"),  # cape.actions.service.NO_REASON_GIVEN
    },
    "action_status": {
        "pending_approval": N_("Waiting for approval"),
        "executed": N_("Done"),
        "declined": N_("Declined"),
        "failed": N_("Failed"),
        "reversed": N_("Reversed"),
    },
    # How far the store (or the ledger) has carried out an executed action.
    "fulfilment_status": {
        "queued": N_("Waiting for the store"),
        "done": N_("Confirmed by the store"),
        "failed": N_("Not carried out by the store"),
    },
    # Why a request is above its requester's authority (cape.actions.policy.over_authority).
    "over_authority": {
        "currency": N_("another currency"),
        "per_action": N_("per-action limit"),
        "per_customer_30d": N_("customer's 30-day limit"),
        "daily_budget": N_("daily budget"),
    },
    # Where a person's authority comes from (cape.actions.policy.Authority.source).
    "authority_source": {
        "user": N_("Own limits"),
        "role": N_("Their role's limits"),
        "default": N_("Built-in limits of their role"),
    },
    # Order statuses as shops send them; a status not listed here reads as the shop wrote it.
    "order_status": {
        "placed": pgettext("order status", "Placed"),
        "pending": pgettext("order status", "Pending"),
        "paid": pgettext("order status", "Paid"),
        "processing": pgettext("order status", "Processing"),
        "on_hold": pgettext("order status", "On hold"),
        "shipped": pgettext("order status", "Shipped"),
        "partially_shipped": pgettext("order status", "Partly shipped"),
        "in_transit": pgettext("order status", "In transit"),
        "delivered": pgettext("order status", "Delivered"),
        "completed": pgettext("order status", "Completed"),
        "returned": pgettext("order status", "Returned"),
        "partially_refunded": pgettext("order status", "Partly refunded"),
        "refunded": pgettext("order status", "Refunded"),
        "cancelled": pgettext("order status", "Cancelled"),
        "canceled": pgettext("order status", "Cancelled"),
        "lost": pgettext("order status", "Lost"),
        "failed": pgettext("order status", "Failed"),
    },
    # Conversation statuses and priorities read inside sentences too ("marked the conversation as resolved").
    "conversation_status": {
        "open": N_("open"),
        "pending": N_("pending"),
        "snoozed": N_("snoozed"),
        "resolved": N_("resolved"),
    },
    "priority": {"low": N_("low"), "normal": N_("normal"), "high": N_("high"), "urgent": N_("urgent")},
    "channel": {
        "web": N_("Contact form"),
        "api": N_("API"),
        "email": N_("Email"),
        "chat": N_("Chat"),
        "sms": N_("SMS"),
        "whatsapp": N_("WhatsApp"),
        "call": N_("Phone call"),
        "review": N_("Online review"),
    },
    # How long a customer has waited against the thresholds an admin sets (cape.workspace.service).
    "waiting_level": {"fresh": N_("recent"), "warn": N_("waiting a while"), "late": N_("late")},
    "identity_kind": {
        "email": N_("Email"),
        "phone": N_("Phone"),
        "chat_visitor": N_("Chat visitor"),
        "review_handle": N_("Reviewer"),
    },
}


@lru_cache(maxsize=256)
def language_name(code: str, viewer: str) -> str:
    """A language's name in the viewer's language, from Babel ("danois" for a French viewer)."""
    try:
        name = Locale.parse(code.replace("-", "_")).get_display_name(viewer)
    except (ValueError, TypeError, UnknownLocaleError):
        return code
    return name or code


def label(
    gettext: Callable[[str], str],
    kind: str,
    value: str | enum.Enum | None,
    *,
    pgettext: Callable[[str, str], str] | None = None,
    language: str = "en",
) -> str:
    """The translated label of a code; an unknown code reads as itself (never an error on a page).

    ``kind`` "language" names a language code in the viewer's ``language``.
    """
    if value is None:
        return ""
    code = value.value if isinstance(value, enum.Enum) else str(value)
    if kind == "language":
        return language_name(code, language) if code else ""
    text = LABELS.get(kind, {}).get(code)
    if text is None:
        return code
    if isinstance(text, Term):
        return pgettext(text.context, text.message) if pgettext else text.message
    return gettext(text)
