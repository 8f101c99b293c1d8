"""Authority: how much an agent may give on their own judgement, and the pure check against it.

A policy is in one currency. An action in another currency is never converted and never checked
against numbers meant for a different money: it is over authority (reason ``"currency"``) and
goes to a supervisor, who can approve it in one click.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cape.models import ActionType, AuthorityPolicy, Role

# Why a request is over authority; shown to the approving supervisor.
OVER_CURRENCY = "currency"
OVER_PER_ACTION = "per_action"
OVER_PER_CUSTOMER = "per_customer_30d"
OVER_DAILY_BUDGET = "daily_budget"

DEFAULT_CURRENCY = "USD"

# The largest amount or limit accepted anywhere, in minor units: the API, the forms and the
# services share it, so an out-of-range number is a 422 and never a database overflow.
MAX_AMOUNT = 10**12


@dataclass(frozen=True)
class Authority:
    """The limits that apply to one user. ``None`` means no limit; amounts in minor units."""

    currency: str
    per_action: dict[ActionType, int | None] = field(default_factory=dict)
    per_customer_30d: int | None = None
    daily_budget: int | None = None
    source: str = "default"  # "user", "role" or "default"

    def per_action_limit(self, action_type: ActionType) -> int | None:
        """The cap for one action of this type; a type the policy does not name is capped at 0."""
        return self.per_action.get(action_type, 0)


def _everything(limit: int | None) -> dict[ActionType, int | None]:
    return dict.fromkeys(ActionType, limit)


# Generous by default ("use good judgement"): the business tightens them if it wants to.
DEFAULT_AUTHORITY: dict[Role, Authority] = {
    Role.agent: Authority(
        currency=DEFAULT_CURRENCY,
        per_action=_everything(500_00),
        per_customer_30d=1_000_00,
        daily_budget=2_000_00,
    ),
    Role.supervisor: Authority(
        currency=DEFAULT_CURRENCY,
        per_action=_everything(5_000_00),
        per_customer_30d=10_000_00,
        daily_budget=20_000_00,
    ),
    Role.admin: Authority(currency=DEFAULT_CURRENCY, per_action=_everything(None)),
}


def authority_from_policy(policy: AuthorityPolicy, *, source: str) -> Authority:
    per_action = {}
    for key, limit in (policy.per_action or {}).items():
        if key in ActionType._value2member_map_:
            per_action[ActionType(key)] = limit
    return Authority(
        currency=policy.currency,
        per_action=per_action,
        per_customer_30d=policy.per_customer_30d,
        daily_budget=policy.daily_budget,
        source=source,
    )


def resolve_authority(
    role: Role, *, user_policy: AuthorityPolicy | None, role_policy: AuthorityPolicy | None
) -> Authority:
    """A user's own policy wins over their role's, which wins over the built-in default."""
    if user_policy is not None:
        return authority_from_policy(user_policy, source="user")
    if role_policy is not None:
        return authority_from_policy(role_policy, source="role")
    return DEFAULT_AUTHORITY[role]


@dataclass(frozen=True)
class Usage:
    """What was already given, in the policy's currency: to this customer in the last 30 days
    (by anyone), and by this agent today on their own authority."""

    customer_30d: int = 0
    agent_today: int = 0


def over_authority(
    authority: Authority, *, action_type: ActionType, amount: int, currency: str, usage: Usage
) -> list[str]:
    """Which limits an action would break; an empty list means it is within authority.

    Limits are inclusive: an amount equal to the limit is within it.
    """
    if currency != authority.currency:
        return [OVER_CURRENCY]
    reasons = []
    per_action = authority.per_action_limit(action_type)
    if per_action is not None and amount > per_action:
        reasons.append(OVER_PER_ACTION)
    if authority.per_customer_30d is not None and usage.customer_30d + amount > authority.per_customer_30d:
        reasons.append(OVER_PER_CUSTOMER)
    if authority.daily_budget is not None and usage.agent_today + amount > authority.daily_budget:
        reasons.append(OVER_DAILY_BUDGET)
    return reasons


@dataclass(frozen=True)
class Headroom:
    """What one agent may still give one customer now without approval, in ``currency``.

    ``None`` means no limit. The amounts left never go below zero.
    """

    currency: str
    per_action: dict[ActionType, int | None]
    per_customer_30d: int | None
    customer_30d_left: int | None
    daily_budget: int | None
    today_left: int | None

    def most_for(self, action_type: ActionType) -> int | None:
        """The largest single action of this type that stays within every limit now."""
        limits = [self.per_action[action_type], self.customer_30d_left, self.today_left]
        known = [limit for limit in limits if limit is not None]
        return min(known) if known else None


def headroom(authority: Authority, *, usage: Usage) -> Headroom:
    """The limits of ``authority`` less what ``usage`` has already taken from them."""

    def left(limit: int | None, used: int) -> int | None:
        return None if limit is None else max(limit - used, 0)

    return Headroom(
        currency=authority.currency,
        per_action={t: authority.per_action_limit(t) for t in ActionType},
        per_customer_30d=authority.per_customer_30d,
        customer_30d_left=left(authority.per_customer_30d, usage.customer_30d),
        daily_budget=authority.daily_budget,
        today_left=left(authority.daily_budget, usage.agent_today),
    )
