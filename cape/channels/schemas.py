from __future__ import annotations

from pydantic import BaseModel, Field

from cape.kit.validation import EmailAddress, Text


class ChannelOut(BaseModel):
    id: int
    kind: str
    name: str
    address: str | None
    is_active: bool
    is_default_outbound: bool
    reply_webhook_url: str | None = None


class DefaultOutboundIn(BaseModel):
    address: EmailAddress


class ReplyWebhookIn(BaseModel):
    url: Text = Field(min_length=1, max_length=2000)
    secret: Text | None = Field(default=None, min_length=16, max_length=200)


class ReplyWebhookOut(BaseModel):
    url: str
    secret: str = Field(description="The signing secret (shown once, when set).")
