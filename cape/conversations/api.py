"""Conversations API: inbound messages, the inbox, conversation detail, replies and changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from cape.auth.deps import CurrentUser, DbSession, UncheckedCredentials
from cape.auth.service import active_user_id
from cape.channels import outbound
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.conversations import service
from cape.conversations.schemas import (
    ConversationDetailOut,
    ConversationOut,
    ConversationPage,
    ConversationPatch,
    DeliveryReportIn,
    InboundIn,
    InboundOut,
    MessageOut,
    ReplyIn,
)
from cape.kit.errors import NotAuthenticated
from cape.kit.validation import IdPath, IdQuery
from cape.models import ChannelKind, Conversation, ConversationStatus, DeliveryStatus, Message

router = APIRouter(prefix="/api/v1", tags=["conversations"])


# The largest valid message (a 200,000-character body, escaped) with room to spare: the raw
# source keeps the body whole, keys the schema ignores included.
MAX_INBOUND_BYTES = 2 * 1024 * 1024


@router.post(
    "/messages/inbound", response_model=InboundOut, status_code=201, max_body_size=MAX_INBOUND_BYTES,
    responses={200: {"model": InboundOut, "description": "Received before (same external_id): the same ids"}},
)  # fmt: skip
async def post_inbound(body: InboundIn, request: Request, credentials: UncheckedCredentials):
    """A customer's message from a web form or an integration. Idempotent on external_id."""
    kind = ChannelKind(body.channel)
    sender = Sender(email=body.from_.email, phone=body.from_.phone, name=body.from_.name)
    raw = await request.body()  # kept byte for byte as it arrived (already read for validation)

    def prepare(session: Session) -> InboundMessage:
        # In the inbound writer's transaction: the caller is checked before anything is stored.
        user_id = active_user_id(session, token=credentials.token, session_key=credentials.session_key)
        return InboundMessage(
            channel=builtin_channel(session, kind=kind), sender=sender, subject=body.subject, body_text=body.body,
            external_id=body.external_id, conversation_id=body.conversation_id, raw=raw,
            raw_content_type="application/json", meta={"submitted_by_user_id": user_id}, language=body.language,
        )  # fmt: skip

    try:
        result = await request.app.state.inbound_queue.ingest(prepare)
    except NotAuthenticated:
        if credentials.session_key is not None:
            request.session.clear()
        raise
    # Built directly: the response model documents it, and this route is the hottest in Cape.
    return JSONResponse(
        {"customer_id": result.customer_id, "conversation_id": result.conversation_id, "message_id": result.message_id},
        status_code=201 if result.created else 200,
    )


_RAW_EXTENSIONS = {"message/rfc822": "eml", "application/json": "json", "text/plain": "txt"}


@router.get("/messages/{message_id}/raw", response_class=Response)
def get_raw(message_id: IdPath, session: DbSession, user: CurrentUser):
    """The raw source of a message, byte for byte as it arrived."""
    raw = service.get_raw_source(session, message_id=message_id)
    extension = _RAW_EXTENSIONS.get(raw.content_type, "bin")
    return Response(
        content=raw.content,
        media_type=raw.content_type,
        headers={"Content-Disposition": f'attachment; filename="message-{message_id}.{extension}"'},
    )


@router.get("/conversations", response_model=ConversationPage)
def list_conversations(
    session: DbSession,
    user: CurrentUser,
    status: ConversationStatus | None = None,
    assignee_id: IdQuery = None,
    team_id: IdQuery = None,
    customer_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    cursor: str | None = None,
):
    rows, next_cursor = service.list_conversations(
        session, status=status, assignee_id=assignee_id, team_id=team_id, customer_id=customer_id, limit=limit,
        cursor=cursor,
    )  # fmt: skip
    return ConversationPage(items=[conversation_out(c) for c in rows], next_cursor=next_cursor)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetailOut)
def get_conversation(conversation_id: IdPath, session: DbSession, user: CurrentUser):
    conversation = service.get_conversation(session, conversation_id=conversation_id)
    return ConversationDetailOut(
        **conversation_out(conversation).model_dump(),
        messages=[message_out(m) for m in conversation.messages],
    )


@router.post("/conversations/{conversation_id}/replies", response_model=MessageOut, status_code=201)
def post_reply(conversation_id: IdPath, body: ReplyIn, session: DbSession, user: CurrentUser):
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    message = service.add_reply(
        session, conversation=conversation, author=user, body=body.body, internal=body.internal, cc=body.cc
    )
    return message_out(message)


@router.post("/messages/{message_id}/retry", response_model=MessageOut)
def retry_message(message_id: IdPath, session: DbSession, user: CurrentUser):
    """Try again to deliver a reply that failed or could not be carried (409 for any other message)."""
    message, conversation = service.get_message(session, message_id=message_id)
    return message_out(outbound.retry_delivery(session, message=message, conversation=conversation, actor=user))


@router.post("/messages/{message_id}/delivery", response_model=MessageOut)
def report_delivery(message_id: IdPath, body: DeliveryReportIn, session: DbSession, user: CurrentUser):
    """For integrations: report that a reply reached the customer, or that it did not."""
    message, _ = service.get_message(session, message_id=message_id)
    status = DeliveryStatus(body.status)
    return message_out(outbound.record_report(session, message=message, status=status, error=body.error))


@router.patch("/conversations/{conversation_id}", response_model=ConversationOut)
def patch_conversation(conversation_id: IdPath, body: ConversationPatch, session: DbSession, user: CurrentUser):
    conversation = service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    changes = body.model_dump(exclude_unset=True)
    updated = service.update_conversation(session, conversation=conversation, actor=user, **changes)
    return conversation_out(updated)


def conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut.model_validate(
        {
            **{f: getattr(conversation, f) for f in _PLAIN_FIELDS},
            "channel": conversation.channel.kind.value,
            "customer": conversation.customer,
            "assignee": conversation.assignee,
            "tags": [t.tag for t in conversation.tags],
            "cc": conversation.cc_addresses or [],
        }
    )


_PLAIN_FIELDS = (
    "id", "subject", "status", "priority", "team_id", "language", "created_at", "last_activity_at",
    "waiting_since", "first_response_at", "resolved_at", "snoozed_until", "linked_conversation_id",
)  # fmt: skip


def message_out(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        direction=message.direction.value,
        author_type=message.author_type.value,
        author_user_id=message.author_user_id,
        channel=message.channel.kind.value,
        subject=message.subject,
        body=message.body_text,
        body_html=message.body_html,
        external_id=message.external_id,
        delivery_status=message.delivery_status.value if message.delivery_status else None,
        delivery_error=message.delivery_error,
        created_at=message.created_at,
    )
