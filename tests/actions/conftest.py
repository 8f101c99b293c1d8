from __future__ import annotations

import pytest

from cape.actions import connectors
from cape.kit.clock import utcnow
from cape.models import Conversation, Order
from tests.fixtures.factories import make_inbound


@pytest.fixture(autouse=True)
def ledger_connector():
    """Actions go through the built-in ledger unless a test chooses another connector."""
    connectors.configure(connectors.LedgerConnector())
    yield
    connectors.configure(connectors.LedgerConnector())


@pytest.fixture
def conversation(db) -> Conversation:
    result = make_inbound(db, email="tyres@example.org", name="Tyre Customer", subject="Four snow tyres")
    db.commit()
    return db.get(Conversation, result.conversation_id)


@pytest.fixture
def order(db, conversation) -> Order:
    order = Order(
        customer_id=conversation.customer_id, number="T-1001", currency="USD", total_amount=480_00,
        items=[{"name": "Snow tyre", "quantity": 4, "amount": 120_00}], placed_at=utcnow(),
    )  # fmt: skip
    db.add(order)
    db.commit()
    return order
