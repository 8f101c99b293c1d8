from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cape.kit.validation import DbId, EmailAddress, Text
from cape.models import Role


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role
    language: str
    is_active: bool
    created_at: datetime


class UserCreate(BaseModel):
    email: EmailAddress
    name: Text = Field(min_length=1, max_length=200)
    role: Role = Role.agent
    password: str | None = Field(default=None, min_length=8, max_length=1000)
    language: str = "en"


class TeamOut(BaseModel):
    id: int
    name: str
    is_active: bool
    member_ids: list[int]


class TeamCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    member_ids: list[DbId] = Field(default_factory=list, max_length=500)


class TeamPatch(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    member_ids: list[DbId] | None = Field(default=None, max_length=500)
    is_active: bool | None = None

    @field_validator("name", "member_ids", "is_active")
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise ValueError("may be left out but not null")
        return value


class UserPatch(BaseModel):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    language: str | None = None
    is_active: bool | None = None
