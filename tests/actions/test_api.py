"""Actions through the API: execute within authority, request above it, approve, decline, reverse."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DatabaseError

from cape.models import AuditEntry, LedgerEntry, Role
from tests.fixtures.factories import make_token, make_user


def post_action(client, conversation, actor, **body):
    payload = {"type": "refund", "amount": 120_00, "currency": "USD", "reason": "damaged"} | body
    return client.post(f"/api/v1/conversations/{conversation.id}/actions", json=payload, headers=actor.headers)


def test_refund_within_authority_executes_at_once_through_the_ledger(client, db, conversation, order, alice_agent):
    response = post_action(client, conversation, alice_agent, order_id=order.id, note="one tyre split")
    assert response.status_code == 201, response.text
    action = response.json()
    assert action["status"] == "executed"
    assert action["fulfilment_status"] == "done" and action["connector"] == "ledger"
    assert action["requested_by"]["id"] == alice_agent.user.id
    assert action["order_id"] == order.id
    ledger = db.query(LedgerEntry).filter_by(action_id=action["id"]).one()
    assert (ledger.kind, ledger.amount, ledger.currency) == ("refund", 120_00, "USD")
    detail = client.get(f"/api/v1/conversations/{conversation.id}", headers=alice_agent.headers)
    assert detail.status_code == 200
    events = [e.event for e in db.query(AuditEntry).filter_by(action_id=action["id"])]
    assert events == ["action.executed", "action.done"]


def test_refund_with_no_order_and_a_discount_code_for_next_time(client, conversation, alice_agent):
    refund = post_action(client, conversation, alice_agent, amount=15_00, reason="late_delivery")
    assert refund.json()["status"] == "executed" and refund.json()["order_id"] is None
    code = post_action(client, conversation, alice_agent, type="discount_code", amount=10_00, reason="loyalty")
    assert code.status_code == 201
    assert code.json()["fulfilment_reference"].startswith("CAPE-")


def test_return_without_receipt_of_an_item_not_sold_here_is_recorded_as_such(client, conversation, alice_agent):
    response = post_action(
        client, conversation, alice_agent, type="return", amount=0, reason="goodwill return",
        details={"with_receipt": False, "sold_here": False}, items=[{"name": "Snow tyre", "quantity": 4}],
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["details"] == {"with_receipt": False, "sold_here": False}
    assert response.json()["items"] == [{"name": "Snow tyre", "quantity": 4}]


def test_above_authority_becomes_a_request_a_supervisor_approves(client, db, conversation, alice_agent, bob_supervisor):
    response = post_action(client, conversation, alice_agent, amount=900_00, reason="damaged", note="whole set")
    assert response.status_code == 201
    request = response.json()
    assert request["status"] == "pending_approval"
    assert request["over_authority"] == ["per_action"]
    assert db.query(LedgerEntry).filter_by(action_id=request["id"]).count() == 0

    pending = client.get("/api/v1/actions?status=pending_approval", headers=bob_supervisor.headers).json()
    assert [a["id"] for a in pending] == [request["id"]]

    approved = client.post(f"/api/v1/actions/{request['id']}/approve", headers=bob_supervisor.headers)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "executed"
    assert approved.json()["decided_by"]["id"] == bob_supervisor.user.id
    assert db.query(LedgerEntry).filter_by(action_id=request["id"]).count() == 1
    assert client.get("/api/v1/actions?status=pending_approval", headers=bob_supervisor.headers).json() == []

    again = client.post(f"/api/v1/actions/{request['id']}/decline", headers=bob_supervisor.headers)
    assert again.status_code == 409


def test_a_supervisor_declines_and_nothing_is_given(client, db, conversation, alice_agent, bob_supervisor):
    request = post_action(client, conversation, alice_agent, amount=900_00).json()
    declined = client.post(
        f"/api/v1/actions/{request['id']}/decline", json={"note": "offer a repair"}, headers=bob_supervisor.headers
    )
    assert declined.status_code == 200
    assert declined.json()["status"] == "declined" and declined.json()["decision_note"] == "offer a repair"
    assert db.query(LedgerEntry).filter_by(action_id=request["id"]).count() == 0


def test_agents_cannot_decide_requests(client, conversation, alice_agent, bob_supervisor, carol_admin):
    request = post_action(client, conversation, alice_agent, amount=900_00).json()
    for verb in ("approve", "decline"):
        response = client.post(f"/api/v1/actions/{request['id']}/{verb}", headers=alice_agent.headers)
        assert response.status_code == 403
    assert client.post(f"/api/v1/actions/{request['id']}/approve", headers=carol_admin.headers).status_code == 200


def test_no_one_approves_their_own_request(client, conversation, bob_supervisor):
    request = post_action(client, conversation, bob_supervisor, amount=9_000_00).json()
    assert request["status"] == "pending_approval"
    response = client.post(f"/api/v1/actions/{request['id']}/approve", headers=bob_supervisor.headers)
    assert response.status_code == 403


def test_reversal_is_a_counter_action_and_gives_the_budget_back(client, db, conversation, alice_agent, carol_admin):
    client.put(
        f"/api/v1/users/{alice_agent.user.id}/authority",
        json={"per_action": {"refund": 100_00}, "per_customer_30d": None, "daily_budget": 100_00, "currency": "USD"},
        headers=carol_admin.headers,
    )
    original = post_action(client, conversation, alice_agent, amount=100_00).json()
    assert original["status"] == "executed"
    assert post_action(client, conversation, alice_agent, amount=1_00).json()["status"] == "pending_approval"

    reversal = client.post(
        f"/api/v1/actions/{original['id']}/reverse", json={"reason": "wrong customer"}, headers=alice_agent.headers
    )
    assert reversal.status_code == 201, reversal.text
    counter = reversal.json()
    assert counter["amount"] == -100_00 and counter["reverses_id"] == original["id"]
    assert client.get(f"/api/v1/actions/{original['id']}", headers=alice_agent.headers).json()["status"] == "executed"
    assert sum(e.amount for e in db.query(LedgerEntry)) == 0
    assert post_action(client, conversation, alice_agent, amount=100_00).json()["status"] == "executed"

    twice = client.post(
        f"/api/v1/actions/{original['id']}/reverse", json={"reason": "again"}, headers=alice_agent.headers
    )
    assert twice.status_code == 409


def test_authority_is_set_by_admins_only(client, alice_agent, bob_supervisor, carol_admin):
    url = f"/api/v1/users/{alice_agent.user.id}/authority"
    body = {"per_action": {"refund": 50_00, "goodwill": 5_00}, "per_customer_30d": 100_00, "daily_budget": 200_00,
            "currency": "USD"}  # fmt: skip
    assert client.get(url, headers=carol_admin.headers).json()["source"] == "default"
    for actor in (alice_agent, bob_supervisor):
        assert client.get(url, headers=actor.headers).status_code == 403
        assert client.put(url, json=body, headers=actor.headers).status_code == 403
    response = client.put(url, json=body, headers=carol_admin.headers)
    assert response.status_code == 200, response.text
    saved = client.get(url, headers=carol_admin.headers).json()
    assert saved["source"] == "user" and saved["currency"] == "USD"
    assert saved["per_action"]["refund"] == 50_00 and saved["per_action"]["reship"] == 0
    assert (saved["per_customer_30d"], saved["daily_budget"]) == (100_00, 200_00)
    bad = client.put(url, json=body | {"currency": "XYZ"}, headers=carol_admin.headers)
    assert bad.status_code == 422
    client.put(url, json=body | {"daily_budget": 300_00}, headers=carol_admin.headers)
    rows = csv.DictReader(io.StringIO(client.get("/api/v1/audit.csv", headers=carol_admin.headers).text))
    audit = [r for r in rows if r["event"].startswith("authority.")]  # users created by the fixtures come first
    assert [r["event"] for r in audit] == ["authority.updated", "authority.updated"]
    assert audit[0]["before"] == "" and '"daily_budget": 30000' in audit[1]["after"]
    assert '"daily_budget": 20000' in audit[1]["before"]


def test_an_action_in_another_currency_than_the_policy_goes_to_a_supervisor(client, conversation, alice_agent):
    response = post_action(client, conversation, alice_agent, amount=1_00, currency="EUR")
    assert response.json()["status"] == "pending_approval"
    assert response.json()["over_authority"] == ["currency"]


def test_bad_input_is_refused(client, conversation, order, alice_agent):
    assert post_action(client, conversation, alice_agent, amount=12.5).status_code == 422
    assert post_action(client, conversation, alice_agent, amount=0).status_code == 422
    assert post_action(client, conversation, alice_agent, currency="ZZZ").status_code == 422
    assert post_action(client, conversation, alice_agent, type="teleport").status_code == 422
    too_much = post_action(client, conversation, alice_agent, order_id=order.id, amount=480_01)
    assert too_much.status_code == 422 and too_much.json()["error"]["field"] == "amount"
    wrong_money = post_action(client, conversation, alice_agent, order_id=order.id, currency="EUR")
    assert wrong_money.status_code == 422
    assert post_action(client, conversation, alice_agent, order_id=999_999).status_code == 422
    assert post_action(client, conversation, alice_agent, details={"x": "y" * 10_001}).status_code == 422
    assert post_action(client, conversation, alice_agent, reason="").status_code == 422


def test_audit_log_exports_as_csv(client, conversation, alice_agent, bob_supervisor):
    request = post_action(client, conversation, alice_agent, amount=900_00, note="whole set").json()
    client.post(f"/api/v1/actions/{request['id']}/decline", headers=bob_supervisor.headers)
    assert client.get("/api/v1/audit.csv", headers=alice_agent.headers).status_code == 403
    response = client.get("/api/v1/audit.csv", headers=bob_supervisor.headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(response.text)) if r["action_id"]]
    assert [(r["event"], r["actor_name"]) for r in rows] == [
        ("action.requested", "Alice Agent"),
        ("action.declined", "Bob Supervisor"),
    ]
    assert rows[0]["reason"] == "damaged: whole set"


def test_review_dashboard_sums_spend_by_agent_type_and_reason(client, conversation, alice_agent, bob_supervisor):
    post_action(client, conversation, alice_agent, amount=20_00, reason="damaged")
    post_action(client, conversation, alice_agent, type="store_credit", amount=5_00, reason="late_delivery")
    client.patch(f"/api/v1/conversations/{conversation.id}", json={"status": "resolved"}, headers=alice_agent.headers)
    assert client.get("/api/v1/actions/review", headers=alice_agent.headers).status_code == 403
    review = client.get("/api/v1/actions/review", headers=bob_supervisor.headers).json()
    assert review["by_agent"] == [{"key": "Alice Agent", "currency": "USD", "count": 2, "total": 25_00}]
    assert {r["key"]: r["total"] for r in review["by_type"]} == {"refund": 20_00, "store_credit": 5_00}
    assert {r["key"]: r["total"] for r in review["by_reason"]} == {"damaged": 20_00, "late_delivery": 5_00}
    assert review["resolved_conversations"] == 1 and review["actions_per_resolved_conversation"] == 2.0


def test_a_deactivated_colleague_cannot_take_actions(client, conversation, dave_outsider):
    assert post_action(client, conversation, dave_outsider).status_code == 401


def test_the_audit_log_cannot_be_changed_or_deleted(db, client, conversation, alice_agent):
    post_action(client, conversation, alice_agent, amount=5_00)
    for statement in (update(AuditEntry).values(reason="nothing happened"), delete(AuditEntry)):
        with pytest.raises(DatabaseError, match="append-only"), db.begin_nested():
            db.execute(statement)
    assert db.query(AuditEntry).filter(AuditEntry.action_id.is_not(None)).count() == 2


def test_only_the_agent_who_took_it_or_a_supervisor_reverses(client, db, conversation, alice_agent, bob_supervisor):
    colleague = make_user(db, role=Role.agent, name="Eve Colleague")
    colleague_headers = {"Authorization": f"Bearer {make_token(db, colleague)}"}
    db.commit()
    action = post_action(client, conversation, alice_agent, amount=30_00).json()
    url = f"/api/v1/actions/{action['id']}/reverse"
    assert client.post(url, json={"reason": "mine now"}, headers=colleague_headers).status_code == 403
    assert client.post(url, json={"reason": "duplicate"}, headers=bob_supervisor.headers).status_code == 201
    counter = client.get(f"/api/v1/actions?conversation_id={conversation.id}", headers=alice_agent.headers).json()[0]
    assert client.post(f"/api/v1/actions/{counter['id']}/reverse", json={"reason": "undo"},
                       headers=bob_supervisor.headers).status_code == 409  # fmt: skip


def test_admins_have_no_limits_by_default(client, conversation, carol_admin):
    assert post_action(client, conversation, carol_admin, amount=50_000_00).json()["status"] == "executed"


def test_the_ledger_exports_for_finance_and_text_cannot_become_a_formula(
    client, conversation, alice_agent, bob_supervisor
):
    post_action(client, conversation, alice_agent, amount=12_00, reason='=HYPERLINK("http://x")')
    post_action(client, conversation, alice_agent, type="discount_code", amount=5_00, reason="loyalty")
    assert client.get("/api/v1/ledger.csv", headers=alice_agent.headers).status_code == 403
    rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/ledger.csv", headers=bob_supervisor.headers).text)))
    assert [(r["kind"], r["amount"], r["currency"]) for r in rows] == [("refund", "1200", "USD"),
                                                                       ("discount_code", "500", "USD")]  # fmt: skip
    assert rows[0]["memo"] == '\'=HYPERLINK("http://x")'
    assert rows[1]["code"].startswith("CAPE-")
