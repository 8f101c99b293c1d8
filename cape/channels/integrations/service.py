"""The API channel's reply webhook: where an integration wants agents' replies, signed with its secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.orm import Session

from cape.audit.service import record_audit
from cape.channels.base import builtin_channel
from cape.kit.crypto import decrypt_secrets, encrypt_secrets
from cape.kit.errors import InvalidInput
from cape.models import Channel, ChannelKind, Conversation, Customer, Message, User


@dataclass(frozen=True)
class ReplyWebhook:
    url: str
    secret: str


def api_channel(session: Session) -> Channel:
    return builtin_channel(session, kind=ChannelKind.api)


def reply_webhook(channel: Channel, app_secret: str) -> ReplyWebhook | None:
    """The webhook registered for the API channel's replies, if any."""
    url = (channel.settings or {}).get("reply_webhook_url")
    if not url:
        return None
    secret = decrypt_secrets(app_secret, channel.secrets_encrypted).get("reply_webhook_secret", "")
    return ReplyWebhook(url, secret)


def set_reply_webhook(
    session: Session,
    *,
    url: str | None,
    app_secret: str,
    secret: str | None = None,
    actor: User | None = None,
    reason: str | None = None,
) -> str | None:
    """Register (or, with no url, remove) the webhook for replies in API conversations.

    Returns the signing secret: the one given, or a new one when none is given.
    """
    channel = api_channel(session)
    before = {"reply_webhook_url": (channel.settings or {}).get("reply_webhook_url")}
    if not url:
        channel.settings = {k: v for k, v in (channel.settings or {}).items() if k != "reply_webhook_url"}
        channel.secrets_encrypted = None
        secret = None
    else:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or len(url) > 2000:
            raise InvalidInput("url", "an http or https URL is required")
        if secret is not None and len(secret) < 16:
            raise InvalidInput("secret", "at least 16 characters")
        secret = secret or secrets.token_urlsafe(32)
        channel.settings = {**(channel.settings or {}), "reply_webhook_url": url}
        channel.secrets_encrypted = encrypt_secrets(app_secret, {"reply_webhook_secret": secret})
    record_audit(
        session, actor=actor, event="channel.reply_webhook_set", subject_type="channel", subject_id=channel.id,
        reason=reason, before=before, after={"reply_webhook_url": url or None},
    )  # fmt: skip
    session.flush()
    return secret


def reply_payload(
    message: Message, conversation: Conversation, customer: Customer, emails: list[str]
) -> dict[str, Any]:
    """What the integration receives for an agent's reply."""
    return {
        "event": "message.outbound",
        "message": {
            "id": message.id,
            "conversation_id": conversation.id,
            "body": message.body_text,
            "author": {"id": message.author_user.id, "name": message.author_user.name} if message.author_user else None,
            "created_at": message.created_at.isoformat(),
        },
        "conversation": {"id": conversation.id, "subject": conversation.subject},
        "customer": {"id": customer.id, "name": customer.name, "emails": emails},
    }
