"""Races closed in the database: parallel ingests of one new customer, and of one message twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cape.db import create_session_factory
from cape.models import Customer, Identity, Message, RawSource, User
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound


@pytest.fixture(params=["sqlite", "postgresql"])
def committed(request, tmp_path):
    with fresh_database(request.param, tmp_path) as (_, engine):
        yield create_session_factory(engine)


def test_parallel_first_messages_from_one_person_make_one_customer(committed):
    def send(n: int):
        with committed() as session:
            return make_inbound(session, email="Rush@Example.org", phone="+4520000000", body=f"message {n}",
                                external_id=f"rush-{n % 10}")  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, range(40)))

    with committed() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 1
        assert sorted(session.scalars(select(Identity.value))) == ["+4520000000", "rush@example.org"]
        assert session.scalar(select(func.count()).select_from(Message)) == 10  # ten distinct external ids
        assert session.scalar(select(func.count()).select_from(RawSource)) == 40  # every delivery kept raw
    assert len({r.customer_id for r in results}) == 1
    assert sum(r.created for r in results) == 10
    by_external = {}
    for n, result in enumerate(results):
        by_external.setdefault(n % 10, set()).add(result.message_id)
    assert all(len(ids) == 1 for ids in by_external.values())


def test_opposite_merges_at_once_never_make_a_cycle(committed):
    from threading import Barrier

    from cape.customers.service import get_customer, merge_customers
    from cape.kit.errors import Conflict
    from cape.models import Role
    from tests.fixtures.factories import make_user

    with committed() as session:
        a = make_inbound(session, email="a@example.org").customer_id
        b = make_inbound(session, email="b@example.org").customer_id
        actor_id = make_user(session, role=Role.supervisor).id
        session.commit()
    # On PostgreSQL both merges read their customers before either locks them (the race);
    # SQLite runs one writing transaction at a time, so there the second simply waits.
    barrier = Barrier(2) if committed.kw["bind"].dialect.name == "postgresql" else None

    def merge(target_id: int, other_id: int) -> str:
        with committed() as session:
            target, other = get_customer(session, customer_id=target_id), get_customer(session, customer_id=other_id)
            actor = session.get(User, actor_id)
            if barrier is not None:
                barrier.wait(timeout=30)
            try:
                merge_customers(session, target=target, other=other, actor=actor)
                session.commit()
                return "merged"
            except Conflict:
                session.rollback()
                return "refused"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(lambda pair: merge(*pair), [(a, b), (b, a)]))
    assert outcomes == ["merged", "refused"]
    with committed() as session:
        links = dict(session.execute(select(Customer.id, Customer.merged_into_id)).all())
        assert sorted(v for v in links.values() if v is not None) in ([a], [b])
        # Mail from either address still reaches the surviving customer.
        assert (
            make_inbound(session, email="a@example.org").customer_id
            == make_inbound(session, email="b@example.org").customer_id
        )
