"""Headless Chromium: an agent refunds within authority in two clicks; above it a supervisor approves."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import expect

from cape.kit.clock import utcnow
from cape.models import Order, Role
from tests.fixtures.factories import make_inbound, make_token, make_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shop(live_server):
    with live_server.session_factory() as session:
        agent = make_user(session, role=Role.agent, name="Ada Agent", email="ada@example.test", password="ada-password")
        make_user(session, role=Role.supervisor, name="Sam Supervisor", email="sam@example.test",
                  password="sam-password")  # fmt: skip
        token = make_token(session, agent)
        result = make_inbound(session, email="winter@example.org", name="Winter Driver",
                              subject="Snow tyres arrived cut", body="All four tyres arrived with cuts.")  # fmt: skip
        session.add(Order(customer_id=result.customer_id, number="W-7", currency="USD", total_amount=480_00,
                          items=[{"name": "Snow tyre", "quantity": 4}], placed_at=utcnow()))  # fmt: skip
        session.commit()
        return {"token": token, "conversation_id": result.conversation_id}


def sign_in(page, url, email, password):
    page.goto(url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/inbox"))


def actions(live_server, shop):
    return httpx.get(
        f"{live_server.url}/api/v1/actions?conversation_id={shop['conversation_id']}",
        headers={"Authorization": f"Bearer {shop['token']}"},
    ).json()


def test_agent_refunds_within_authority_in_two_clicks(page, live_server, shop):
    sign_in(page, live_server.url, "ada@example.test", "ada-password")
    page.goto(f"{live_server.url}/conversations/{shop['conversation_id']}")
    card = page.locator(".actions-card")
    card.get_by_label("Order").select_option(label="W-7 · $480.00")  # click 1: choose the order
    card.get_by_role("button", name="Take action").click()  # click 2: refund what is left of it
    expect(card.locator("[data-action-notice]")).to_contain_text("$480.00")
    expect(card.locator(".past-actions li").first).to_have_attribute("data-status", "executed")
    assert [(a["type"], a["amount"], a["status"]) for a in actions(live_server, shop)] == [
        ("refund", 480_00, "executed")
    ]


def test_above_authority_a_supervisor_approves(page, browser, live_server, shop):
    sign_in(page, live_server.url, "ada@example.test", "ada-password")
    page.goto(f"{live_server.url}/conversations/{shop['conversation_id']}")
    card = page.locator(".actions-card")
    card.get_by_label("Action", exact=True).select_option("goodwill")
    card.get_by_label("Amount").fill("750")
    card.get_by_label("Note").fill("Missed their winter trip")
    card.get_by_role("button", name="Take action").click()
    expect(card.locator("[data-action-notice]")).to_contain_text("Sent to a supervisor for approval")
    expect(card.locator("[data-action-notice]")).to_have_class(re.compile(r"\bpending\b"))
    request = next(a for a in actions(live_server, shop) if a["type"] == "goodwill")
    assert request["status"] == "pending_approval"

    context = browser.new_context(locale="en-US")
    supervisor = context.new_page()
    try:
        sign_in(supervisor, live_server.url, "sam@example.test", "sam-password")
        supervisor.get_by_role("link", name="Approvals").click()
        row = supervisor.locator(f'tr[data-request-id="{request["id"]}"]')
        expect(row).to_contain_text("Ada Agent")
        expect(row).to_contain_text("Missed their winter trip")
        row.get_by_role("button", name="Approve").click()
        expect(supervisor.get_by_text("Nothing waiting for approval.")).to_be_visible()
    finally:
        context.close()
    approved = next(a for a in actions(live_server, shop) if a["id"] == request["id"])
    assert approved["status"] == "executed" and approved["decided_by"]["name"] == "Sam Supervisor"

    page.reload()  # the agent sees it done in the conversation's history
    expect(page.locator(".activity")).to_contain_text("Sam Supervisor approved a goodwill gesture of $750.00")


def test_the_card_warns_as_the_agent_types_an_amount_beyond_authority(page, live_server, shop):
    with live_server.session_factory() as session:  # a customer of its own: nothing given yet
        result = make_inbound(session, email="frost@example.org", name="Frost Driver", subject="Scraper broke")
        session.add_all([
            Order(customer_id=result.customer_id, number="F-2", currency="USD", total_amount=60_00, placed_at=utcnow()),
            Order(customer_id=result.customer_id, number="F-1", currency="EUR", total_amount=89_00,
                  placed_at=utcnow() - timedelta(days=30)),
        ])  # fmt: skip
        session.commit()
    sign_in(page, live_server.url, "ada@example.test", "ada-password")
    page.goto(f"{live_server.url}/conversations/{result.conversation_id}")
    card = page.locator(".actions-card")
    warning = card.locator("[data-authority-warning]")
    expect(card.get_by_label("Currency")).to_have_value("USD")  # the last order's
    expect(warning).to_be_hidden()
    card.get_by_label("Action", exact=True).select_option("store_credit")
    card.get_by_label("Amount").fill("600")  # above the default agent's $500.00 per action
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Store credit: above your limit of $500.00 per action")
    card.get_by_label("Amount").fill("60")
    expect(warning).to_be_hidden()
    card.get_by_label("Order").select_option(label="F-1 · €89.00")  # choosing an order chooses its currency
    expect(card.get_by_label("Currency")).to_have_value("EUR")
    expect(warning).to_contain_text("Your authority is in USD")
