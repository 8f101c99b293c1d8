"""Deployment-wide settings an admin changes from the workspace (not the server's configuration)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from cape.kit.clock import utcnow
from cape.models.base import Base, BigId, JsonType


class WorkspaceSetting(Base):
    """One setting by name; a name without a row has its default (``cape.workspace.service``)."""

    __tablename__ = "workspace_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JsonType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
