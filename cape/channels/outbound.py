"""The one way out: every outbound message goes through ``queue_outbound``.

Each channel adapter registers a ``Sender`` when the app or the worker starts
(``cape.channels.registry.setup``), never as a side effect of an import. For a conversation, ``route_for``
picks the first registered sender that can carry a reply: its own channel's sender, else a
fallback (a contact-form conversation is answered by email from the default outbound mailbox; an
API conversation through the integration's webhook, else by email; a chat conversation to the
visitor's widget, else by email). The outbound message then
gets a delivery status: ``queued`` with the work queued after commit, or ``undeliverable`` with
the reason when nothing can carry it. It is kept either way, and an agent can try again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from cape import events
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, InvalidInput
from cape.models import Activity, Channel, ChannelKind, Conversation, DeliveryStatus, Message, MessageDirection, User


@dataclass(frozen=True)
class Unreachable:
    """Why a sender cannot carry a reply: a code for people's labels, and the reason in English."""

    code: str
    reason: str


class Sender(Protocol):
    """What a channel adapter provides to carry replies out."""

    name: str

    def channel_for(self, session: Session, *, conversation: Conversation) -> Channel | Unreachable:
        """The channel this sender would send a reply of ``conversation`` through, or why it cannot."""
        ...

    def queue(self, session: Session, *, message: Message) -> None:
        """Prepare the flushed message and queue its delivery after commit (never send in the transaction)."""
        ...


_senders: dict[str, Sender] = {}
# For a conversation that started on a channel of this kind, the senders to try, in order.
ROUTES: dict[ChannelKind, tuple[str, ...]] = {
    ChannelKind.email: ("email",),
    ChannelKind.web: ("email",),
    ChannelKind.api: ("api_webhook", "email"),
    ChannelKind.chat: ("chat", "email"),
}

NO_SENDER = Unreachable("no_sender", "no channel can carry replies for this conversation")


def register_sender(sender: Sender) -> None:
    """Make ``sender`` available to ``route_for`` (called at start-up; registering again replaces it)."""
    _senders[sender.name] = sender


def registered_senders() -> dict[str, Sender]:
    return dict(_senders)


@dataclass(frozen=True)
class Route:
    """How a reply would go out: through ``sender`` on ``channel``, or not at all (``unreachable``)."""

    sender: Sender | None
    channel: Channel | None
    unreachable: Unreachable | None = None


def route_for(session: Session, *, conversation: Conversation) -> Route:
    """The sender and channel for a reply in this conversation, or the first reason none can carry it."""
    first_reason: Unreachable | None = None
    for name in ROUTES.get(conversation.channel.kind, (conversation.channel.kind.value,)):
        sender = _senders.get(name)
        if sender is None:
            continue
        found = sender.channel_for(session, conversation=conversation)
        if isinstance(found, Channel):
            return Route(sender, found)
        first_reason = first_reason or found
    return Route(None, None, first_reason or NO_SENDER)


def queue_outbound(session: Session, *, message: Message, conversation: Conversation) -> None:
    """Route a new outbound message and queue its delivery; marked undeliverable when nothing can carry it.

    The message goes out through the channel the route chose (which threading on that channel
    relies on: an emailed answer to a contact form is a message of the mailbox that sent it).
    """
    route = route_for(session, conversation=conversation)
    _apply(session, message=message, route=route)


def retry_delivery(session: Session, *, message: Message, conversation: Conversation, actor: User) -> Message:
    """Try again to deliver an outbound message that failed or could not be carried."""
    if message.direction is not MessageDirection.outbound:
        raise Conflict("only replies to the customer are delivered")
    if message.delivery_status not in (DeliveryStatus.failed, DeliveryStatus.undeliverable):
        raise Conflict("this message is not waiting for another try")
    route = route_for(session, conversation=conversation)
    session.add(
        Activity(
            customer_id=conversation.customer_id, conversation_id=conversation.id, actor_user_id=actor.id,
            kind="delivery_retried", data={"message_id": message.id, "previous_error": message.delivery_error},
        )
    )  # fmt: skip
    _apply(session, message=message, route=route)
    events.emit(
        session, "message.delivery_changed", conversation_id=message.conversation_id, message_id=message.id,
        delivery_status=message.delivery_status.value if message.delivery_status else None,
    )  # fmt: skip
    return message


def _apply(session: Session, *, message: Message, route: Route) -> None:
    if route.sender is None or route.channel is None:
        assert route.unreachable is not None
        message.delivery_status = DeliveryStatus.undeliverable
        message.delivery_error = route.unreachable.reason
        message.meta = {**(message.meta or {}), "undeliverable": route.unreachable.code}
        session.flush()
        return
    message.channel = route.channel
    message.delivery_status = DeliveryStatus.queued
    message.delivery_error = None
    meta = {k: v for k, v in (message.meta or {}).items() if k != "undeliverable"}
    message.meta = {**meta, "sender": route.sender.name, "queued_at": utcnow().isoformat()}
    session.flush()
    route.sender.queue(session, message=message)


def record_attempt(
    session: Session,
    *,
    message_id: int,
    error: str | None = None,
    final: bool = False,
    attempt: int = 1,
    max_attempts: int = 1,
    delivered: bool = False,
) -> Message:
    """Write the outcome of a delivery attempt on the message (and the history, when it failed for good)."""
    message = session.get_one(Message, message_id)
    if error is None:
        message.delivery_status = DeliveryStatus.delivered if delivered else DeliveryStatus.sent
        message.delivery_error = None
        message.meta = {**message.meta, "sent_at": utcnow().isoformat(), "attempts": attempt}
    elif not final:
        message.delivery_error = f"attempt {attempt} of {max_attempts} failed, retrying: {error}"[:2000]
    else:
        _fail(session, message=message, reason=error)
    events.emit(
        session, "message.delivery_changed", conversation_id=message.conversation_id, message_id=message.id,
        delivery_status=message.delivery_status.value if message.delivery_status else None,
    )  # fmt: skip
    return message


def record_report(session: Session, *, message: Message, status: DeliveryStatus, error: str | None = None) -> Message:
    """What the receiving side reports later: the message arrived (``delivered``) or did not (``failed``)."""
    if message.direction is not MessageDirection.outbound or message.delivery_status is None:
        raise Conflict("only replies to the customer have a delivery status")
    if status not in (DeliveryStatus.delivered, DeliveryStatus.failed):
        raise InvalidInput("status", "must be delivered or failed")
    if message.delivery_status is status:
        return message  # reported twice
    if status is DeliveryStatus.delivered:
        message.delivery_status, message.delivery_error = status, None
    else:
        _fail(session, message=message, reason=error or "reported as not delivered")
    events.emit(
        session, "message.delivery_changed", conversation_id=message.conversation_id, message_id=message.id,
        delivery_status=status.value,
    )  # fmt: skip
    return message


def _fail(session: Session, *, message: Message, reason: str) -> None:
    message.delivery_status = DeliveryStatus.failed
    message.delivery_error = reason[:2000]
    customer_id = session.scalar(select(Conversation.customer_id).where(Conversation.id == message.conversation_id))
    session.add(
        Activity(
            customer_id=customer_id, conversation_id=message.conversation_id, kind="delivery_failed",
            data={"message_id": message.id, "reason": reason[:500]},
        )
    )  # fmt: skip
