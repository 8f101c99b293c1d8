"""Bad input of every kind gets a 4xx with a clear error, never a 500."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cape.models import Conversation, Message
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import form_csrf, sign_in

HUGE = 2**63


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/conversations/{HUGE}", None),
        ("PATCH", f"/api/v1/conversations/{HUGE}", {}),
        ("POST", f"/api/v1/conversations/{HUGE}/replies", {"body": "x"}),
        ("GET", f"/api/v1/customers/{HUGE}", None),
        ("GET", f"/api/v1/customers/{HUGE}/timeline", None),
        ("GET", f"/api/v1/conversations?assignee_id={HUGE}", None),
        ("GET", f"/api/v1/conversations?customer_id={HUGE}", None),
        ("GET", f"/api/v1/messages/{HUGE}/raw", None),
        (
            "POST",
            "/api/v1/messages/inbound",
            {"from": {"email": "a@example.org"}, "body": "x", "conversation_id": HUGE},
        ),
    ],
)
def test_ids_beyond_64_bits_are_refused(client, alice_agent, method, path, body):
    response = client.request(method, path, json=body, headers=alice_agent.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_patch_with_huge_assignee_or_team_is_refused(client, db, alice_agent):
    url = f"/api/v1/conversations/{make_inbound(db).conversation_id}"
    for field in ("assignee_id", "team_id"):
        assert client.patch(url, json={field: HUGE}, headers=alice_agent.headers).status_code == 422


def test_nul_characters_are_refused_by_the_api(client, alice_agent):
    response = client.post("/api/v1/messages/inbound", json={"from": {"email": "a@example.org"}, "body": "a\x00b"},
                           headers=alice_agent.headers)  # fmt: skip
    assert response.status_code == 422
    assert "NUL" in response.json()["error"]["message"]


def test_nul_characters_from_a_channel_are_stored_readably(db):
    result = make_inbound(db, body="before\x00after", subject="sub\x00ject", name="Na\x00me")
    message = db.get(Message, result.message_id)
    assert message.body_text == "before\ufffdafter"
    assert "\x00" not in (message.subject or "")


def test_forged_cursors_are_refused(client, alice_agent):
    for payload in (["2026-01-01T00:00:00", 5], ["2026-01-01T00:00:00+00:00", HUGE], ["nope", 1], [1]):
        cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        response = client.get("/api/v1/conversations", params={"cursor": cursor}, headers=alice_agent.headers)
        assert response.status_code == 422, payload


def test_patch_that_changes_nothing_keeps_the_inbox_order(client, db, alice_agent):
    result = make_inbound(db)
    before = db.get(Conversation, result.conversation_id).last_activity_at
    response = client.patch(f"/api/v1/conversations/{result.conversation_id}", json={}, headers=alice_agent.headers)
    assert response.status_code == 200
    db.expire_all()
    assert db.get(Conversation, result.conversation_id).last_activity_at == before


def test_a_snooze_can_be_moved(client, db, alice_agent):
    url = f"/api/v1/conversations/{make_inbound(db).conversation_id}"
    first = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    later = first + timedelta(days=2)
    client.patch(url, json={"status": "snoozed", "snoozed_until": first.isoformat()}, headers=alice_agent.headers)
    moved = client.patch(url, json={"snoozed_until": later.isoformat()}, headers=alice_agent.headers)
    assert datetime.fromisoformat(moved.json()["snoozed_until"]) == later
    past = client.patch(url, json={"snoozed_until": "2020-01-01T00:00:00Z"}, headers=alice_agent.headers)
    assert past.status_code == 422


def test_conversation_form_explains_bad_values(client, db, alice_agent):
    headers = sign_in(client, alice_agent) | {"HX-Request": "true"}
    url = f"/conversations/{make_inbound(db).conversation_id}/update"
    for data in ({"status": "bogus"}, {"assignee_id": "abc"}, {"priority": "max"}, {"status": "snoozed"}):
        response = client.post(url, data=data, headers=headers)
        assert response.status_code == 200, (data, response.text)
        assert 'class="error"' in response.text, data


def test_customer_merge_form_refuses_odd_numbers(client, db, bob_supervisor):
    headers = sign_in(client, bob_supervisor)
    customer_id = make_inbound(db).customer_id
    for other in ("²", "9" * 25):
        response = client.post(f"/customers/{customer_id}/merge", data={"other": other}, headers=headers)
        assert response.status_code in (404, 422), other


def test_contact_form_refuses_novels(client, db):
    token = form_csrf(client, "/contact")
    response = client.post("/contact", data={"csrf_token": token, "email": "long@example.org", "message": "x" * 20_001})
    assert response.status_code == 422
    assert db.scalars(select(Message)).first() is None
