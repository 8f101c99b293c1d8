"""Regression tests for problems found in review: each failed before its fix."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update

from cape.actions import authority, connectors, fulfilment, service
from cape.actions.connectors import Connector, Outcome
from cape.db import create_session_factory, unit_of_work
from cape.kit.clock import utcnow
from cape.kit.errors import InvalidInput
from cape.models import (
    Action,
    ActionStatus,
    ActionType,
    AuditEntry,
    AuthorityPolicy,
    Conversation,
    FulfilmentStatus,
    Role,
    SpendCounter,
)
from cape.web import actions as web_actions
from tests.actions.test_api import post_action
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_user

EUR_ONLY = {"currency": "EUR", "per_action": {}, "per_customer_30d": None, "daily_budget": None}


# --- 1. refunds never exceed the order's total ----------------------------------------------------


def test_pending_refunds_cannot_together_exceed_the_order_total(client, conversation, order, alice_agent, carol_admin):
    # A EUR policy makes every USD action a request (reason "currency").
    client.put(f"/api/v1/users/{alice_agent.user.id}/authority", headers=carol_admin.headers, json=EUR_ONLY)
    first = post_action(client, conversation, alice_agent, order_id=order.id, amount=400_00)
    assert first.json()["status"] == "pending_approval"
    second = post_action(client, conversation, alice_agent, order_id=order.id, amount=400_00)
    assert second.status_code == 422
    assert "80.00" in second.text or "8000" in second.text  # what is left once the waiting request counts
    assert post_action(client, conversation, alice_agent, order_id=order.id, amount=80_00).status_code == 201


def test_approval_checks_the_order_total_again(
    client, db, conversation, order, alice_agent, bob_supervisor, carol_admin
):
    client.put(f"/api/v1/users/{alice_agent.user.id}/authority", headers=carol_admin.headers, json=EUR_ONLY)
    request = post_action(client, conversation, alice_agent, order_id=order.id, amount=400_00).json()
    # Meanwhile the store's order shrank (an item cancelled), or a refund went through elsewhere.
    order.total_amount = 300_00
    db.commit()
    response = client.post(f"/api/v1/actions/{request['id']}/approve", headers=bob_supervisor.headers)
    assert response.status_code == 409
    assert "left to refund" in response.json()["error"]["message"]
    assert db.get(Action, request["id"]).status is ActionStatus.pending_approval


def test_the_approvals_page_shows_why_an_approval_was_refused(
    client, db, conversation, order, alice_agent, bob_supervisor, carol_admin
):
    client.put(f"/api/v1/users/{alice_agent.user.id}/authority", headers=carol_admin.headers, json=EUR_ONLY)
    request = post_action(client, conversation, alice_agent, order_id=order.id, amount=400_00).json()
    order.total_amount = 300_00
    db.commit()
    rows = client.post(f"/approvals/{request['id']}/approve", headers=bob_supervisor.headers)
    assert rows.status_code == 200
    assert 'role="alert"' in rows.text and "left to refund" in rows.text
    assert db.get(Action, request["id"]).status is ActionStatus.pending_approval


# --- 2. a reversal cancels exactly its original in any 30-day window ------------------------------


def _capped_agent(db):
    admin, agent = make_user(db, role=Role.admin), make_user(db, role=Role.agent)
    authority.set_authority(
        db, actor=admin, user=agent, currency="USD", per_action={t.value: 1000_00 for t in ActionType},
        per_customer_30d=1000_00, daily_budget=None,
    )  # fmt: skip
    return agent


def _give(db, conversation, agent, now) -> Action:
    return service.take_action(
        db, conversation=conversation, actor=agent, action_type=ActionType.store_credit, amount=1000_00,
        currency="USD", reason="loyalty", now=now,
    )  # fmt: skip


def test_a_reversal_outside_its_originals_window_does_not_make_room_twice(db, conversation):
    agent = _capped_agent(db)
    now = utcnow()
    first = _give(db, conversation, agent, now - timedelta(days=29))
    assert first.status is ActionStatus.executed
    service.reverse_action(db, action=first, actor=agent, reason="typo")
    later = now + timedelta(days=2)  # the original has left the window; its reversal has not
    assert _give(db, conversation, agent, later).status is ActionStatus.executed
    again = _give(db, conversation, agent, later)
    assert again.status is ActionStatus.pending_approval and again.over_authority == ["per_customer_30d"]


def test_a_reversal_inside_the_window_gives_the_room_back_once(db, conversation):
    agent = _capped_agent(db)
    first = _give(db, conversation, agent, utcnow() - timedelta(days=1))
    service.reverse_action(db, action=first, actor=agent, reason="typo")
    assert _give(db, conversation, agent, utcnow()).status is ActionStatus.executed
    assert _give(db, conversation, agent, utcnow()).status is ActionStatus.pending_approval


# --- 3 and 4. deliveries: recorded once; no clear answer is not a failure --------------------------


class _Store(Connector):
    """A store that carries out every action at once."""

    name = "fake-store"
    deferred = True

    def deliver(self, payload, *, idempotency_key):
        return Outcome(done=True, reference="S-1")


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_two_records_of_one_delivery_give_the_budget_back_once(kind, tmp_path):
    from cape import jobs

    connectors.configure(_Store())
    with fresh_database(kind, tmp_path) as (_settings, engine):
        factory = create_session_factory(engine)
        jobs.configure(factory)
        with unit_of_work(factory) as session:
            agent = make_user(session)
            conversation = session.get(Conversation, make_inbound(session).conversation_id)
            action_id = service.take_action(
                session, conversation=conversation, actor=agent, action_type=ActionType.refund, amount=100_00,
                currency="USD", reason="damaged",
            ).id  # fmt: skip
        with unit_of_work(factory) as session:  # as if the worker died before recording the answer
            session.execute(update(Action).where(Action.id == action_id).values(fulfilment_status="queued"))
        with factory() as session:
            assert session.scalar(select(SpendCounter.spent)) == 100_00
        first, second = factory(), factory()
        try:
            # Both deliveries read "queued" before either records the store's refusal. (Each read
            # ends its transaction, as the delivery job does: SQLite allows one writer at a time.)
            one = first.get(Action, action_id)
            first.commit()
            two = second.get(Action, action_id)
            second.commit()
            assert one.fulfilment_status is two.fulfilment_status is FulfilmentStatus.queued
            refusal = Outcome(done=False, error="order already refunded")
            fulfilment.record_fulfilment(first, action=one, outcome=refusal)
            first.commit()
            fulfilment.record_fulfilment(second, action=two, outcome=refusal)
            second.commit()
        finally:
            first.close()
            second.close()
        with factory() as session:
            assert session.scalar(select(SpendCounter.spent)) == 0  # given back once, not twice
            failed = select(func.count()).where(AuditEntry.event == "action.failed")
            assert session.scalar(failed) == 1
            assert session.get(Action, action_id).status is ActionStatus.failed
        engine.dispose()
    connectors.configure(connectors.LedgerConnector())


# --- 5. authority is set for exactly one user or one role -----------------------------------------


def test_set_authority_needs_exactly_one_of_a_user_or_a_role(db, alice_agent, carol_admin):
    with pytest.raises(InvalidInput):
        authority.set_authority(db, actor=carol_admin.user, currency="USD", per_action={}, per_customer_30d=None,
                              daily_budget=None)  # fmt: skip
    with pytest.raises(InvalidInput):
        authority.set_authority(db, actor=carol_admin.user, user=alice_agent.user, role=Role.agent, currency="USD",
                              per_action={}, per_customer_30d=None, daily_budget=None)  # fmt: skip


def test_the_authority_form_without_a_user_or_role_changes_nobodys_policy(client, db, alice_agent, carol_admin):
    client.put(f"/api/v1/users/{alice_agent.user.id}/authority", headers=carol_admin.headers, json=EUR_ONLY)
    response = client.post(
        "/admin/authority", data={"currency": "USD", "daily_budget": "1"}, headers=carol_admin.headers
    )
    assert response.status_code == 422 and "This form is for one role or one person" in response.text
    db.expire_all()
    policies = db.query(AuthorityPolicy).all()
    assert [(p.user_id, p.currency, p.daily_budget) for p in policies] == [(alice_agent.user.id, "EUR", None)]


# --- 6. bad input is a clear 4xx, never a 500 -------------------------------------------------------


@pytest.mark.parametrize("amount", ["1e30", "10000000001", "1e999999", "1e999999999"])
def test_a_huge_amount_in_the_actions_card_is_explained(client, db, conversation, alice_agent, amount):
    response = client.post(
        f"/conversations/{conversation.id}/actions",
        data={"type": "goodwill", "amount": amount, "currency": "USD", "reason": "other"},
        headers=alice_agent.headers,
    )
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert db.query(Action).count() == 0


def test_huge_authority_limits_are_refused(client, alice_agent, carol_admin):
    url = f"/api/v1/users/{alice_agent.user.id}/authority"
    for body in (
        {"currency": "USD", "per_action": {"refund": 10**30}},
        {"currency": "USD", "per_customer_30d": 10**13},
        {"currency": "USD", "daily_budget": 10**19},
    ):
        assert client.put(url, headers=carol_admin.headers, json=body).status_code == 422
    form = {"user_id": str(alice_agent.user.id), "currency": "USD", "daily_budget": "1e30"}
    assert client.post("/admin/authority", data=form, headers=carol_admin.headers).status_code == 422


# --- 7. the authority page: off the event loop, one policy query ----------------------------------


def test_saving_authority_is_a_sync_handler():
    assert not inspect.iscoroutinefunction(web_actions.save_authority)


def test_the_authority_page_loads_policies_in_one_query(client, db, carol_admin):
    for n in range(5):
        user = make_user(db, role=Role.agent)
        authority.set_authority(db, actor=carol_admin.user, user=user, currency="USD", per_action={},
                              per_customer_30d=n, daily_budget=None)  # fmt: skip
    db.commit()
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db.get_bind().engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert client.get("/admin/authority", headers=carol_admin.headers).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sum("FROM authority_policies" in s for s in statements) == 1


@pytest.mark.parametrize(
    "path", ["/api/v1/actions/9223372036854775808", "/api/v1/actions?customer_id=99999999999999999999"]
)
def test_out_of_range_action_ids_are_not_500(client, alice_agent, path):
    assert client.get(path, headers=alice_agent.headers).status_code in (404, 422)


def test_an_out_of_range_order_id_is_explained(client, db, conversation, alice_agent):
    api = post_action(client, conversation, alice_agent, order_id=2**63)
    assert api.status_code == 422
    card = client.post(
        f"/conversations/{conversation.id}/actions",
        data={"type": "refund", "amount": "1", "currency": "USD", "reason": "damaged", "order_id": str(2**63)},
        headers=alice_agent.headers,
    )
    assert card.status_code == 200 and 'role="alert"' in card.text
    assert db.query(Action).count() == 0
