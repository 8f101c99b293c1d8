"""Channels API (admins): the channels, the default outbound mailbox, the API channel's reply webhook."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from cape.auth.deps import Admin, DbSession
from cape.channels.email.service import set_default_outbound
from cape.channels.integrations.service import set_reply_webhook
from cape.channels.schemas import ChannelOut, DefaultOutboundIn, ReplyWebhookIn, ReplyWebhookOut
from cape.models import Channel

router = APIRouter(prefix="/api/v1/channels", tags=["channels"])


def channel_out(channel: Channel) -> ChannelOut:
    return ChannelOut(
        id=channel.id, kind=channel.kind.value, name=channel.name, address=channel.address,
        is_active=channel.is_active, is_default_outbound=channel.is_default_outbound,
        reply_webhook_url=(channel.settings or {}).get("reply_webhook_url"),
    )  # fmt: skip


@router.get("", response_model=list[ChannelOut])
def list_channels(session: DbSession, user: Admin):
    """Every channel (credentials are never returned)."""
    return [channel_out(c) for c in session.scalars(select(Channel).order_by(Channel.id))]


@router.put("/default-outbound", response_model=ChannelOut)
def put_default_outbound(body: DefaultOutboundIn, session: DbSession, user: Admin):
    """The email channel that answers conversations which came in without one (contact form, API)."""
    return channel_out(set_default_outbound(session, address=body.address, actor=user))


@router.put("/api/reply-webhook", response_model=ReplyWebhookOut)
def put_reply_webhook(body: ReplyWebhookIn, request: Request, session: DbSession, user: Admin):
    """Where agents' replies in API conversations are POSTed, signed; a secret is made when none is given."""
    secret = set_reply_webhook(
        session, url=body.url, secret=body.secret, actor=user,
        app_secret=request.app.state.settings.resolved_secret_key,
    )  # fmt: skip
    return ReplyWebhookOut(url=body.url, secret=secret or "")


@router.delete("/api/reply-webhook", status_code=204, response_class=Response)
def delete_reply_webhook(request: Request, session: DbSession, user: Admin):
    """Stop sending replies to the integration (they go by email when the customer has an address)."""
    set_reply_webhook(session, url=None, actor=user, app_secret=request.app.state.settings.resolved_secret_key)
    return Response(status_code=204)
