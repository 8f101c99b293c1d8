"""Authority: the limits that apply to a user now, and their administration by admins (audited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cape.actions import policy
from cape.actions.history import write_audit
from cape.actions.policy import MAX_AMOUNT
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, Forbidden, InvalidInput
from cape.kit.money import parse_currency
from cape.models import ActionType, AuthorityPolicy, Role, User


def authority_for(session: Session, *, user: User) -> policy.Authority:
    """The limits that apply to ``user`` now: their own policy, else their role's, else the default."""
    rows = session.scalars(
        select(AuthorityPolicy).where((AuthorityPolicy.user_id == user.id) | (AuthorityPolicy.role == user.role))
    ).all()
    user_policy = next((p for p in rows if p.user_id == user.id), None)
    role_policy = next((p for p in rows if p.role == user.role), None)
    return policy.resolve_authority(user.role, user_policy=user_policy, role_policy=role_policy)


def all_policies(session: Session) -> list[AuthorityPolicy]:
    """Every authority policy, for pages that show many users' limits at once (one query)."""
    return list(session.scalars(select(AuthorityPolicy)))


def resolve_authority(*, role: Role, policies: list[AuthorityPolicy], user: User | None = None) -> policy.Authority:
    """The limits for ``user`` (or for ``role`` when no user is given) from already loaded policies."""
    user_policy = next((p for p in policies if user is not None and p.user_id == user.id), None)
    role_policy = next((p for p in policies if p.role == role), None)
    return policy.resolve_authority(role, user_policy=user_policy, role_policy=role_policy)


def role_authority(session: Session, *, role: Role) -> policy.Authority:
    """The limits for a role: its policy if an admin set one, else the built-in default."""
    row = session.scalar(select(AuthorityPolicy).where(AuthorityPolicy.role == role))
    return policy.resolve_authority(role, user_policy=None, role_policy=row)


def set_authority(
    session: Session,
    *,
    actor: User,
    user: User | None = None,
    role: Role | None = None,
    currency: str,
    per_action: dict[str, int | None],
    per_customer_30d: int | None,
    daily_budget: int | None,
) -> AuthorityPolicy:
    """Create or replace the policy of one user or one role (admins only); audited."""
    if not actor.role.at_least(Role.admin):
        raise Forbidden("only admins set authority")
    # Neither would match "role IS NULL" and overwrite some user's policy; both is ambiguous.
    if (user is None) == (role is None):
        raise InvalidInput("user_id", "give exactly one of a user or a role")
    currency = parse_currency(currency)
    for key, limit in per_action.items():
        if key not in ActionType._value2member_map_:
            raise InvalidInput("per_action", f"unknown action type {key!r}")
        if limit is not None and not 0 <= limit <= MAX_AMOUNT:
            raise InvalidInput("per_action", f"limits are from zero to {MAX_AMOUNT} minor units")
    for field, value in (("per_customer_30d", per_customer_30d), ("daily_budget", daily_budget)):
        if value is not None and not 0 <= value <= MAX_AMOUNT:
            raise InvalidInput(field, f"must be from zero to {MAX_AMOUNT} minor units")
    where = AuthorityPolicy.user_id == user.id if user is not None else AuthorityPolicy.role == role
    row = session.scalar(select(AuthorityPolicy).where(where))
    before = _policy_snapshot(row) if row is not None else None
    values = {
        "currency": currency, "per_action": dict(per_action), "per_customer_30d": per_customer_30d,
        "daily_budget": daily_budget, "updated_at": utcnow(), "updated_by_id": actor.id,
    }  # fmt: skip
    if row is None:
        row = AuthorityPolicy(user_id=user.id if user else None, role=None if user else role, **values)
        try:
            # Race: two admins creating the same policy at once; the unique user/role keeps one.
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError as exc:
            raise Conflict("this policy was just created by someone else; reload and try again") from exc
    else:
        for key, value in values.items():
            setattr(row, key, value)
        session.flush()
    subject = f"user {user.id}" if user is not None else f"role {role}"
    write_audit(
        session, actor=actor, event="authority.updated", reason=subject, before=before, after=_policy_snapshot(row)
    )
    return row


def _policy_snapshot(row: AuthorityPolicy) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "role": row.role.value if row.role else None,
        "currency": row.currency,
        "per_action": row.per_action,
        "per_customer_30d": row.per_customer_30d,
        "daily_budget": row.daily_budget,
    }
