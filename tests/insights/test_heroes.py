"""Hero moments through the API: a customer's thanks, kept with the actions that earned it."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cape.models import Conversation, HeroMoment
from tests.actions.test_api import post_action
from tests.fixtures.factories import make_inbound


@pytest.fixture
def conversation(db) -> Conversation:
    result = make_inbound(db, email="grateful@example.org", name="Grateful Customer", subject="Winter tyres")
    db.commit()
    return db.get(Conversation, result.conversation_id)


def test_hero_moment_links_the_actions_and_shows_on_the_feed(client, conversation, alice_agent, bob_supervisor):
    action = post_action(client, conversation, alice_agent, amount=20_00).json()
    response = client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments",
        json={"user_id": alice_agent.user.id, "quote": "Alice saved my winter!", "source": "customer_message"},
        headers=bob_supervisor.headers,
    )
    assert response.status_code == 201, response.text
    feed = client.get("/api/v1/hero-moments", headers=alice_agent.headers).json()
    assert [(m["user"]["name"], m["quote"]) for m in feed] == [("Alice Agent", "Alice saved my winter!")]
    assert [a["id"] for a in feed[0]["actions"]] == [action["id"]]


def test_hero_moment_with_an_unknown_message_is_422(client, conversation, alice_agent, bob_supervisor):
    response = client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments", headers=bob_supervisor.headers,
        json={"user_id": alice_agent.user.id, "quote": "thanks", "message_id": 987654},
    )  # fmt: skip
    assert response.status_code == 422


def test_hero_moment_quoting_another_conversations_message_is_422(
    client, db, conversation, alice_agent, bob_supervisor
):
    elsewhere = make_inbound(db, email="someone-else@example.org")
    db.commit()
    response = client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments", headers=bob_supervisor.headers,
        json={"user_id": alice_agent.user.id, "quote": "thanks", "message_id": elsewhere.message_id},
    )  # fmt: skip
    assert response.status_code == 422
    own = db.scalar(text("select id from messages where conversation_id = :c").bindparams(c=conversation.id))
    ok = client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments", headers=bob_supervisor.headers,
        json={"user_id": alice_agent.user.id, "quote": "thanks", "message_id": own},
    )  # fmt: skip
    assert ok.status_code == 201 and ok.json()["message_id"] == own


def test_nobody_records_praise_for_themself(client, db, conversation, alice_agent):
    response = client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments", headers=alice_agent.headers,
        json={"user_id": alice_agent.user.id, "quote": "I was great"},
    )  # fmt: skip
    assert response.status_code == 403
    assert db.query(HeroMoment).count() == 0
