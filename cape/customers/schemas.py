from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from cape.kit.validation import DbId
from cape.models import IdentityKind


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: IdentityKind
    value: str
    failing_reason: str | None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    number: str
    status: str
    currency: str
    total_amount: int
    items: list[dict[str, Any]]
    placed_at: datetime


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    language: str | None
    created_at: datetime
    merged_into_id: int | None
    identities: list[IdentityOut]
    orders: list[OrderOut]


class MergeIn(BaseModel):
    other_id: DbId


class TimelineItemOut(BaseModel):
    type: Literal["message", "activity"]
    at: datetime
    conversation_id: int | None
    id: int
    # message fields
    direction: str | None = None
    channel: str | None = None
    author_type: str | None = None
    author_user_id: int | None = None
    subject: str | None = None
    body: str | None = None
    # activity fields
    kind: str | None = None
    actor_user_id: int | None = None
    data: dict[str, Any] | None = None


class TimelineOut(BaseModel):
    customer_id: int
    items: list[TimelineItemOut]
