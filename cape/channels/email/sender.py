"""The email channel's sender: replies by SMTP, from the conversation's mailbox or the default one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cape import jobs
from cape.channels.email.send import customer_address, default_relay, prepare_reply
from cape.channels.email.service import default_outbound_channel
from cape.channels.email.tasks import send_email_task
from cape.channels.outbound import Unreachable
from cape.config import Settings
from cape.models import Channel, ChannelKind, Conversation, Message


class EmailSender:
    name = "email"

    def __init__(self, settings: Settings):
        self.settings = settings

    def channel_for(self, session: Session, *, conversation: Conversation) -> Channel | Unreachable:
        if conversation.channel.kind is ChannelKind.email:
            channel: Channel | None = conversation.channel
        else:
            channel = default_outbound_channel(session)
            if channel is None:
                return Unreachable(
                    "no_default_outbound", "no default outbound mailbox is set (an admin sets one under Channels)"
                )
        assert channel is not None
        if "smtp" not in channel.settings and default_relay(self.settings) is None:
            return Unreachable("no_relay", f"no SMTP relay is configured for {channel.address}")
        if customer_address(session, conversation=conversation) is None:
            return Unreachable("no_email_address", "the customer has no email address")
        return channel

    def queue(self, session: Session, *, message: Message) -> None:
        prepare_reply(session, message=message)
        jobs.enqueue_after_commit(session, send_email_task, message.id)
