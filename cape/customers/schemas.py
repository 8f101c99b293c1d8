from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from cape.kit.money import parse_currency
from cape.kit.validation import DbId, EmailAddress, Text
from cape.models import IdentityKind

# The largest amount a shop may report, in minor units (as for actions).
MAX_ORDER_AMOUNT = 10**12


def _moment(value: Any) -> Any:
    """A shop's time as an aware UTC datetime: a date alone is its midnight, a time without an offset is UTC."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if len(value) == 10:
            value = date.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    return value


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value is not None else None


Moment = Annotated[datetime | None, BeforeValidator(_moment), AfterValidator(_aware)]
Amount = Annotated[int, Field(ge=0, le=MAX_ORDER_AMOUNT, description="integer minor units (cents), never a float")]


class OrderItemIn(BaseModel):
    name: Text = Field(min_length=1, max_length=300)
    sku: Text | None = Field(default=None, max_length=100)
    quantity: int = Field(default=1, ge=1, le=100_000)
    unit_amount: Amount | None = None


class DeliveryIn(BaseModel):
    carrier: Text | None = Field(default=None, max_length=100)
    tracking_number: Text | None = Field(default=None, max_length=100)
    delivered_at: Moment = None


class OrderIn(BaseModel):
    """An order as the shop sends it; upserted by ``number``. On an update, only the fields sent change."""

    model_config = ConfigDict(extra="ignore")

    number: Text = Field(min_length=1, max_length=64)
    customer_id: DbId | None = None
    customer_email: EmailAddress | None = Field(default=None, max_length=320)
    customer_name: Text | None = Field(default=None, max_length=200)
    currency: str = Field(min_length=3, max_length=3)
    total_amount: Amount
    status: Text = Field(default="placed", min_length=1, max_length=32)
    placed_at: Moment = None
    items: list[OrderItemIn] = Field(default_factory=list, max_length=500)
    delivery: DeliveryIn | None = None

    @field_validator("number", "status")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return parse_currency(value)
        except Exception as exc:  # InvalidInput: reported by pydantic under the field's name
            raise ValueError("an ISO 4217 code such as USD, EUR or DKK") from exc


class IdentityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: IdentityKind
    value: str
    failing_reason: str | None


class DeliveryOut(BaseModel):
    carrier: str | None
    tracking_number: str | None
    delivered_at: datetime | None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    customer_id: int
    number: str
    status: str
    currency: str
    total_amount: int
    items: list[dict[str, Any]]
    placed_at: datetime
    delivery: DeliveryOut | None


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class LifetimeValueOut(BaseModel):
    currency: str
    total_amount: int
    orders: int


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    language: str | None
    created_at: datetime
    merged_into_id: int | None
    identities: list[IdentityOut]
    # The latest orders (newest first, at most 100; GET /customers/{id}/orders pages through all).
    orders: list[OrderOut]
    lifetime_value: list[LifetimeValueOut]
    loyalty_tier: Literal["new", "regular", "loyal", "vip"]
    notes: str | None


class CustomerPatch(BaseModel):
    notes: Text | None = Field(default=None, max_length=5000)


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
