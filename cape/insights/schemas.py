from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from cape.actions.schemas import ActionOut
from cape.conversations.schemas import CustomerRef, UserRef
from cape.kit.validation import DbId


class HeroMomentIn(BaseModel):
    user_id: DbId
    quote: str = Field(min_length=1, max_length=5000)
    source: Literal["customer_message", "survey", "manual"] = "manual"
    message_id: DbId | None = None


class HeroMomentOut(BaseModel):
    id: int
    user: UserRef
    customer: CustomerRef
    conversation_id: int | None
    message_id: int | None
    source: str
    quote: str
    actions: list[ActionOut]
    created_at: datetime
