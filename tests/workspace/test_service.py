"""Workspace settings: defaults until an admin changes them, checked, stored once per name, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cape.kit.clock import utcnow
from cape.kit.errors import InvalidInput
from cape.models import AuditEntry, WorkspaceSetting
from cape.workspace.service import (
    MAX_MINUTES,
    NOT_AFTER_WARNING,
    OUT_OF_RANGE,
    WorkspaceSettings,
    get_workspace_settings,
    update_workspace_settings,
)


def audit(db) -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.subject_type == "settings").order_by(AuditEntry.id)))


def test_defaults_apply_until_an_admin_changes_them_and_each_change_is_audited(db, carol_admin):
    assert get_workspace_settings(db) == WorkspaceSettings(waiting_warn_minutes=60, waiting_late_minutes=240)

    update_workspace_settings(db, actor=carol_admin.user, waiting_warn_minutes=30, waiting_late_minutes=240)
    update_workspace_settings(db, actor=carol_admin.user, waiting_warn_minutes=15, waiting_late_minutes=120)
    update_workspace_settings(db, actor=carol_admin.user, waiting_warn_minutes=15, waiting_late_minutes=120)
    db.commit()

    assert get_workspace_settings(db) == WorkspaceSettings(waiting_warn_minutes=15, waiting_late_minutes=120)
    assert db.scalar(select(WorkspaceSetting.updated_by_id).where(WorkspaceSetting.key == "waiting_warn_minutes")) \
        == carol_admin.user.id  # fmt: skip
    # One entry per real change, with what changed only; saving the same values again is no change.
    assert [(e.event, e.actor_user_id, e.before, e.after) for e in audit(db)] == [
        ("settings.updated", carol_admin.user.id, {"waiting_warn_minutes": 60}, {"waiting_warn_minutes": 30}),
        ("settings.updated", carol_admin.user.id,
         {"waiting_warn_minutes": 30, "waiting_late_minutes": 240},
         {"waiting_warn_minutes": 15, "waiting_late_minutes": 120}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("warn", "late", "field", "reason"),
    [
        (0, 240, "waiting_warn_minutes", OUT_OF_RANGE),
        (60, MAX_MINUTES + 1, "waiting_late_minutes", OUT_OF_RANGE),
        (True, 240, "waiting_warn_minutes", OUT_OF_RANGE),
        (120, 120, "waiting_late_minutes", NOT_AFTER_WARNING),
        (240, 60, "waiting_late_minutes", NOT_AFTER_WARNING),
    ],
)
def test_thresholds_are_whole_minutes_within_30_days_warning_first(db, carol_admin, warn, late, field, reason):
    with pytest.raises(InvalidInput) as raised:
        update_workspace_settings(db, actor=carol_admin.user, waiting_warn_minutes=warn, waiting_late_minutes=late)
    assert (raised.value.field, raised.value.reason) == (field, reason)
    assert get_workspace_settings(db) == WorkspaceSettings() and audit(db) == []


def test_a_stored_value_that_cannot_be_read_falls_back_to_its_default(db):
    db.add(WorkspaceSetting(key="waiting_warn_minutes", value="soon"))
    db.add(WorkspaceSetting(key="waiting_late_minutes", value=10**9))
    db.add(WorkspaceSetting(key="a_setting_no_longer_known", value=1))
    db.commit()
    assert get_workspace_settings(db) == WorkspaceSettings()


def test_waiting_is_fresh_then_warn_then_late():
    thresholds, now = WorkspaceSettings(waiting_warn_minutes=60, waiting_late_minutes=240), utcnow()
    levels = [thresholds.waiting_level(now - timedelta(minutes=m), now=now) for m in (0, 59, 60, 239, 240, 10_000)]
    assert levels == ["fresh", "fresh", "warn", "warn", "late", "late"]
    assert thresholds.waiting_level(None, now=now) is None  # no one waits: we answered last
