"""Customers: the whole person, their timeline across conversations and channels, and merging."""

from __future__ import annotations

from sqlalchemy import select

from cape.kit.clock import utcnow
from cape.models import Activity, ChannelKind, Identity, Order
from tests.fixtures.factories import make_inbound


def test_customer_shows_identities_and_orders(client, db, alice_agent):
    result = make_inbound(db, email="olivia@example.org", phone="+14155550101", name="Olivia Bennett")
    db.add(Order(customer_id=result.customer_id, number="NS-1", currency="USD", total_amount=51600,
                 items=[{"sku": "TYRE", "quantity": 4}], placed_at=utcnow()))  # fmt: skip
    db.commit()
    body = client.get(f"/api/v1/customers/{result.customer_id}", headers=alice_agent.headers).json()
    assert body["name"] == "Olivia Bennett"
    assert {(i["kind"], i["value"]) for i in body["identities"]} == {
        ("email", "olivia@example.org"), ("phone", "+14155550101"),
    }  # fmt: skip
    assert [(o["number"], o["total_amount"], o["currency"]) for o in body["orders"]] == [("NS-1", 51600, "USD")]


def test_timeline_spans_conversations_and_channels_in_time_order(client, db, alice_agent):
    first = make_inbound(db, email="olivia@example.org", body="First, by API", channel=ChannelKind.api)
    client.post(f"/api/v1/conversations/{first.conversation_id}/replies", json={"body": "Answer"},
                headers=alice_agent.headers)  # fmt: skip
    second = make_inbound(db, email="olivia@example.org", body="Then, by web form", channel=ChannelKind.web)
    client.patch(f"/api/v1/conversations/{second.conversation_id}", json={"status": "resolved"},
                 headers=alice_agent.headers)  # fmt: skip

    timeline = client.get(f"/api/v1/customers/{first.customer_id}/timeline", headers=alice_agent.headers).json()
    items = timeline["items"]
    described = [(i["type"], i.get("body") or i.get("kind"), i.get("channel")) for i in items]
    assert described == [
        ("activity", "conversation_opened", None),
        ("message", "First, by API", "api"),
        ("message", "Answer", "api"),
        ("activity", "conversation_opened", None),
        ("message", "Then, by web form", "web"),
        ("activity", "status_changed", None),
    ]
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    assert {i["conversation_id"] for i in items} == {first.conversation_id, second.conversation_id}


def test_merge_moves_everything_and_leaves_history(client, db, alice_agent, bob_supervisor):
    keep = make_inbound(db, email="olivia@example.org", name="Olivia Bennett")
    dup = make_inbound(db, phone="+14155550101", name="O. Bennett")
    db.add(Order(customer_id=dup.customer_id, number="NS-9", currency="USD", total_amount=100, placed_at=utcnow()))
    db.commit()

    response = client.post(f"/api/v1/customers/{keep.customer_id}/merge", json={"other_id": dup.customer_id},
                           headers=bob_supervisor.headers)  # fmt: skip
    assert response.status_code == 200, response.text
    merged = response.json()
    assert {i["value"] for i in merged["identities"]} == {"olivia@example.org", "+14155550101"}
    assert [o["number"] for o in merged["orders"]] == ["NS-9"]

    convs = client.get("/api/v1/conversations", params={"customer_id": keep.customer_id},
                       headers=alice_agent.headers).json()["items"]  # fmt: skip
    assert {c["id"] for c in convs} == {keep.conversation_id, dup.conversation_id}
    timeline = client.get(f"/api/v1/customers/{keep.customer_id}/timeline", headers=alice_agent.headers).json()
    assert any(i.get("kind") == "customer_merged" for i in timeline["items"])
    activity = db.scalars(select(Activity).where(Activity.kind == "customer_merged")).one()
    assert activity.actor_user_id == bob_supervisor.user.id

    old = client.get(f"/api/v1/customers/{dup.customer_id}", headers=alice_agent.headers).json()
    assert old["merged_into_id"] == keep.customer_id

    # The merged-away phone now reaches the surviving customer.
    again = make_inbound(db, phone="+1 415 555 0101")
    assert again.customer_id == keep.customer_id
    assert db.scalar(select(Identity.customer_id).where(Identity.value == "+14155550101")) == keep.customer_id


def test_merge_refuses_self_repeat_and_unknown(client, db, bob_supervisor):
    a = make_inbound(db)
    b = make_inbound(db)
    h = bob_supervisor.headers
    url = f"/api/v1/customers/{a.customer_id}/merge"
    assert client.post(url, json={"other_id": a.customer_id}, headers=h).status_code == 422
    assert client.post(url, json={"other_id": 999999}, headers=h).status_code == 404
    assert client.post(url, json={"other_id": b.customer_id}, headers=h).status_code == 200
    repeat = client.post(url, json={"other_id": b.customer_id}, headers=h)
    assert repeat.status_code == 409
    assert repeat.json()["error"]["code"] == "conflict"
    into_merged = client.post(f"/api/v1/customers/{b.customer_id}/merge", json={"other_id": a.customer_id}, headers=h)
    assert into_merged.status_code == 409


def test_unknown_customer_is_404(client, alice_agent):
    assert client.get("/api/v1/customers/31337", headers=alice_agent.headers).status_code == 404
    assert client.get("/api/v1/customers/31337/timeline", headers=alice_agent.headers).status_code == 404
