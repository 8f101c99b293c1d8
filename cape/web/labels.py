"""What people read for the codes the system keeps: statuses, reasons, kinds (the API keeps the codes)."""

from __future__ import annotations

import enum
from collections.abc import Callable

from cape.i18n.terms import N_

LABELS: dict[str, dict[str, str]] = {
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
}


def label(gettext: Callable[[str], str], kind: str, value: str | enum.Enum | None) -> str:
    """The translated label of a code; an unknown code reads as itself (never an error on a page)."""
    if value is None:
        return ""
    code = value.value if isinstance(value, enum.Enum) else str(value)
    text = LABELS.get(kind, {}).get(code)
    return gettext(text) if text else code
