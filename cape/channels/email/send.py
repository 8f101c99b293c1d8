"""Outbound email: agents' replies as proper, threaded mail, sent through an SMTP relay."""

from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, selectinload

from cape.channels.email.parse import split_quoted
from cape.channels.email.service import (
    UNKNOWN_SENDER,
    Security,
    SmtpConfig,
    default_relay,
    mark_identity_failing,
    reply_address,
    smtp_config,
)
from cape.channels.outbound import record_attempt
from cape.config import Settings
from cape.kit.clock import utcnow
from cape.kit.html import text_to_html
from cape.kit.tls import client_context, describe_tls_error
from cape.models import (
    Channel,
    ChannelKind,
    Conversation,
    Customer,
    DeliveryStatus,
    Identity,
    IdentityKind,
    Message,
    MessageDirection,
)

MAX_ATTEMPTS = 6
_QUOTE_LINES = 20
_REFERENCES = 20
_THREAD_MESSAGES = 50
_SYNTHETIC_ID = "@message-id.invalid>"


class PermanentFailure(Exception):
    """Delivery that retrying cannot fix (refused recipient, no relay, no address)."""

    def __init__(self, reason: str, *, refused_address: str | None = None):
        super().__init__(reason)
        self.refused_address = refused_address


class TlsFailure(smtplib.SMTPException):
    """TLS with the relay was not offered or failed: nothing was sent, not even the password.

    Retried like any temporary failure: the relay may be fixed, or the attacker gone.
    """


@dataclass
class Outgoing:
    message_id: int
    email: EmailMessage
    sender: str
    recipients: list[str]
    relay: SmtpConfig


def new_message_id(channel: Channel) -> str:
    """A Message-ID in the channel's domain; stored as the message's external_id before sending."""
    domain = (channel.address or "cape.invalid").rpartition("@")[2]
    return make_msgid(idstring="cape", domain=domain)


def prepare_reply(session: Session, *, message: Message) -> None:
    """Give an outbound reply its Message-ID, so customer replies thread back to it."""
    if message.external_id is None:
        message.external_id = new_message_id(message.channel)


def build_outgoing(session: Session, *, message_id: int, settings: Settings) -> Outgoing | None:
    """The email for an outbound message, or None when it needs no sending (already sent).

    It goes to the conversation's customer and the participants the agent kept in copy, and
    nobody else: the quoted history is theirs.
    """
    message = session.scalar(
        select(Message)
        .where(Message.id == message_id)
        .options(selectinload(Message.channel), selectinload(Message.author_user))
    )
    if message is None or message.delivery_status is not DeliveryStatus.queued:
        return None
    channel = message.channel
    conversation = session.get_one(Conversation, message.conversation_id)
    customer = session.get_one(Customer, conversation.customer_id)
    thread = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.id != message.id)
            .where(Message.direction != MessageDirection.note)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(_THREAD_MESSAGES)
        )
    )[::-1]
    last_inbound = next((m for m in reversed(thread) if m.direction is MessageDirection.inbound), None)
    recipient = customer_address(session, conversation=conversation)
    if recipient is None:
        raise PermanentFailure("the customer has no email address")
    cc = [a for a in message.meta.get("cc", []) if a != recipient]
    relay = smtp_config(channel, settings.resolved_secret_key) or default_relay(settings)
    if relay is None:
        raise PermanentFailure("no SMTP relay is configured for this channel")

    email = EmailMessage()
    email["From"] = formataddr((channel.name if channel.name != channel.address else "", channel.address or ""))
    email["To"] = formataddr((customer.name or "", recipient))
    if cc:
        email["Cc"] = ", ".join(cc)
    email["Reply-To"] = reply_address(channel, conversation.id, settings.resolved_secret_key)
    email["Subject"] = _reply_subject(conversation.subject)
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = message.external_id or new_message_id(channel)
    references = [m.external_id for m in thread if m.external_id and not m.external_id.endswith(_SYNTHETIC_ID)]
    if last_inbound is not None and last_inbound.external_id and not last_inbound.external_id.endswith(_SYNTHETIC_ID):
        email["In-Reply-To"] = last_inbound.external_id
    if references:
        email["References"] = " ".join(references[-_REFERENCES:])
    email["X-Cape-Conversation"] = str(conversation.id)

    signature = (message.author_user.signature or "").strip() if message.author_user else ""
    quote = _quote(last_inbound, customer)
    text = message.body_text + (f"\n\n-- \n{signature}" if signature else "") + (f"\n\n{quote[0]}" if quote else "")
    email.set_content(text)
    email.add_alternative(_html(message.body_text, signature, quote), subtype="html")
    return Outgoing(message.id, email, channel.address or "", [recipient, *cc], relay)


def customer_address(session: Session, *, conversation: Conversation) -> str | None:
    """Where the customer is written to: the address they last wrote from in this conversation,
    else the one they asked replies to go to here, else their first working email address."""
    last_from = session.scalar(
        select(Message.meta)
        .where(
            Message.conversation_id == conversation.id,
            Message.customer_id == conversation.customer_id,
            Message.direction == MessageDirection.inbound,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    address = str((last_from or {}).get("email_from") or "")
    if "@" in address and address != UNKNOWN_SENDER:
        return address
    if conversation.reply_to:  # asked for in this conversation (a chat continued by email)
        return conversation.reply_to
    return session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == conversation.customer_id, Identity.kind == IdentityKind.email)
        .order_by(Identity.failing_reason.is_not(None), Identity.id)
        .limit(1)
    )


def _reply_subject(subject: str | None) -> str:
    subject = (subject or "").strip()
    if not subject:
        return "Re: your message"
    return subject if subject.lower().startswith(("re:", "aw:", "sv:")) else f"Re: {subject}"


def _quote(last_inbound: Message | None, customer: Customer) -> tuple[str, str] | None:
    """The customer's last message, without its own quoted history, shortened: (text, html)."""
    if last_inbound is None or not last_inbound.body_text.strip():
        return None
    visible, _ = split_quoted(last_inbound.body_text)
    lines = visible.strip().splitlines()
    if len(lines) > _QUOTE_LINES:
        lines = [*lines[:_QUOTE_LINES], "[…]"]
    who = customer.name or last_inbound.meta.get("email_from") or "you"
    intro = f"On {format_datetime(last_inbound.created_at)}, {who} wrote:"
    text = intro + "\n" + "\n".join(f"> {line}" if line else ">" for line in lines)
    quoted_html = f"<p>{html.escape(intro)}</p><blockquote>{text_to_html(chr(10).join(lines))}</blockquote>"
    return text, quoted_html


def _html(body: str, signature: str, quote: tuple[str, str] | None) -> str:
    parts = [f"<div>{text_to_html(body)}</div>"]
    if signature:
        parts.append(f'<div class="signature">-- <br>{text_to_html(signature)}</div>')
    if quote:
        parts.append(quote[1])
    return "<!doctype html><html><body>" + "".join(parts) + "</body></html>"


def stalled_sends(session: Session, *, older_than: timedelta) -> list[int]:
    """Email replies still queued long after every retry should have run (a worker died mid-send)."""
    return list(
        session.scalars(
            select(Message.id)
            .join(Channel, Channel.id == Message.channel_id)
            .where(
                Channel.kind == ChannelKind.email,
                Message.direction == MessageDirection.outbound,
                # Written into the statement, so that SQLite may read the partial index of
                # queued messages (ix_messages_queued) rather than every message.
                Message.delivery_status == bindparam("queued", DeliveryStatus.queued, literal_execute=True),
                Message.created_at < utcnow() - older_than,
            )
            .order_by(Message.created_at, Message.id)
            .limit(500)
        )
    )


def deliver(outgoing: Outgoing, *, timeout: float = 30) -> dict[str, tuple[int, bytes]]:
    """Hand the email to the relay; SMTP 5xx answers raise PermanentFailure, the rest retry.

    With TLS (implicit or STARTTLS, the default) the relay's certificate and host name are
    verified unless explicitly turned off, and nothing (no login, no message) is sent before
    TLS is up: a relay that stops offering STARTTLS gets nothing. Returns the recipients the
    relay refused while accepting the others (copies, usually).
    """
    relay = outgoing.relay
    try:
        client = _connect(relay, timeout=timeout)
        with client:
            client.ehlo()
            if relay.security is Security.starttls:
                _starttls(client, relay)
            if relay.user:
                client.login(relay.user, relay.password)
            return client.send_message(outgoing.email, from_addr=outgoing.sender, to_addrs=outgoing.recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(500 <= code < 600 for code in codes):
            reason = f"recipient refused: {_describe(exc.recipients)}"
            customer = outgoing.recipients[0]
            refused = customer if customer in exc.recipients else None
            raise PermanentFailure(reason, refused_address=refused) from exc
        raise
    except smtplib.SMTPResponseException as exc:
        if 500 <= exc.smtp_code < 600 and not isinstance(exc, smtplib.SMTPAuthenticationError):
            refused = outgoing.recipients[0] if isinstance(exc, smtplib.SMTPDataError) else None
            raise PermanentFailure(f"{exc.smtp_code} {_text(exc.smtp_error)}", refused_address=refused) from exc
        raise


def _connect(relay: SmtpConfig, *, timeout: float) -> smtplib.SMTP:
    if relay.security is not Security.tls:
        return smtplib.SMTP(relay.host, relay.port, timeout=timeout)
    context = client_context(ca_file=relay.ca_file, verify=relay.verify_tls)
    try:
        return smtplib.SMTP_SSL(relay.host, relay.port, timeout=timeout, context=context)
    except ssl.SSLError as exc:
        raise TlsFailure(f"TLS with {relay.host}:{relay.port} failed, nothing sent: {describe_tls_error(exc)}") from exc


def _starttls(client: smtplib.SMTP, relay: SmtpConfig) -> None:
    """Upgrade to TLS, or stop: a relay that no longer offers it may have someone in the middle."""
    where = f"{relay.host}:{relay.port}"
    if not client.has_extn("starttls"):
        raise TlsFailure(f"{where} does not offer STARTTLS, which this relay requires; nothing sent")
    context = client_context(ca_file=relay.ca_file, verify=relay.verify_tls)
    try:
        client.starttls(context=context)
    except smtplib.SMTPResponseException as exc:
        raise TlsFailure(f"{where} refused STARTTLS ({exc.smtp_code} {_text(exc.smtp_error)}); nothing sent") from exc
    except ssl.SSLError as exc:
        raise TlsFailure(f"STARTTLS with {where} failed, nothing sent: {describe_tls_error(exc)}") from exc
    client.ehlo()


def _describe(recipients: dict) -> str:
    return "; ".join(f"{address}: {code} {_text(text)}" for address, (code, text) in recipients.items())


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def record_delivery(
    session: Session,
    *,
    message_id: int,
    error: str | None = None,
    final: bool = False,
    attempt: int = 1,
    refused_address: str | None = None,
) -> None:
    """Write the outcome of a delivery attempt; an address the relay refused for good is marked failing."""
    record_attempt(session, message_id=message_id, error=error, final=final, attempt=attempt, max_attempts=MAX_ATTEMPTS)
    if error is not None and final and refused_address:
        mark_identity_failing(session, address=refused_address, reason=error)
