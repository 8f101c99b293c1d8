"""Budgets hold under concurrency: many requests spending at once never exceed the limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from cape.actions import authority, connectors, service
from cape.db import create_session_factory, unit_of_work
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict
from cape.models import Action, ActionStatus, ActionType, AuditEntry, Conversation, LedgerEntry, Order, Role, User
from tests.fixtures.browser import start_server
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_token, make_user

# More than the app's connection pool, so requests also queue for connections while others hold locks.
THREADS = 24


@pytest.fixture(params=["postgresql", "sqlite"])
def live(request, tmp_path):
    """A real Cape over HTTP on a real committed database; yields (url, session_factory)."""
    with fresh_database(request.param, tmp_path) as (settings, engine):
        server, thread, url = start_server(settings)
        connectors.configure(connectors.LedgerConnector())
        try:
            yield url, create_session_factory(engine)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _setup(session_factory, *, agents: int, customers: int, policy: dict):
    with session_factory() as session:
        admin = make_user(session, role=Role.admin)
        users = [make_user(session, role=Role.agent) for _ in range(agents)]
        for user in users:
            authority.set_authority(session, actor=admin, user=user, currency="USD", **policy)
        tokens = [make_token(session, u) for u in users]
        conversations = [make_inbound(session).conversation_id for _ in range(customers)]
        session.commit()
        return tokens, conversations


def _post(url: str, token: str, conversation_id: int, amount: int) -> str:
    response = httpx.post(
        f"{url}/api/v1/conversations/{conversation_id}/actions",
        json={"type": "refund", "amount": amount, "currency": "USD", "reason": "damaged"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()["status"]


def _executed_total(session_factory, *where) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.coalesce(func.sum(Action.amount), 0)).where(Action.status == ActionStatus.executed, *where)
        )


def test_one_agents_daily_budget_is_never_exceeded(live):
    url, session_factory = live
    budget, amount = 1_000_00, 150_00
    policy = {"per_action": {"refund": None}, "per_customer_30d": None, "daily_budget": budget}
    [token], conversations = _setup(session_factory, agents=1, customers=THREADS, policy=policy)
    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(lambda c: _post(url, token, c, amount), conversations))
    assert statuses.count("executed") == budget // amount  # 6 fit, the other 18 wait for approval
    assert statuses.count("pending_approval") == THREADS - budget // amount
    assert _executed_total(session_factory) == 6 * amount <= budget


def test_one_customers_30_day_cap_holds_across_agents(live):
    url, session_factory = live
    cap, amount = 500_00, 70_00
    policy = {"per_action": {"refund": None}, "per_customer_30d": cap, "daily_budget": None}
    tokens, [conversation_id] = _setup(session_factory, agents=THREADS, customers=1, policy=policy)
    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(pool.map(lambda t: _post(url, t, conversation_id, amount), tokens))
    assert statuses.count("executed") == cap // amount
    with session_factory() as session:
        customer_id = session.get(Conversation, conversation_id).customer_id
    assert _executed_total(session_factory, Action.customer_id == customer_id) <= cap


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_two_supervisors_deciding_at_once_cannot_both_win(kind, tmp_path):
    with fresh_database(kind, tmp_path) as (_settings, engine):
        connectors.configure(connectors.LedgerConnector())
        factory = create_session_factory(engine)
        with factory() as session:
            agent = make_user(session, role=Role.agent)
            supervisors = [make_user(session, role=Role.supervisor) for _ in range(THREADS // 2)]
            conversation = session.get(Conversation, make_inbound(session).conversation_id)
            action = service.take_action(
                session, conversation=conversation, actor=agent, action_type=ActionType.goodwill,
                amount=9_999_00, currency="USD", reason="other",
            )  # fmt: skip
            session.commit()
            action_id, supervisor_ids = action.id, [s.id for s in supervisors]
        barrier = threading.Barrier(len(supervisor_ids))

        def decide(index_and_id):
            index, supervisor_id = index_and_id
            barrier.wait()
            try:
                with unit_of_work(factory) as session:
                    decide_fn = service.approve_action if index % 2 else service.decline_action
                    decide_fn(session, action=session.get(Action, action_id), actor=session.get(User, supervisor_id))
                return "won"
            except Conflict:
                return "too late"

        with ThreadPoolExecutor(len(supervisor_ids)) as pool:
            results = list(pool.map(decide, enumerate(supervisor_ids)))
        assert results.count("won") == 1
        with factory() as session:
            decided = session.get(Action, action_id)
            ledger = session.query(LedgerEntry).filter_by(action_id=action_id).count()
            assert ledger == (1 if decided.status is ActionStatus.executed else 0)
            assert (
                session.query(AuditEntry).filter(AuditEntry.event.in_(["action.approved", "action.declined"])).count()
                == 1
            )


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_approving_refund_requests_at_once_never_refunds_more_than_the_order(kind, tmp_path):
    with fresh_database(kind, tmp_path) as (_settings, engine):
        connectors.configure(connectors.LedgerConnector())
        factory = create_session_factory(engine)
        with factory() as session:
            agent = make_user(session, role=Role.agent)
            supervisors = [make_user(session, role=Role.supervisor) for _ in range(8)]
            conversation = session.get(Conversation, make_inbound(session).conversation_id)
            order = Order(
                customer_id=conversation.customer_id, number="C-1", currency="USD", total_amount=8 * 600_00,
                placed_at=utcnow(),
            )  # fmt: skip
            session.add(order)
            session.flush()
            requests = [
                service.take_action(
                    session, conversation=conversation, actor=agent, action_type=ActionType.refund, amount=600_00,
                    currency="USD", reason="damaged", order_id=order.id,
                ).id
                for _ in range(8)
            ]  # fmt: skip
            order.total_amount = 1000_00  # the store's order shrank while the requests waited
            session.commit()
            pairs = list(zip(requests, [s.id for s in supervisors], strict=True))
        barrier = threading.Barrier(len(pairs))

        def approve(pair):
            action_id, supervisor_id = pair
            barrier.wait()
            try:
                with unit_of_work(factory) as session:
                    service.approve_action(
                        session, action=session.get(Action, action_id), actor=session.get(User, supervisor_id)
                    )
                return "approved"
            except Conflict:
                return "refused"

        with ThreadPoolExecutor(len(pairs)) as pool:
            results = list(pool.map(approve, pairs))
        assert results.count("approved") == 1
        assert _executed_total(factory, Action.type == ActionType.refund) == 600_00
