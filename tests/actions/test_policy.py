"""The authority check: boundaries, currencies, precedence and the 30-day and daily windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cape.actions import service
from cape.actions.authority import set_authority
from cape.actions.policy import (
    DEFAULT_AUTHORITY,
    OVER_CURRENCY,
    OVER_DAILY_BUDGET,
    OVER_PER_ACTION,
    OVER_PER_CUSTOMER,
    Authority,
    Usage,
    over_authority,
    resolve_authority,
)
from cape.models import ActionStatus, ActionType, AuthorityPolicy, Conversation, Role
from tests.fixtures.factories import make_inbound

USD_AGENT = Authority(
    currency="USD", per_action={ActionType.refund: 100_00, ActionType.goodwill: None},
    per_customer_30d=300_00, daily_budget=500_00,
)  # fmt: skip


def check(amount, *, action_type=ActionType.refund, currency="USD", customer_30d=0, agent_today=0):
    usage = Usage(customer_30d=customer_30d, agent_today=agent_today)
    return over_authority(USD_AGENT, action_type=action_type, amount=amount, currency=currency, usage=usage)


def test_limits_are_inclusive():
    assert check(100_00) == []
    assert check(100_01) == [OVER_PER_ACTION]
    assert check(50_00, customer_30d=250_00) == []
    assert check(50_01, customer_30d=250_00) == [OVER_PER_CUSTOMER]
    assert check(50_00, agent_today=450_00) == []
    assert check(50_01, agent_today=450_00) == [OVER_DAILY_BUDGET]


def test_every_broken_limit_is_named():
    assert check(100_01, customer_30d=300_00, agent_today=500_00) == [
        OVER_PER_ACTION,
        OVER_PER_CUSTOMER,
        OVER_DAILY_BUDGET,
    ]


def test_a_policy_never_applies_to_another_currency():
    assert check(1, currency="EUR") == [OVER_CURRENCY]
    assert check(0, currency="DKK") == [OVER_CURRENCY]


def test_null_means_no_cap_and_an_unnamed_type_means_always_ask():
    assert check(250_00, action_type=ActionType.goodwill) == []
    assert check(1, action_type=ActionType.reship) == [OVER_PER_ACTION]
    assert check(0, action_type=ActionType.reship) == []


def test_default_authority_is_generous_and_admins_are_unlimited():
    agent = DEFAULT_AUTHORITY[Role.agent]
    assert all(agent.per_action_limit(t) == 500_00 for t in ActionType)
    assert DEFAULT_AUTHORITY[Role.admin].per_action_limit(ActionType.refund) is None
    assert DEFAULT_AUTHORITY[Role.admin].daily_budget is None


def test_a_users_policy_wins_over_the_roles_which_wins_over_the_default():
    user_row = AuthorityPolicy(user_id=1, currency="EUR", per_action={"refund": 10}, per_customer_30d=1, daily_budget=2)
    role_row = AuthorityPolicy(role=Role.agent, currency="DKK", per_action={}, per_customer_30d=3, daily_budget=4)
    assert resolve_authority(Role.agent, user_policy=user_row, role_policy=role_row).currency == "EUR"
    assert resolve_authority(Role.agent, user_policy=None, role_policy=role_row).source == "role"
    assert resolve_authority(Role.agent, user_policy=None, role_policy=None) == DEFAULT_AUTHORITY[Role.agent]


limits = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
money = st.integers(min_value=0, max_value=10**9)


@given(per_action=limits, per_customer=limits, daily=limits, amount=money, customer_30d=money, agent_today=money)
def test_within_authority_exactly_when_every_limit_holds(
    per_action, per_customer, daily, amount, customer_30d, agent_today
):
    authority = Authority(
        currency="USD", per_action={ActionType.refund: per_action}, per_customer_30d=per_customer, daily_budget=daily
    )
    usage = Usage(customer_30d=customer_30d, agent_today=agent_today)
    reasons = over_authority(authority, action_type=ActionType.refund, amount=amount, currency="USD", usage=usage)
    fits = (
        (per_action is None or amount <= per_action)
        and (per_customer is None or customer_30d + amount <= per_customer)
        and (daily is None or agent_today + amount <= daily)
    )
    assert (reasons == []) == fits
    if fits:  # and then spending it can never leave the agent above the budget
        assert daily is None or agent_today + amount <= daily


# --- the windows, against the database ----------------------------------------------------------


@pytest.fixture
def tight(db, alice_agent, carol_admin):
    set_authority(
        db, actor=carol_admin.user, user=alice_agent.user, currency="USD",
        per_action={"refund": None}, per_customer_30d=100_00, daily_budget=150_00,
    )  # fmt: skip
    return alice_agent.user


def take(db, conversation, user, amount, now):
    return service.take_action(
        db, conversation=conversation, actor=user, action_type=ActionType.refund, amount=amount,
        currency="USD", reason="damaged", now=now,
    )  # fmt: skip


def test_the_customer_cap_looks_back_exactly_30_days(db, conversation, tight):
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert take(db, conversation, tight, 100_00, start).status is ActionStatus.executed
    within_window = start + timedelta(days=30) - timedelta(seconds=1)
    assert take(db, conversation, tight, 1_00, within_window).status is ActionStatus.pending_approval
    after_window = start + timedelta(days=30)
    assert take(db, conversation, tight, 100_00, after_window).status is ActionStatus.executed


def test_the_daily_budget_starts_again_at_midnight_utc(db, tight):
    convs = [db.get(Conversation, make_inbound(db).conversation_id) for _ in range(3)]
    evening = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)
    assert take(db, convs[0], tight, 100_00, evening).status is ActionStatus.executed
    assert take(db, convs[1], tight, 60_00, evening).status is ActionStatus.pending_approval
    assert take(db, convs[2], tight, 60_00, evening + timedelta(minutes=2)).status is ActionStatus.executed
