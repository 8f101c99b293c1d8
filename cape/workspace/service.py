"""Deployment-wide settings admins change in the workspace: when a waiting customer needs attention.

Each setting is one row of ``workspace_settings`` by name; a name without a row has the default
below, so a new setting needs no migration of its own. The server's own configuration (database,
mail relay, secrets) stays in ``cape.config``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cape.audit.service import record_audit
from cape.kit.clock import utcnow
from cape.kit.errors import InvalidInput
from cape.models import User, WorkspaceSetting

# A customer waiting longer than this is late whatever the thresholds say: 30 days, in minutes.
MAX_MINUTES = 30 * 24 * 60
# The reasons of InvalidInput, for API callers; the settings page says them in the admin's language.
OUT_OF_RANGE = f"a whole number of minutes from 1 to {MAX_MINUTES}"
NOT_AFTER_WARNING = "must be longer than the warning threshold"


@dataclass(frozen=True)
class WorkspaceSettings:
    """The settings in force; each field's default applies until an admin changes it."""

    # A customer waiting this long is shown in amber in the inbox...
    waiting_warn_minutes: int = 60
    # ...and this long, in red: late.
    waiting_late_minutes: int = 240

    def waiting_level(self, waiting_since: datetime | None, *, now: datetime) -> str | None:
        """How long a customer waiting since ``waiting_since`` has waited: "fresh", "warn" or "late";
        None when no one waits (we answered last)."""
        if waiting_since is None:
            return None
        waited = now - waiting_since
        if waited >= timedelta(minutes=self.waiting_late_minutes):
            return "late"
        if waited >= timedelta(minutes=self.waiting_warn_minutes):
            return "warn"
        return "fresh"


def get_workspace_settings(session: Session) -> WorkspaceSettings:
    """The settings in force: the stored values, the defaults for the rest (and for a value no
    longer readable as its type, so a page never fails on a setting)."""
    stored = {key: value for key, value in session.execute(select(WorkspaceSetting.key, WorkspaceSetting.value))}
    values = {}
    for field in fields(WorkspaceSettings):
        value = stored.get(field.name)
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_MINUTES:
            values[field.name] = value
    return WorkspaceSettings(**values)


def update_workspace_settings(
    session: Session, *, actor: User, waiting_warn_minutes: int, waiting_late_minutes: int
) -> WorkspaceSettings:
    """Change the waiting thresholds (minutes; the warning comes first), with an audit entry."""
    for name, value in (("waiting_warn_minutes", waiting_warn_minutes), ("waiting_late_minutes", waiting_late_minutes)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MINUTES:
            raise InvalidInput(name, OUT_OF_RANGE)
    if waiting_late_minutes <= waiting_warn_minutes:
        raise InvalidInput("waiting_late_minutes", NOT_AFTER_WARNING)
    before = get_workspace_settings(session)
    after = replace(before, waiting_warn_minutes=waiting_warn_minutes, waiting_late_minutes=waiting_late_minutes)
    changed = {key: value for key, value in asdict(after).items() if asdict(before)[key] != value}
    if not changed:
        return after
    for key, value in changed.items():
        _store(session, key=key, value=value, actor=actor)
    record_audit(
        session, actor=actor, event="settings.updated", subject_type="settings",
        before={key: asdict(before)[key] for key in changed}, after=changed,
    )  # fmt: skip
    return after


def _store(session: Session, *, key: str, value: object, actor: User) -> None:
    # Two admins saving at once: an insert-or-update is one statement, so the second never fails
    # on the row the first has just inserted; the later save wins, and each leaves its audit entry.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(WorkspaceSetting).values(key=key, value=value, updated_at=utcnow(), updated_by_id=actor.id)
    statement = statement.on_conflict_do_update(
        index_elements=[WorkspaceSetting.key],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at,
              "updated_by_id": statement.excluded.updated_by_id},
    )  # fmt: skip
    session.execute(statement)
