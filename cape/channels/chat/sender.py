"""The chat channel's sender: an agent's reply reaches the visitor's open widget through the hub.

It is ``sent`` once published (the widget also reads it on reconnect), ``delivered`` when the
widget says the visitor saw it. When the visitor asked for email, or left a while ago, and email
can carry the reply (an address, a mailbox with a relay), the route goes on to email; else the
reply waits in the chat for the visitor to come back.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cape import events
from cape.channels.chat import service
from cape.channels.outbound import NO_SENDER, Unreachable, record_attempt, registered_senders
from cape.config import Settings
from cape.models import Channel, ChannelKind, ChatVisitor, Conversation, Message, User
from cape.realtime.hub import publish


def chat_topic(conversation_id: int) -> str:
    """The topic the visitor's sockets of a conversation listen to."""
    return f"chat:{conversation_id}"


class ChatSender:
    name = "chat"

    def __init__(self, settings: Settings):
        self.settings = settings

    def channel_for(self, session: Session, *, conversation: Conversation) -> Channel | Unreachable:
        if conversation.channel.kind is not ChannelKind.chat:
            return NO_SENDER
        asked_for_email = session.scalar(
            select(
                exists().where(ChatVisitor.conversation_id == conversation.id, ChatVisitor.replies_by_email.is_(True))
            )
        )
        if asked_for_email or service.visitor_gone(session, conversation_id=conversation.id):
            # Email takes it only when email can carry it; else the widget shows it when the visitor is back.
            email = registered_senders().get("email")
            if email is not None and isinstance(email.channel_for(session, conversation=conversation), Channel):
                if asked_for_email:
                    return Unreachable("replies_by_email", "the customer asked for replies by email")
                return Unreachable("visitor_gone", "the visitor left the chat; the reply goes by email")
        return conversation.channel

    def queue(self, session: Session, *, message: Message) -> None:
        record_attempt(session, message_id=message.id)
        author = session.get(User, message.author_user_id) if message.author_user_id else None
        payload = service.message_payload(
            message, author=author, attachments=[], app_secret=self.settings.resolved_secret_key
        )
        topic = chat_topic(message.conversation_id)
        events.on_commit(session, lambda: publish(topic, "message", payload))
