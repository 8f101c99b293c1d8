"""The inbox API: keyset pagination, filters, detail, replies, notes and changes with history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from cape.models import Activity, Conversation
from tests.fixtures.factories import make_inbound


def spread_activity(db, results):
    """Give conversations distinct, known activity times (oldest first)."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes, result in enumerate(results):
        db.get(Conversation, result.conversation_id).last_activity_at = base + timedelta(minutes=minutes)
    db.commit()


def test_list_walks_every_conversation_once_newest_first(client, db, alice_agent):
    results = [make_inbound(db, subject=f"Question {i}") for i in range(7)]
    spread_activity(db, results)
    # Two conversations sharing one timestamp must still page stably (id breaks the tie).
    db.get(Conversation, results[3].conversation_id).last_activity_at = db.get(
        Conversation, results[4].conversation_id
    ).last_activity_at
    db.commit()

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/conversations", params=params, headers=alice_agent.headers).json()
        seen += [c["id"] for c in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(r.conversation_id for r in results)
    assert len(seen) == len(set(seen))
    times = [db.get(Conversation, cid).last_activity_at for cid in seen]
    assert times == sorted(times, reverse=True)


def test_list_filters_by_status_assignee_and_customer(client, db, alice_agent, bob_supervisor):
    a = make_inbound(db, email="a@example.org")
    b = make_inbound(db, email="b@example.org")
    c = make_inbound(db, email="a@example.org")
    h = alice_agent.headers
    client.patch(f"/api/v1/conversations/{a.conversation_id}", json={"assignee_id": bob_supervisor.user.id}, headers=h)
    client.patch(f"/api/v1/conversations/{b.conversation_id}", json={"status": "resolved"}, headers=h)

    def ids(**params):
        items = client.get("/api/v1/conversations", params=params, headers=h).json()["items"]
        return sorted(i["id"] for i in items)

    assert ids(status="resolved") == [b.conversation_id]
    assert ids(status="open") == sorted([a.conversation_id, c.conversation_id])
    assert ids(assignee_id=bob_supervisor.user.id) == [a.conversation_id]
    assert ids(customer_id=a.customer_id) == sorted([a.conversation_id, c.conversation_id])


def test_list_rejects_bad_parameters(client, alice_agent):
    h = alice_agent.headers
    assert client.get("/api/v1/conversations", params={"limit": 0}, headers=h).status_code == 422
    assert client.get("/api/v1/conversations", params={"limit": 1000}, headers=h).status_code == 422
    assert client.get("/api/v1/conversations", params={"status": "lost"}, headers=h).status_code == 422
    response = client.get("/api/v1/conversations", params={"cursor": "garbage!"}, headers=h)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"


def test_reply_and_internal_note(client, db, alice_agent):
    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}"
    reply = client.post(url + "/replies", json={"body": "We are on it."}, headers=alice_agent.headers)
    note = client.post(url + "/replies", json={"body": "VIP, be kind", "internal": True}, headers=alice_agent.headers)
    assert reply.status_code == note.status_code == 201
    assert reply.json()["direction"] == "outbound"
    assert reply.json()["author_user_id"] == alice_agent.user.id
    assert note.json()["direction"] == "note"

    detail = client.get(url, headers=alice_agent.headers).json()
    assert [m["direction"] for m in detail["messages"]] == ["inbound", "outbound", "note"]
    assert detail["waiting_since"] is None  # our reply ended the customer's wait
    assert detail["first_response_at"] is not None


def test_empty_reply_is_refused(client, db, alice_agent):
    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}/replies"
    assert client.post(url, json={"body": "   "}, headers=alice_agent.headers).status_code == 422
    assert client.post(url, json={}, headers=alice_agent.headers).status_code == 422


def test_patch_changes_and_records_history(client, db, alice_agent, bob_supervisor):
    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}"
    response = client.patch(
        url,
        json={"status": "pending", "assignee_id": bob_supervisor.user.id, "priority": "urgent",
              "tags": ["Refund", "tyres", "refund"]},
        headers=alice_agent.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["assignee"]["id"] == bob_supervisor.user.id
    assert body["priority"] == "urgent"
    assert body["tags"] == ["refund", "tyres"]

    client.patch(url, json={"status": "resolved", "tags": ["tyres"]}, headers=alice_agent.headers)
    kinds = db.scalars(
        select(Activity.kind).where(Activity.conversation_id == result.conversation_id).order_by(Activity.id)
    ).all()
    assert kinds == [
        "conversation_opened", "status_changed", "assigned", "priority_changed", "tags_changed",
        "status_changed", "tags_changed",
    ]  # fmt: skip
    resolved = client.get(url, headers=alice_agent.headers).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None


def test_patch_unassign_and_snooze(client, db, alice_agent):
    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}"
    client.patch(url, json={"assignee_id": alice_agent.user.id}, headers=alice_agent.headers)
    assert client.patch(url, json={"assignee_id": None}, headers=alice_agent.headers).json()["assignee"] is None
    assert client.patch(url, json={"status": "snoozed"}, headers=alice_agent.headers).status_code == 422
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    snoozed = client.patch(url, json={"status": "snoozed", "snoozed_until": later}, headers=alice_agent.headers)
    assert snoozed.status_code == 200
    assert snoozed.json()["snoozed_until"] is not None


def test_patch_rejects_bad_values(client, db, alice_agent, dave_outsider):
    result = make_inbound(db)
    url = f"/api/v1/conversations/{result.conversation_id}"
    h = alice_agent.headers
    assert client.patch(url, json={"status": "gone"}, headers=h).status_code == 422
    assert client.patch(url, json={"status": None}, headers=h).status_code == 422
    assert client.patch(url, json={"assignee_id": 987654}, headers=h).status_code == 422
    # An inactive user cannot be given work.
    assert client.patch(url, json={"assignee_id": dave_outsider.user.id}, headers=h).status_code == 422
    assert client.patch(url, json={"tags": ["x" * 65]}, headers=h).status_code == 422


def test_unknown_conversation_is_404(client, alice_agent):
    h = alice_agent.headers
    assert client.get("/api/v1/conversations/424242", headers=h).status_code == 404
    assert client.patch("/api/v1/conversations/424242", json={}, headers=h).status_code == 404
    response = client.post("/api/v1/conversations/424242/replies", json={"body": "hi"}, headers=h)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
