"""POST /api/v1/messages/inbound: the contract, idempotency, and nothing lost on bad input."""

from __future__ import annotations

from sqlalchemy import func, select

from cape.conversations.api import MAX_INBOUND_BYTES
from cape.models import Customer, Identity, Message, RawSource, RawStatus


def post_inbound(client, actor, **body):
    payload = {"channel": "api", "from": {"email": "olivia@example.org", "name": "Olivia"}, "body": "Hello"}
    payload.update(body)
    return client.post("/api/v1/messages/inbound", json=payload, headers=actor.headers)


def test_inbound_creates_customer_conversation_and_message(client, db, alice_agent):
    response = post_inbound(client, alice_agent, subject="Snow tyres", body="Can I return them?")
    assert response.status_code == 201
    ids = response.json()
    assert set(ids) == {"customer_id", "conversation_id", "message_id"}

    detail = client.get(f"/api/v1/conversations/{ids['conversation_id']}", headers=alice_agent.headers).json()
    assert detail["subject"] == "Snow tyres"
    assert detail["status"] == "open"
    assert detail["customer"]["id"] == ids["customer_id"]
    assert [(m["direction"], m["body"], m["channel"]) for m in detail["messages"]] == [
        ("inbound", "Can I return them?", "api")
    ]
    assert detail["waiting_since"] is not None


def test_same_external_id_on_same_channel_is_idempotent(client, db, alice_agent):
    first = post_inbound(client, alice_agent, external_id="order-form-42")
    again = post_inbound(client, alice_agent, external_id="order-form-42")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert db.scalar(select(func.count()).select_from(Message)) == 1
    # Both deliveries are kept raw; the second is recorded as a duplicate.
    statuses = db.scalars(select(RawSource.status).order_by(RawSource.id)).all()
    assert statuses == [RawStatus.processed, RawStatus.duplicate]


def test_same_external_id_on_another_channel_is_a_new_message(client, db, alice_agent):
    a = post_inbound(client, alice_agent, channel="api", external_id="x-1")
    b = post_inbound(client, alice_agent, channel="web", external_id="x-1")
    assert a.status_code == b.status_code == 201
    assert a.json()["message_id"] != b.json()["message_id"]


def test_customer_is_recognised_by_email_whatever_its_case(client, db, alice_agent):
    a = post_inbound(client, alice_agent, **{"from": {"email": "Olivia@Example.org"}})
    b = post_inbound(client, alice_agent, **{"from": {"email": "olivia@example.ORG"}})
    assert a.json()["customer_id"] == b.json()["customer_id"]
    assert a.json()["conversation_id"] != b.json()["conversation_id"]  # a new matter each time
    assert db.scalars(select(Identity.value)).all() == ["olivia@example.org"]


def test_phone_numbers_are_stored_in_e164_and_link_to_the_email_customer(client, db, alice_agent):
    first = post_inbound(client, alice_agent, **{"from": {"email": "freja@example.dk", "phone": "+45 20 12 34 56"}})
    by_phone = post_inbound(client, alice_agent, **{"from": {"phone": "+4520123456"}})
    assert by_phone.json()["customer_id"] == first.json()["customer_id"]
    values = sorted(db.scalars(select(Identity.value)).all())
    assert values == ["+4520123456", "freja@example.dk"]


def test_follow_up_in_an_existing_conversation_reopens_it(client, db, alice_agent):
    first = post_inbound(client, alice_agent).json()
    cid = first["conversation_id"]
    client.patch(f"/api/v1/conversations/{cid}", json={"status": "resolved"}, headers=alice_agent.headers)
    again = post_inbound(client, alice_agent, conversation_id=cid, body="Still broken")
    assert again.status_code == 201
    assert again.json()["conversation_id"] == cid
    detail = client.get(f"/api/v1/conversations/{cid}", headers=alice_agent.headers).json()
    assert detail["status"] == "open"
    assert [m["body"] for m in detail["messages"]] == ["Hello", "Still broken"]


def test_conversation_of_another_customer_is_refused(client, db, alice_agent):
    other = post_inbound(client, alice_agent, **{"from": {"email": "someone.else@example.org"}}).json()
    response = post_inbound(client, alice_agent, conversation_id=other["conversation_id"])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_unknown_conversation_is_refused(client, db, alice_agent):
    response = post_inbound(client, alice_agent, conversation_id=999999)
    assert response.status_code == 422


def test_bad_input_gets_a_clear_error_and_nothing_is_filed(client, db, alice_agent):
    cases = [
        ({"from": {}, "body": "hi"}, 422),
        ({"from": {"email": "not-an-address"}, "body": "hi"}, 422),
        ({"from": {"phone": "12"}, "body": "hi"}, 422),
        ({"from": {"email": "a@example.org"}, "body": ""}, 422),
        ({"from": {"email": "a@example.org"}, "body": "hi", "channel": "carrier-pigeon"}, 422),
    ]
    for body, status in cases:
        response = client.post("/api/v1/messages/inbound", json=body, headers=alice_agent.headers)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"]
    assert db.scalar(select(func.count()).select_from(Message)) == 0
    assert db.scalar(select(func.count()).select_from(Customer)) == 0


def test_input_that_passes_the_schema_but_not_the_rules_is_kept_raw(client, db, alice_agent):
    response = post_inbound(client, alice_agent, **{"from": {"phone": "+1 not a number"}})
    assert response.status_code == 422
    raw = db.scalars(select(RawSource)).one()
    assert raw.status is RawStatus.failed
    assert b"not a number" in raw.content
    assert "phone" in raw.error


def test_the_raw_source_is_the_request_body_byte_for_byte(client, alice_agent):
    sent = b'{"from": {"email": "exact@example.org"},  "body": "Caf\\u00e9 \xc3\xa0 10h", "x-extra": [1, 2]}'
    response = client.post(
        "/api/v1/messages/inbound", content=sent,
        headers={**alice_agent.headers, "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    raw = client.get(f"/api/v1/messages/{response.json()['message_id']}/raw", headers=alice_agent.headers)
    assert raw.content == sent
    assert raw.headers["content-type"].startswith("application/json")


def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(client, db, alice_agent):
    padding = "x" * (MAX_INBOUND_BYTES + 1)
    body = {"from": {"email": "big@example.org"}, "body": "hi", "padding": padding}
    response = client.post("/api/v1/messages/inbound", json=body, headers=alice_agent.headers)
    assert response.status_code == 413  # the framework's limit, before the body is read whole
    assert db.scalar(select(func.count()).select_from(RawSource)) == 0


def test_malformed_json_is_a_400(client, alice_agent):
    response = client.post(
        "/api/v1/messages/inbound",
        content=b"{not json",
        headers={**alice_agent.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_anonymous_caller_gets_401(client):
    response = client.post("/api/v1/messages/inbound", json={"from": {"email": "a@b.c"}, "body": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
