"""Start-up registration of every channel's sender (the app and the worker call ``setup``)."""

from __future__ import annotations

from cape.config import Settings


def setup(settings: Settings) -> None:
    """Register every channel's outbound sender (called when the app and the worker start)."""
    from cape.channels import outbound
    from cape.channels.chat.sender import ChatSender
    from cape.channels.email.sender import EmailSender
    from cape.channels.integrations.sender import ApiWebhookSender

    outbound.register_sender(EmailSender(settings))
    outbound.register_sender(ApiWebhookSender(settings))
    outbound.register_sender(ChatSender(settings))
