"""The action pages render and act (server side; the browser test drives them for real)."""

from __future__ import annotations

from cape.models import Action, ActionStatus, AuthorityPolicy


def test_the_conversation_page_has_an_actions_card_that_refunds_an_order(client, db, conversation, order, alice_agent):
    page = client.get(f"/conversations/{conversation.id}", headers=alice_agent.headers)
    assert page.status_code == 200
    assert "Take action" in page.text and "T-1001" in page.text
    response = client.post(
        f"/conversations/{conversation.id}/actions",
        data={"type": "refund", "order_id": str(order.id), "amount": "", "currency": "USD", "reason": "damaged"},
        headers=alice_agent.headers,
    )
    assert response.status_code == 200
    assert "data-action-notice" in response.text and "$480.00" in response.text
    action = db.query(Action).one()
    assert (action.amount, action.status, action.order_id) == (480_00, ActionStatus.executed, order.id)


def test_a_typed_amount_is_read_in_minor_units_and_bad_amounts_are_explained(client, db, conversation, alice_agent):
    url = f"/conversations/{conversation.id}/actions"
    form = {"type": "goodwill", "currency": "USD", "reason": "other", "note": "flowers"}
    assert client.post(url, data=form | {"amount": "12,5"}, headers=alice_agent.headers).status_code == 200
    assert db.query(Action).one().amount == 12_50
    bad = client.post(url, data=form | {"amount": "1.005"}, headers=alice_agent.headers)
    assert 'role="alert"' in bad.text and db.query(Action).count() == 1


def test_supervisors_approve_from_the_approvals_page(client, db, conversation, alice_agent, bob_supervisor):
    client.post(
        f"/conversations/{conversation.id}/actions",
        data={"type": "refund", "amount": "900", "currency": "USD", "reason": "damaged"},
        headers=alice_agent.headers,
    )
    action = db.query(Action).one()
    assert action.status is ActionStatus.pending_approval
    assert client.get("/approvals", headers=alice_agent.headers).status_code == 403
    assert "data-pending-count>1<" in client.get("/approvals/count", headers=bob_supervisor.headers).text
    page = client.get("/approvals", headers=bob_supervisor.headers)
    assert page.status_code == 200 and f'data-request-id="{action.id}"' in page.text
    assert "per-action limit" in page.text
    rows = client.post(f"/approvals/{action.id}/approve", headers=bob_supervisor.headers)
    assert rows.status_code == 200 and "Nothing waiting for approval" in rows.text
    decided = rows.text[rows.text.index(f'data-decided-id="{action.id}"') :]
    decided = decided[: decided.index("</tr>")]
    assert "Refund</strong> $900.00" in decided and "Damaged" in decided
    assert "Alice Agent for" in decided and "Approved by Bob Supervisor</strong> · <time" in decided
    db.refresh(action)
    assert action.status is ActionStatus.executed
    assert client.get("/approvals/count", headers=bob_supervisor.headers).text == ""


def test_review_heroes_and_authority_pages(client, db, alice_agent, bob_supervisor, carol_admin):
    assert client.get("/review", headers=bob_supervisor.headers).status_code == 200
    assert client.get("/heroes", headers=alice_agent.headers).status_code == 200
    assert client.get("/admin/authority", headers=bob_supervisor.headers).status_code == 403
    assert client.get("/admin/authority", headers=carol_admin.headers).status_code == 200
    saved = client.post(
        "/admin/authority",
        data={
            "role": "agent",
            "currency": "EUR",
            "per_action.refund": "50",
            "per_customer_30d": "",
            "daily_budget": "200",
        },
        headers=carol_admin.headers,
    )
    assert saved.status_code == 200
    row = db.query(AuthorityPolicy).filter_by(role="agent").one()
    assert (row.currency, row.per_action["refund"], row.per_action["reship"], row.daily_budget) == (
        "EUR",
        50_00,
        None,
        200_00,
    )


def test_every_action_kind_reads_well_in_the_history(client, db, conversation, alice_agent, bob_supervisor):
    def post(amount):
        return client.post(
            f"/api/v1/conversations/{conversation.id}/actions",
            json={"type": "store_credit", "amount": amount, "currency": "USD", "reason": "late_delivery"},
            headers=alice_agent.headers,
        ).json()

    done, approve, decline = post(10_00), post(900_00), post(800_00)
    client.post(f"/api/v1/actions/{approve['id']}/approve", headers=bob_supervisor.headers)
    client.post(f"/api/v1/actions/{decline['id']}/decline", json={"note": "too much"}, headers=bob_supervisor.headers)
    client.post(f"/api/v1/actions/{done['id']}/reverse", json={"reason": "typo"}, headers=alice_agent.headers)
    client.post(
        f"/api/v1/conversations/{conversation.id}/hero-moments",
        json={"user_id": alice_agent.user.id, "quote": "Thank you Alice!"},
        headers=bob_supervisor.headers,
    )
    page = client.get(f"/conversations/{conversation.id}", headers=alice_agent.headers)
    assert page.status_code == 200
    assert "Store credit: <strong>$900.00</strong>" in page.text  # 10 given, 10 reversed, 900 approved
    history = page.text[page.text.index('class="activity"') :]
    for text in (
        "Alice Agent granted store credit of $10.00 (late delivery)",
        "Alice Agent asked for approval of store credit of $900.00 (late delivery)",
        "Bob Supervisor approved store credit of $900.00",
        "Bob Supervisor declined store credit of $800.00: too much",
        "Alice Agent reversed store credit of $10.00",
        "Hero moment for Alice Agent",
    ):
        assert text in history
    customer = client.get(f"/customers/{conversation.customer_id}", headers=alice_agent.headers)
    assert customer.status_code == 200 and "approved store credit of $900.00" in customer.text
