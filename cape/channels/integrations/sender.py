"""The API channel's sender: replies go to the webhook the integration registered."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cape import jobs
from cape.channels.integrations.tasks import deliver_api_reply_task
from cape.channels.outbound import Unreachable
from cape.config import Settings
from cape.models import Channel, ChannelKind, Conversation, Message


class ApiWebhookSender:
    name = "api_webhook"

    def __init__(self, settings: Settings):
        self.settings = settings

    def channel_for(self, session: Session, *, conversation: Conversation) -> Channel | Unreachable:
        channel = conversation.channel
        if channel.kind is not ChannelKind.api or not (channel.settings or {}).get("reply_webhook_url"):
            return Unreachable("no_webhook", "no reply webhook is registered for the API channel")
        return channel

    def queue(self, session: Session, *, message: Message) -> None:
        jobs.enqueue_after_commit(session, deliver_api_reply_task, message.id)
