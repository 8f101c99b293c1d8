from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cape.kit.validation import DbId, EmailAddress, Text
from cape.models import ConversationStatus, Priority


class InboundFrom(BaseModel):
    email: EmailAddress | None = None
    phone: Text | None = Field(default=None, max_length=40)
    name: Text | None = Field(default=None, max_length=200)


class InboundIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel: Literal["web", "api"] = "api"
    external_id: Text | None = Field(default=None, min_length=1, max_length=500)
    from_: InboundFrom = Field(alias="from")
    subject: Text | None = Field(default=None, max_length=998)
    body: Text = Field(min_length=1, max_length=200_000)
    conversation_id: DbId | None = None
    language: Literal["en", "fr", "da"] | None = Field(
        default=None, description="The language the customer wrote in, when the integration knows it."
    )


class InboundOut(BaseModel):
    customer_id: int
    conversation_id: int
    message_id: int


class UserRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str


class CustomerRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    direction: str
    author_type: str
    author_user_id: int | None
    channel: str
    subject: str | None
    body: str
    body_html: str | None
    external_id: str | None
    delivery_status: str | None
    delivery_error: str | None
    created_at: datetime


class ConversationOut(BaseModel):
    id: int
    subject: str | None
    status: ConversationStatus
    priority: Priority
    channel: str
    customer: CustomerRef
    assignee: UserRef | None
    team_id: int | None
    tags: list[str]
    language: str | None
    created_at: datetime
    last_activity_at: datetime
    waiting_since: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    snoozed_until: datetime | None
    cc: list[str] = Field(default_factory=list, description="Addresses kept in copy of replies.")
    linked_conversation_id: int | None = None


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class ReplyIn(BaseModel):
    body: Text = Field(min_length=1, max_length=100_000)
    internal: bool = False
    cc: list[EmailAddress] | None = Field(
        default=None, max_length=20, description="Addresses kept in copy from now on; left out: unchanged."
    )


class DeliveryReportIn(BaseModel):
    status: Literal["delivered", "failed"]
    error: Text | None = Field(default=None, max_length=2000)


class ConversationPatch(BaseModel):
    status: ConversationStatus | None = None
    assignee_id: DbId | None = None
    team_id: DbId | None = None
    priority: Priority | None = None
    tags: list[Text] | None = Field(default=None, max_length=50)
    snoozed_until: datetime | None = None
    # The assignee the caller saw (null: nobody). When someone else has changed it since, the
    # request is refused with 409 and changes nothing. Left out, only an assignment made while
    # this request runs is a conflict.
    expected_assignee_id: DbId | None = None

    @field_validator("status", "priority", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out but not null")
        return value

    @field_validator("snoozed_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone")
        return value
