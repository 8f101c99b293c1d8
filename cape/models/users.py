"""People who work in Cape: users (agents, supervisors, admins), teams and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cape.models.base import Base, BigId, CreatedMixin, IdMixin


class Role(enum.StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"agent": 1, "supervisor": 2, "admin": 3}[self.value]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


def enum_column(enum_cls: type[enum.Enum], name: str):
    """Enums stored as plain strings with a CHECK, portable across SQLite and PostgreSQL."""
    return Enum(
        enum_cls, name=name, native_enum=False, create_constraint=True, length=32,
        values_callable=lambda e: [m.value for m in e],
    )  # fmt: skip


class PresenceStatus(enum.StrEnum):
    """What an agent says of themself; "offline" is not chosen but seen (no open workspace)."""

    online = "online"
    away = "away"


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(enum_column(Role, "user_role"), default=Role.agent)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    is_active: Mapped[bool] = mapped_column(default=True)
    signature: Mapped[str | None] = mapped_column(String(2000))
    presence_status: Mapped[PresenceStatus] = mapped_column(
        enum_column(PresenceStatus, "presence_status"), default=PresenceStatus.online, server_default="online"
    )
    # When an open workspace of this user last said it was there (cape.realtime.presence).
    seen_at: Mapped[datetime | None]

    teams: Mapped[list[Team]] = relationship(secondary="team_members", lazy="raise", viewonly=True)


class Team(IdMixin, CreatedMixin, Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    # A deactivated team keeps its history and conversations but takes no new ones.
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(IdMixin, CreatedMixin, Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="raise")


class UserSession(IdMixin, CreatedMixin, Base):
    """A browser's sign-in. Its cookie holds a random key, of which only the hash is kept here;
    signing out revokes it, so a copy of the cookie stops working too."""

    __tablename__ = "user_sessions"
    __table_args__ = (UniqueConstraint("key_hash"),)

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    revoked_at: Mapped[datetime | None]


class Invitation(IdMixin, CreatedMixin, Base):
    """A one-time link that lets an invited user choose their password and sign in.

    The link is ``<id>-<mac>``, the MAC computed from the app's secret key and ``nonce``: the
    database alone cannot make a working link, and a background job can rebuild it for the email.
    """

    __tablename__ = "invitations"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    # Set once, by the conditional update that accepts it (or when a newer link replaces it).
    used_at: Mapped[datetime | None]
    invited_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))


class RateLimitHit(IdMixin, CreatedMixin, Base):
    """One counted attempt (a refused sign-in, a contact form sent) for a limit's key, kept only
    as long as the limit's window (cape.auth.throttle)."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (
        Index("ix_rate_limit_hits_scope_key_created", "scope", "key", "created_at"),
        Index("ix_rate_limit_hits_scope_created", "scope", "created_at"),  # pruning what left its window
    )

    scope: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(320))
