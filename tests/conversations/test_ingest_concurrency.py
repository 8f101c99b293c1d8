"""Races closed in the database: parallel ingests of one new customer, and of one message twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from cape.db import create_session_factory
from cape.models import Customer, Identity, Message, RawSource
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
