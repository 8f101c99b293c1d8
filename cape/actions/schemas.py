from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cape.actions.policy import MAX_AMOUNT
from cape.conversations.schemas import CustomerRef, UserRef
from cape.kit.validation import DbId
from cape.models import ActionStatus, ActionType, Role

Limit = Annotated[int, Field(ge=0, le=MAX_AMOUNT)]
# Row ids are 64-bit; a larger number is a 422 here rather than an overflow in the database.

ActionTypeName = Literal["refund", "return", "store_credit", "discount_code", "reship", "service", "goodwill"]


class ActionItem(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    sku: str | None = Field(default=None, max_length=100)
    quantity: int = Field(default=1, ge=1, le=10_000)
    amount: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)


class ActionIn(BaseModel):
    type: ActionTypeName
    amount: int = Field(ge=0, le=MAX_AMOUNT, description="integer minor units (cents), never a float")
    currency: str = Field(min_length=3, max_length=3)
    reason: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=5000)
    order_id: DbId | None = None
    items: list[ActionItem] = Field(default_factory=list, max_length=100)
    # Returns: with_receipt, sold_here; re-ship: expedited; service/goodwill: description.
    details: dict[str, Any] = Field(default_factory=dict)

    @field_validator("details")
    @classmethod
    def _small_details(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value, default=str)) > 10_000:
            raise ValueError("details must be under 10,000 characters as JSON")
        return value


class DecisionIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class ReverseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200)


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: ActionType
    status: ActionStatus
    amount: int
    currency: str
    reason: str
    note: str | None
    order_id: int | None
    items: list[dict]
    details: dict
    customer: CustomerRef
    conversation_id: int | None
    requested_by: UserRef
    over_authority: list[str]
    decided_by: UserRef | None
    decided_at: datetime | None
    decision_note: str | None
    executed_at: datetime | None
    reverses_id: int | None
    connector: str | None
    fulfilment_status: str | None
    fulfilment_reference: str | None
    fulfilment_error: str | None
    created_at: datetime


class AuthorityIn(BaseModel):
    per_action: dict[ActionTypeName, Limit | None] = Field(default_factory=dict)
    per_customer_30d: Limit | None = None
    daily_budget: Limit | None = None
    currency: str = Field(min_length=3, max_length=3)


class AuthorityOut(BaseModel):
    user_id: int | None = None
    role: Role | None = None
    source: Literal["user", "role", "default"]
    per_action: dict[str, int | None]
    per_customer_30d: int | None
    daily_budget: int | None
    currency: str


class SpendRowOut(BaseModel):
    key: str
    currency: str
    count: int
    total: int


class ReviewOut(BaseModel):
    since: datetime
    by_agent: list[SpendRowOut]
    by_type: list[SpendRowOut]
    by_reason: list[SpendRowOut]
    resolved_conversations: int
    actions_on_resolved: int
    actions_per_resolved_conversation: float
