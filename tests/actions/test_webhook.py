"""The store webhook connector against a real HTTP server on a free loopback port."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update

from cape import jobs
from cape.actions import connectors, service
from cape.actions.connectors.webhook import WebhookConnector, verify
from cape.actions.tasks import redeliver_stale_actions
from cape.db import create_session_factory, unit_of_work
from cape.kit.clock import utcnow
from cape.models import (
    Action,
    ActionStatus,
    ActionType,
    AuditEntry,
    Conversation,
    FulfilmentStatus,
    SpendCounter,
    User,
)
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_user

SECRET = "shared-secret"


def connector(url: str, attempts: int = 4) -> WebhookConnector:
    return WebhookConnector(url, SECRET, timeout_s=0.5, attempts=attempts, backoff_s=0.05)


def test_fails_then_times_out_then_succeeds_with_one_idempotency_key(store_server):
    store, url = store_server(["500", "timeout", "done"])
    outcome = connector(url).deliver({"id": 7, "amount": 120_00}, idempotency_key="7")
    assert outcome.done and outcome.reference == "STORE-42" and outcome.attempts == 3
    assert len(store.requests) == 3
    assert {r["headers"]["Idempotency-Key"] for r in store.requests} == {"7"}
    for request in store.requests:  # every attempt is signed over its own timestamp
        headers = request["headers"]
        assert verify(SECRET, timestamp=headers["Cape-Timestamp"], body=request["body"],
                      signature=headers["Cape-Signature"])  # fmt: skip
        assert not verify("wrong", timestamp=headers["Cape-Timestamp"], body=request["body"],
                          signature=headers["Cape-Signature"])  # fmt: skip
    assert json.loads(store.requests[0]["body"]) == {"amount": 120_00, "id": 7}


def test_gives_up_after_the_last_attempt(store_server):
    store, url = store_server(["500", "500", "timeout"])
    outcome = connector(url, attempts=3).deliver({"id": 8}, idempotency_key="8")
    assert not outcome.done and "gave up after 3 attempts" in outcome.error
    assert not outcome.final  # no clear answer: the store may have done it
    assert len(store.requests) == 3


def test_a_refusal_is_a_final_answer(store_server):
    _store, url = store_server(["refused"])
    outcome = connector(url).deliver({"id": 9}, idempotency_key="9")
    assert not outcome.done and outcome.final and outcome.error == "order already refunded"


@pytest.fixture
def committed(tmp_path):
    """A real committed database, with jobs running inline against it."""
    with fresh_database("sqlite", tmp_path) as (_settings, engine):
        factory = create_session_factory(engine)
        jobs.configure(factory)
        yield factory
    connectors.configure(connectors.LedgerConnector())


def _refund(factory, amount=50_00) -> int:
    with unit_of_work(factory) as session:
        agent = make_user(session)
        conversation = session.get(Conversation, make_inbound(session).conversation_id)
        action = service.take_action(
            session, conversation=conversation, actor=agent, action_type=ActionType.refund, amount=amount,
            currency="USD", reason="damaged",
        )  # fmt: skip
        assert action.fulfilment_status is FulfilmentStatus.queued  # nothing is sent before commit
        return action.id


def test_an_executed_action_is_delivered_after_commit_and_marked_done(committed, store_server):
    store, url = store_server(["500", "done"])
    connectors.configure(connector(url))
    action_id = _refund(committed)
    with committed() as session:
        action = session.get(Action, action_id)
        assert (action.status, action.fulfilment_status) == (ActionStatus.executed, FulfilmentStatus.done)
        assert action.fulfilment_reference == "STORE-42" and action.fulfilment_attempts == 2
    assert [json.loads(r["body"])["id"] for r in store.requests] == [action_id, action_id]


def test_a_refused_action_fails_and_frees_the_budget(committed, store_server):
    store, url = store_server(["refused"])
    connectors.configure(connector(url))
    action_id = _refund(committed, amount=70_00)
    with committed() as session:
        action = session.get(Action, action_id)
        assert action.status is ActionStatus.failed
        assert action.fulfilment_error == "order already refunded"
        assert session.query(SpendCounter).filter_by(user_id=action.requested_by_id).one().spent == 0
        events = [e.event for e in session.query(AuditEntry).filter_by(action_id=action_id).order_by(AuditEntry.id)]
        assert events == ["action.executed", "action.failed"]
    assert len(store.requests) == 1  # a refusal is an answer, not a failure to retry


def test_a_reversal_the_store_refuses_can_be_tried_again(committed, store_server):
    store, url = store_server(["done", "refused", "done"])
    connectors.configure(connector(url))
    action_id = _refund(committed, amount=40_00)

    def reverse() -> Action:
        with unit_of_work(committed) as session:
            action = session.get(Action, action_id)
            actor = session.get(User, action.requested_by_id)
            return service.reverse_action(session, action=action, actor=actor, reason="wrong order").id

    first, second = reverse(), reverse()
    with committed() as session:
        assert session.get(Action, first).status is ActionStatus.failed
        assert session.get(Action, second).status is ActionStatus.executed
        spent = session.query(SpendCounter).one().spent
        assert spent == 0  # given back once, by the reversal that happened
    assert [json.loads(r["body"]).get("reverses_id") for r in store.requests] == [None, action_id, action_id]


def test_a_delivery_lost_with_its_worker_is_sent_again_with_the_same_key(committed, store_server):
    store, url = store_server(["done", "done"])
    connectors.configure(connector(url))
    action_id = _refund(committed)
    with unit_of_work(committed) as session:  # as if the worker died before recording the answer
        session.execute(
            update(Action)
            .where(Action.id == action_id)
            .values(fulfilment_status=FulfilmentStatus.queued, executed_at=utcnow() - timedelta(minutes=11))
        )
    assert redeliver_stale_actions.call_local() == 1
    with committed() as session:
        assert session.get(Action, action_id).fulfilment_status is FulfilmentStatus.done
    assert [r["headers"]["Idempotency-Key"] for r in store.requests] == [str(action_id)] * 2
    assert redeliver_stale_actions.call_local() == 0


def test_no_clear_answer_leaves_the_action_queued_until_the_same_key_gets_one(committed, store_server):
    store, url = store_server(["500", "timeout", "done"])
    connectors.configure(connector(url, attempts=2))
    action_id = _refund(committed, amount=60_00)
    with committed() as session:  # the store may have refunded: not failed, budget still spent
        action = session.get(Action, action_id)
        assert (action.status, action.fulfilment_status) == (ActionStatus.executed, FulfilmentStatus.queued)
        assert "gave up after 2 attempts" in action.fulfilment_error
        assert session.query(SpendCounter).filter_by(user_id=action.requested_by_id).one().spent == 60_00
        events = [e.event for e in session.query(AuditEntry).filter_by(action_id=action_id).order_by(AuditEntry.id)]
        assert events == ["action.executed", "action.delivery_failed"]
    with unit_of_work(committed) as session:  # ten minutes on, the stale re-delivery picks it up
        session.execute(
            update(Action).where(Action.id == action_id).values(executed_at=utcnow() - timedelta(minutes=11))
        )
    assert redeliver_stale_actions.call_local() == 1
    with committed() as session:
        action = session.get(Action, action_id)
        assert (action.status, action.fulfilment_status) == (ActionStatus.executed, FulfilmentStatus.done)
        assert action.fulfilment_error is None and action.fulfilment_attempts == 3
    assert [r["headers"]["Idempotency-Key"] for r in store.requests] == [str(action_id)] * 3
