"""Orders from the shop: the upsert contract of POST /api/v1/orders, lifetime value, loyalty tier and notes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from cape.kit.clock import utcnow
from cape.models import Activity, AuditEntry, Customer, Identity, Order
from tests.fixtures.factories import make_inbound


def _order(number="NS-1", **fields) -> dict:
    return {"number": number, "currency": "EUR", "total_amount": 8900, "status": "paid", **fields}


def test_an_order_is_created_then_updated_by_its_number(client, db, carol_admin, alice_agent):
    known = make_inbound(db, email="lea@example.org", name="Léa Martin")
    body = _order(customer_email="LEA@example.org", placed_at="2026-10-02T09:15:00+02:00",
                  items=[{"name": "Winter boots", "sku": "WB-41", "quantity": 1, "unit_amount": 8900}])  # fmt: skip
    created = client.post("/api/v1/orders", json=body, headers=carol_admin.headers)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["customer_id"] == known.customer_id
    assert (order["number"], order["total_amount"], order["currency"], order["status"]) == ("NS-1", 8900, "EUR", "paid")
    assert order["placed_at"].startswith("2026-10-02T07:15:00")
    assert order["items"] == [{"name": "Winter boots", "sku": "WB-41", "quantity": 1, "unit_amount": 8900}]
    assert order["delivery"] is None

    update = {"number": "NS-1", "status": "shipped", "delivery": {"carrier": "Colissimo", "tracking_number": "6A1"}}
    updated = client.post("/api/v1/orders", json=update | {"currency": "EUR", "total_amount": 8900},
                          headers=carol_admin.headers)  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == order["id"]
    assert updated.json()["status"] == "shipped"
    assert updated.json()["items"] == order["items"]  # not sent: kept
    assert updated.json()["delivery"] == {"carrier": "Colissimo", "tracking_number": "6A1", "delivered_at": None}
    assert db.scalar(select(func.count()).select_from(Order)) == 1

    customer = client.get(f"/api/v1/customers/{known.customer_id}", headers=alice_agent.headers).json()
    assert [(o["number"], o["status"], o["total_amount"]) for o in customer["orders"]] == [("NS-1", "shipped", 8900)]
    kinds = [(a.kind, a.data.get("old"), a.data.get("new")) for a in db.scalars(
        select(Activity).where(Activity.customer_id == known.customer_id, Activity.kind.like("order%")).order_by(
            Activity.id))]  # fmt: skip
    assert kinds == [("order_placed", None, None), ("order_status_changed", "paid", "shipped")]


def test_an_unknown_email_makes_a_customer_and_customer_id_works_too(client, db, carol_admin):
    response = client.post("/api/v1/orders", json=_order(customer_email="new@example.org", customer_name="Nina"),
                           headers=carol_admin.headers)  # fmt: skip
    assert response.status_code == 201, response.text
    customer_id = response.json()["customer_id"]
    assert db.scalar(select(Identity.customer_id).where(Identity.value == "new@example.org")) == customer_id
    assert db.get(Customer, customer_id).name == "Nina"
    other = client.post("/api/v1/orders", json=_order("NS-2", customer_id=customer_id), headers=carol_admin.headers)
    assert other.status_code == 201 and other.json()["customer_id"] == customer_id


def test_bad_orders_are_refused_naming_the_field(client, carol_admin, alice_agent):
    h = carol_admin.headers
    no_customer = client.post("/api/v1/orders", json=_order(), headers=h)
    assert no_customer.status_code == 422
    assert no_customer.json()["error"]["field"] == "customer_email"
    unknown = client.post("/api/v1/orders", json=_order(customer_id=987654), headers=h)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "customer_id"
    for field, value in (("currency", "EURO"), ("total_amount", -1), ("total_amount", 89.5),
                         ("customer_email", "not an address"), ("placed_at", "yesterday")):  # fmt: skip
        response = client.post("/api/v1/orders", json=_order(customer_email="x@example.org") | {field: value},
                               headers=h)  # fmt: skip
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["error"]["message"], response.json()
    # Writing is the shop integration's job (an admin's token); agents read.
    assert client.post("/api/v1/orders", json=_order(customer_email="x@example.org"),
                       headers=alice_agent.headers).status_code == 403  # fmt: skip


def test_lifetime_value_per_currency_and_the_loyalty_tier(client, db, carol_admin, alice_agent):
    customer_id = make_inbound(db, email="vip@example.org").customer_id
    url = f"/api/v1/customers/{customer_id}"

    def tier():
        body = client.get(url, headers=alice_agent.headers).json()
        return body["loyalty_tier"], {v["currency"]: (v["total_amount"], v["orders"]) for v in body["lifetime_value"]}

    assert tier() == ("new", {})
    now = utcnow()
    post = [
        ("A-1", "USD", 100_00, "delivered", now - timedelta(days=500)),
        ("A-2", "EUR", 50_00, "cancelled", now - timedelta(days=20)),  # did not go through: not counted
        ("A-3", "EUR", 40_00, "paid", now - timedelta(days=10)),
    ]
    for number, currency, amount, status, placed in post:
        response = client.post("/api/v1/orders", headers=carol_admin.headers, json={
            "number": number, "customer_id": customer_id, "currency": currency, "total_amount": amount,
            "status": status, "placed_at": placed.isoformat()})  # fmt: skip
        assert response.status_code == 201, response.text
    assert tier() == ("regular", {"USD": (100_00, 1), "EUR": (40_00, 1)})
    db.add_all([Order(customer_id=customer_id, number=f"B-{n}", currency="EUR", total_amount=10_00,
                      placed_at=now - timedelta(days=n)) for n in range(1, 3)])  # fmt: skip
    db.commit()
    assert tier() == ("loyal", {"USD": (100_00, 1), "EUR": (60_00, 3)})
    # 1,000.00 in the deployment's currency (USD) within 12 months makes a VIP.
    db.add(Order(customer_id=customer_id, number="B-9", currency="USD", total_amount=1000_00, placed_at=now))
    db.commit()
    assert tier() == ("vip", {"USD": (1100_00, 2), "EUR": (60_00, 3)})


def test_notes_are_edited_with_history_and_audit(client, db, alice_agent, bob_supervisor):
    customer_id = make_inbound(db, email="notes@example.org").customer_id
    url = f"/api/v1/customers/{customer_id}"
    first = client.patch(url, json={"notes": "Prefers a call back"}, headers=alice_agent.headers)
    assert first.status_code == 200, first.text
    assert first.json()["notes"] == "Prefers a call back"
    second = client.patch(url, json={"notes": "Prefers a call back; tailoring before Fridays"},
                          headers=bob_supervisor.headers)  # fmt: skip
    assert second.json()["notes"] == "Prefers a call back; tailoring before Fridays"
    assert client.patch(url, json={"notes": "x" * 5001}, headers=alice_agent.headers).status_code == 422

    changes = select(Activity).where(Activity.customer_id == customer_id, Activity.kind == "customer_notes_changed")
    history = db.scalars(changes.order_by(Activity.id)).all()
    assert [(a.actor_user_id, a.data["before"], a.data["after"]) for a in history] == [
        (alice_agent.user.id, None, "Prefers a call back"),
        (bob_supervisor.user.id, "Prefers a call back", "Prefers a call back; tailoring before Fridays"),
    ]
    audits = db.scalars(select(AuditEntry).where(AuditEntry.event == "customer.notes_updated")).all()
    assert [entry.after["notes"] for entry in audits] == [a.data["after"] for a in history]
    assert client.get(url, headers=alice_agent.headers).json()["notes"].endswith("Fridays")


def test_orders_page_through_a_long_history(client, db, alice_agent):
    customer_id = make_inbound(db, email="many@example.org").customer_id
    now = utcnow()
    db.add_all([Order(customer_id=customer_id, number=f"M-{n:03}", currency="DKK", total_amount=n,
                      placed_at=now - timedelta(hours=n)) for n in range(130)])  # fmt: skip
    db.commit()
    body = client.get(f"/api/v1/customers/{customer_id}", headers=alice_agent.headers).json()
    assert len(body["orders"]) == 100 and body["orders"][0]["number"] == "M-000"
    numbers, cursor = [], None
    while True:
        page = client.get(f"/api/v1/customers/{customer_id}/orders", params={"cursor": cursor} if cursor else {},
                          headers=alice_agent.headers).json()  # fmt: skip
        numbers += [o["number"] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert numbers == [f"M-{n:03}" for n in range(130)]
    html = client.get(f"/customers/{customer_id}", headers={**alice_agent.headers, "Accept": "text/html"}).text
    assert html.count("data-order=") == 20 and "data-older-orders" in html


def test_the_customer_360_beside_a_conversation_and_notes_saved_from_it(client, db, alice_agent):
    result = make_inbound(db, email="page@example.org", name="Astrid")
    db.add_all([Order(customer_id=result.customer_id, number=f"P-{n}", currency="DKK", total_amount=1499_00,
                      status="delivered", placed_at=utcnow() - timedelta(days=n)) for n in range(7)])  # fmt: skip
    db.commit()
    alice_agent.user.language = "da"
    db.commit()
    page = f"/conversations/{result.conversation_id}"
    html = client.get(page, headers={**alice_agent.headers, "Accept": "text/html"}).text
    assert 'data-loyalty-tier="vip"' in html and "VIP-kunde" in html
    assert "10.493,00\xa0kr." in html  # seven orders of 1.499,00 kr., in Danish
    sidebar = html[html.index("data-sidebar-orders") :].split("</ul>")[0]
    assert "P-4" in sidebar and "P-5" not in sidebar  # the latest 5

    saved = client.post(f"/customers/{result.customer_id}/notes", data={"notes": "Ring hellere op", "back": page},
                        headers=alice_agent.headers, follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303 and saved.headers["location"] == page
    elsewhere = client.post(f"/customers/{result.customer_id}/notes", data={"notes": "x", "back": "//evil.example"},
                            headers=alice_agent.headers, follow_redirects=False)  # fmt: skip
    assert elsewhere.headers["location"] == f"/customers/{result.customer_id}"
    customer = client.get(f"/customers/{result.customer_id}", headers={**alice_agent.headers, "Accept": "text/html"})
    assert "Præferencer og noter" in customer.text and ">x</textarea>" in customer.text
    assert "ændrede noterne om kunden" in customer.text
