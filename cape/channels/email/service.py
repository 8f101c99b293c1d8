"""Email channels: configuring mailboxes, and receiving a message from IMAP or SMTP alike."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cape import events
from cape.audit.service import change_event, record_audit
from cape.channels.base import InboundAttachment, InboundMessage, Sender
from cape.channels.email.parse import ParsedEmail, parse_email
from cape.config import Settings
from cape.conversations.service import IngestResult, ingest
from cape.kit.crypto import decrypt_secrets, encrypt_secrets, sign
from cape.kit.errors import Conflict, InvalidInput, NotFound
from cape.kit.tls import client_context
from cape.kit.unique import flush_or_conflict
from cape.models import (
    Activity,
    Attachment,
    Channel,
    ChannelKind,
    DeliveryStatus,
    Identity,
    IdentityKind,
    Message,
    MessageDirection,
    User,
)

log = logging.getLogger(__name__)

UNKNOWN_SENDER = "unknown-sender@unknown.invalid"
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_TOKEN = re.compile(r"^c(\d+)-([a-z2-7]{10})$")


class Security(StrEnum):
    """How the connection to a mail server is protected."""

    tls = "tls"  # TLS from the first byte (IMAP 993, SMTP 465)
    starttls = "starttls"  # upgraded at once; refused, before any login, when the server does not offer it
    none = "none"  # plain text: only on a network nobody else can reach


def _security(*, ssl: bool, starttls: bool) -> Security:
    return Security.tls if ssl else Security.starttls if starttls else Security.none


def security_flags(security: Security) -> dict[str, bool]:
    """The stored form of a security choice: ``ssl`` and ``starttls`` of ImapConfig and SmtpConfig."""
    return {"ssl": security is Security.tls, "starttls": security is Security.starttls}


@dataclass
class ImapConfig:
    host: str
    user: str
    password: str
    port: int = 993
    ssl: bool = True  # implicit TLS; else STARTTLS when ``starttls``, else plain
    folder: str = "INBOX"
    # Where imported mail is moved; empty: it stays in the folder, marked \Seen.
    processed_folder: str = ""
    starttls: bool = False
    # Trust only this CA (a private server); empty: the system's CAs.
    ca_file: str = ""
    # Off only by an explicit choice, which is warned about on the channel page and at start.
    verify_tls: bool = True

    @property
    def security(self) -> Security:
        return _security(ssl=self.ssl, starttls=self.starttls)


@dataclass
class SmtpConfig:
    host: str
    port: int = 587
    user: str = ""
    password: str = ""
    starttls: bool = True  # required: a relay that does not offer it gets nothing, not even the password
    ssl: bool = False  # implicit TLS (port 465); wins over ``starttls``
    ca_file: str = ""
    verify_tls: bool = True

    @property
    def security(self) -> Security:
        return _security(ssl=self.ssl, starttls=self.starttls)


@dataclass(frozen=True)
class TransportWarning:
    """A mail connection someone in the middle could read: sent in clear, or to an unverified server."""

    protocol: str  # "IMAP" or "SMTP"
    host: str
    port: int
    unencrypted: bool  # else: encrypted, but the server's certificate is not verified
    default_relay: bool = False


def _transport_warning(protocol: str, config: ImapConfig | SmtpConfig, **extra) -> TransportWarning | None:
    if config.security is Security.none:
        return TransportWarning(protocol, config.host, config.port, unencrypted=True, **extra)
    if not config.verify_tls:
        return TransportWarning(protocol, config.host, config.port, unencrypted=False, **extra)
    return None


def _checked_ca_file(field: str, config: ImapConfig | SmtpConfig) -> str:
    """The CA file as an absolute path, once it is known to be readable and to be used at all."""
    if not config.ca_file:
        return ""
    if config.security is Security.none or not config.verify_tls:
        raise InvalidInput(f"{field}_ca_file", "a CA file is only used with TLS and verified certificates")
    path = str(Path(config.ca_file).expanduser().resolve())
    try:
        client_context(ca_file=path)
    except OSError as exc:
        raise InvalidInput(f"{field}_ca_file", str(exc)) from None
    return path


def channel_key(address: str) -> str:
    return f"email:{address}"


def normalize_address(address: str) -> str:
    address = address.strip().lower()
    if not _ADDRESS.match(address) or len(address) > 320:
        raise InvalidInput("address", "not an email address")
    return address


def create_email_channel(
    session: Session,
    *,
    address: str,
    app_secret: str,
    name: str | None = None,
    imap: ImapConfig | None = None,
    smtp: SmtpConfig | None = None,
    actor: User | None = None,
    reason: str | None = None,
) -> Channel:
    """A new email channel; credentials are encrypted with the app secret, never stored in clear.

    Audited (``actor`` None: the command line or Cape itself), without the credentials.
    """
    address = normalize_address(address)
    if session.scalar(select(Channel.id).where(Channel.key == channel_key(address))) is not None:
        raise Conflict(f"an email channel for {address} already exists")
    settings: dict = {}
    secrets: dict[str, str] = {}
    if imap is not None:
        settings["imap"] = {**asdict(imap), "ca_file": _checked_ca_file("imap", imap)}
        secrets["imap_password"] = settings["imap"].pop("password")
    if smtp is not None:
        settings["smtp"] = {**asdict(smtp), "ca_file": _checked_ca_file("smtp", smtp)}
        secrets["smtp_password"] = settings["smtp"].pop("password")
    channel = Channel(
        key=channel_key(address),
        kind=ChannelKind.email,
        name=name or address,
        address=address,
        settings=settings,
        secrets_encrypted=encrypt_secrets(app_secret, secrets) if secrets else None,
    )
    session.add(channel)
    flush_or_conflict(session, f"an email channel for {address} already exists")
    record_audit(session, actor=actor, event="channel.created", subject_type="channel", subject_id=channel.id,
                 reason=reason, after=channel_snapshot(channel, credentials=sorted(secrets)))  # fmt: skip
    return channel


def update_email_channel(
    session: Session, *, channel: Channel, actor: User | None, name: str | None = None, is_active: bool | None = None
) -> Channel:
    """Rename a channel, or stop (and resume) taking mail in through it. Audited.

    A deactivated mailbox is no longer polled and its address no longer takes mail from the
    SMTP listener; its conversations stay, and replies in them still go out.
    """
    before = channel_snapshot(channel)
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("name", "1 to 200 characters")
        channel.name = name
    if is_active is not None:
        channel.is_active = is_active
    session.flush()
    after = channel_snapshot(channel)
    if after != before:
        record_audit(session, actor=actor, event=change_event("channel", before, after), subject_type="channel",
                     subject_id=channel.id, before=before, after=after)  # fmt: skip
    return channel


def channel_snapshot(channel: Channel, *, credentials: list[str] | None = None) -> dict:
    """What the audit log keeps of a channel: its settings, never its credentials (only which are set)."""
    snapshot = {
        "key": channel.key, "kind": channel.kind.value, "name": channel.name, "address": channel.address,
        "is_active": channel.is_active, "settings": channel.settings,
    }  # fmt: skip
    if credentials is not None:
        snapshot["credentials"] = credentials
    return snapshot


def get_email_channel(session: Session, *, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None or channel.kind is not ChannelKind.email:
        raise NotFound(f"email channel {channel_id} not found")
    return channel


def list_email_channels(
    session: Session, *, polled_only: bool = False, include_inactive: bool = False
) -> list[Channel]:
    query = select(Channel).where(Channel.kind == ChannelKind.email).order_by(Channel.id)
    if not include_inactive:
        query = query.where(Channel.is_active.is_(True))
    return [c for c in session.scalars(query) if not polled_only or "imap" in c.settings]


def default_outbound_channel(session: Session) -> Channel | None:
    """The mailbox that answers conversations which came in without one (contact form, API)."""
    return session.scalar(
        select(Channel).where(Channel.is_default_outbound.is_(True), Channel.is_active.is_(True)).limit(1)
    )


def set_default_outbound(
    session: Session, *, address: str, actor: User | None = None, reason: str | None = None
) -> Channel:
    """Make the email channel for ``address`` the default outbound mailbox (the previous one stops being it)."""
    address = normalize_address(address)
    channel = session.scalar(select(Channel).where(Channel.key == channel_key(address), Channel.is_active.is_(True)))
    if channel is None:
        raise NotFound(f"no active email channel for {address}")
    previous = session.scalar(select(Channel).where(Channel.is_default_outbound.is_(True)))
    if previous is channel:
        return channel
    if previous is not None:
        previous.is_default_outbound = False
        session.flush()  # the partial unique index allows one default at a time
    channel.is_default_outbound = True
    # Two admins choosing at once: the partial unique index lets one default win.
    flush_or_conflict(session, "the default outbound mailbox was changed at the same time; try again")
    record_audit(
        session, actor=actor, event="channel.default_outbound_set", subject_type="channel", subject_id=channel.id,
        reason=reason, before={"channel_id": previous.id, "address": previous.address} if previous else None,
        after={"channel_id": channel.id, "address": channel.address},
    )  # fmt: skip
    return channel


def channel_for_recipient(session: Session, *, recipient: str) -> Channel | None:
    """The active email channel that receives mail for this address (plus-tags allowed)."""
    local, _, domain = recipient.strip().strip("<>").lower().rpartition("@")
    if not local:
        return None
    keys = {channel_key(f"{local.partition('+')[0]}@{domain}"), channel_key(f"{local}@{domain}")}
    return session.scalars(
        select(Channel).where(Channel.key.in_(keys), Channel.is_active.is_(True)).order_by(Channel.id).limit(1)
    ).first()


def imap_config(channel: Channel, app_secret: str) -> ImapConfig:
    secrets = decrypt_secrets(app_secret, channel.secrets_encrypted)
    return ImapConfig(**channel.settings["imap"], password=secrets.get("imap_password", ""))


def smtp_config(channel: Channel, app_secret: str) -> SmtpConfig | None:
    if "smtp" not in channel.settings:
        return None
    secrets = decrypt_secrets(app_secret, channel.secrets_encrypted)
    return SmtpConfig(**channel.settings["smtp"], password=secrets.get("smtp_password", ""))


def stored_servers(channel: Channel) -> tuple[ImapConfig | None, SmtpConfig | None]:
    """The channel's IMAP server and relay as configured, without their passwords (for display)."""
    imap = ImapConfig(**channel.settings["imap"], password="") if "imap" in channel.settings else None
    smtp = SmtpConfig(**channel.settings["smtp"]) if "smtp" in channel.settings else None
    return imap, smtp


def transport_warnings(channel: Channel, *, settings: Settings) -> list[TransportWarning]:
    """The channel's mail connections that are unencrypted or unverified (its own or the default relay)."""
    imap, smtp = stored_servers(channel)
    found = [
        _transport_warning("IMAP", imap) if imap else None,
        _transport_warning("SMTP", smtp) if smtp else default_relay_warning(settings),
    ]
    return [warning for warning in found if warning is not None]


def default_relay(settings: Settings) -> SmtpConfig | None:
    """The relay of channels that configure none of their own (``CAPE_SMTP_RELAY_*``), if any."""
    if not settings.smtp_relay_host:
        return None
    return SmtpConfig(
        host=settings.smtp_relay_host,
        port=settings.smtp_relay_port,
        user=settings.smtp_relay_user,
        password=settings.smtp_relay_password.get_secret_value(),
        starttls=settings.smtp_relay_starttls,
        ssl=settings.smtp_relay_ssl,
        ca_file=settings.smtp_relay_ca_file,
        verify_tls=settings.smtp_relay_verify_tls,
    )


def default_relay_warning(settings: Settings) -> TransportWarning | None:
    relay = default_relay(settings)
    return _transport_warning("SMTP", relay, default_relay=True) if relay else None


def log_insecure_transports(session_factory: sessionmaker[Session], *, settings: Settings) -> None:
    """At start (app, worker): warn of every mail connection that can be read in transit.

    Names the channel and the server, never a secret.
    """
    try:
        with session_factory() as session:
            found = [(channel.address, w) for channel in list_email_channels(session)
                     for w in transport_warnings(channel, settings=settings) if not w.default_relay]  # fmt: skip
    except SQLAlchemyError as exc:  # e.g. a database not migrated yet: its own error comes soon enough
        log.warning("could not check the mail channels' TLS settings (%s)", type(exc).__name__)
        found = []
    if (relay := default_relay_warning(settings)) is not None:
        found.append(("channels without a relay of their own", relay))
    for whose, warning in found:
        how = "unencrypted" if warning.unencrypted else "to a server whose certificate is not verified"
        log.warning("mail of %s travels %s: %s %s:%s", whose, how, warning.protocol, warning.host, warning.port)


def reply_address(channel: Channel, conversation_id: int, app_secret: str) -> str:
    """The Reply-To of our mail: the channel address tagged with a signed conversation token."""
    local, _, domain = (channel.address or "").partition("@")
    token = f"c{conversation_id}"
    return f"{local}+{token}-{sign(app_secret, 'reply', f'{channel.id}:{token}')}@{domain}"


def conversation_from_addresses(channel: Channel, addresses: list[str], app_secret: str) -> int | None:
    """The conversation a reply token in any of these addresses names, if its signature is ours."""
    local, _, domain = (channel.address or "").partition("@")
    for address in addresses:
        addr_local, _, addr_domain = address.partition("@")
        base, plus, tag = addr_local.partition("+")
        if not plus or base != local or addr_domain != domain:
            continue
        match = _TOKEN.match(tag)
        if match and sign(app_secret, "reply", f"{channel.id}:c{match.group(1)}") == match.group(2):
            return int(match.group(1))
    return None


def attachment_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def message_attachments(session: Session, *, message_id: int) -> list[Attachment]:
    if session.get(Message, message_id) is None:
        raise NotFound(f"message {message_id} not found")
    return list(session.scalars(select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.id)))


def attachments_by_message(session: Session, *, message_ids: list[int]) -> dict[int, list[Attachment]]:
    """The attachments of several messages at once (one query), by message id."""
    found: dict[int, list[Attachment]] = {}
    if message_ids:
        query = select(Attachment).where(Attachment.message_id.in_(message_ids)).order_by(Attachment.id)
        for attachment in session.scalars(query):
            found.setdefault(attachment.message_id, []).append(attachment)
    return found


def attachment_file(session: Session, *, attachment_id: int, data_dir: Path) -> tuple[Attachment, Path]:
    """An attachment and where its bytes are; NotFound when it was over the size limit."""
    attachment = session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found")
    path = attachment_path(data_dir, attachment.sha256)
    if not attachment.is_stored or not path.exists():
        raise NotFound("this attachment was over the size limit; download the raw message instead")
    return attachment, path


def save_attachment(data_dir: Path, content: bytes) -> str:
    """Content-addressed, so saving the same file twice (a re-delivered message) is harmless."""
    digest = hashlib.sha256(content).hexdigest()
    path = attachment_path(data_dir, digest)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{digest}.{os.getpid()}.partial")
        partial.write_bytes(content)
        partial.replace(path)
    return digest


def receive_email(
    session: Session, *, settings: Settings, channel: Channel, raw: bytes, envelope_from: str | None = None
) -> IngestResult:
    """File one raw message (from IMAP or the SMTP listener); commits, like ``ingest``.

    Never fails on bad mail: what cannot be parsed is still filed, flagged unparseable, with
    its raw source kept byte for byte. Idempotent on the Message-ID.
    """
    parsed = parse_email(raw, max_attachment_bytes=settings.email_max_attachment_bytes)
    inbound = _inbound(session, settings=settings, channel=channel, raw=raw, parsed=parsed, envelope_from=envelope_from)
    result = ingest(session, inbound=inbound)
    if parsed.bounce is not None:
        record_bounce(session, channel=channel, parsed=parsed)
        session.commit()
    return result


def _inbound(
    session: Session,
    *,
    settings: Settings,
    channel: Channel,
    raw: bytes,
    parsed: ParsedEmail,
    envelope_from: str | None,
) -> InboundMessage:
    attachments = []
    for attachment in parsed.attachments:
        stored = attachment.content is not None
        digest = save_attachment(settings.data_dir, attachment.content) if stored else ""
        attachments.append(
            InboundAttachment(
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
                sha256=digest,
                content_id=attachment.content_id,
                is_inline=attachment.is_inline,
                is_stored=stored,
            )
        )
    sender_address = _address_or_none(parsed.from_address)
    if parsed.bounce is not None and parsed.bounce.recipients:
        # A bounce is about our customer, not from the mailer daemon: file it with them.
        sender_address = parsed.bounce.recipients[0]
    sender_address = sender_address or _address_or_none(envelope_from) or UNKNOWN_SENDER
    thread_refs = parsed.thread_refs
    token_conversation = conversation_from_addresses(channel, parsed.to, settings.resolved_secret_key)
    if token_conversation is not None:
        latest = session.scalar(
            select(Message.external_id)
            .where(
                Message.conversation_id == token_conversation,
                Message.channel_id == channel.id,
                Message.external_id.is_not(None),
            )
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        if latest:
            thread_refs.append(latest)
    body_text = parsed.body_text
    if parsed.unparseable:
        body_text = body_text or "This message could not be read. Its raw source is kept and can be downloaded."
    meta = {
        "email_from": sender_address,
        "email_to": parsed.to[:20],
        "email_cc": parsed.cc[:20],
        "unparseable": parsed.unparseable,
        "auto_submitted": parsed.auto_submitted,
        "parse_problems": parsed.problems[:20],
    }
    if parsed.bounce is not None:
        meta["bounce"] = asdict(parsed.bounce)
    return InboundMessage(
        channel=channel,
        sender=Sender(email=sender_address, name=None if parsed.bounce else parsed.from_name),
        subject=parsed.subject or ("(unparseable message)" if parsed.unparseable else None),
        body_text=body_text[: settings.inbound_max_body_chars],
        body_html=parsed.body_html[: settings.inbound_max_body_chars * 5] if parsed.body_html else None,
        external_id=parsed.message_id,
        thread_refs=thread_refs,
        raw=raw,
        raw_content_type="message/rfc822",
        meta=meta,
        attachments=attachments,
    )


def _address_or_none(value: str | None) -> str | None:
    value = (value or "").strip().strip("<>").lower()
    valid = "@" in value and len(value) <= 320 and not any(c.isspace() for c in value)
    return value if valid else None


def mark_identity_failing(session: Session, *, address: str, reason: str) -> None:
    """Remember that mail to this address fails, so agents see it (idempotent)."""
    reason = reason[:500]
    identity = session.scalar(
        select(Identity).where(Identity.kind == IdentityKind.email, Identity.value == address.lower())
    )
    if identity is None or identity.failing_reason == reason:
        return
    identity.failing_reason = reason
    session.add(
        Activity(customer_id=identity.customer_id, kind="identity_failing", data={"value": address, "reason": reason})
    )


def record_bounce(session: Session, *, channel: Channel, parsed: ParsedEmail) -> None:
    """Mark the failed addresses as failing and our bounced message as failed (idempotent)."""
    assert parsed.bounce is not None
    reason = parsed.bounce.reason
    for address in parsed.bounce.recipients:
        mark_identity_failing(session, address=address, reason=reason)
    original_id = parsed.bounce.original_message_id
    if not original_id:
        return
    original = session.scalar(
        select(Message).where(
            Message.channel_id == channel.id,
            Message.external_id == original_id,
            Message.direction == MessageDirection.outbound,
        )
    )
    if original is not None and original.delivery_status is not DeliveryStatus.failed:
        original.delivery_status = DeliveryStatus.failed
        original.delivery_error = f"bounced: {reason}"
        session.add(
            Activity(
                customer_id=original.customer_id,
                conversation_id=original.conversation_id,
                kind="delivery_failed",
                data={"message_id": original.id, "reason": reason},
            )
        )
        events.emit(
            session, "message.delivery_changed", conversation_id=original.conversation_id,
            message_id=original.id, delivery_status=DeliveryStatus.failed.value,
        )  # fmt: skip
