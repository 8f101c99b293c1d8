"""Headless Chromium: an agent signs in, opens a conversation, replies; new mail shows up live."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from cape.models import Role
from tests.fixtures.factories import make_inbound, make_token, make_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def agent(live_server):
    with live_server.session_factory() as session:
        user = make_user(session, role=Role.agent, name="Robin Reply", email="robin@example.test",
                         password="robin-password")  # fmt: skip
        token = make_token(session, user)
        result = make_inbound(session, email="tyres@example.org", name="Tyre Customer",
                              subject="Four snow tyres", body="Can I return four snow tyres?")  # fmt: skip
        session.commit()
        return {"email": user.email, "password": "robin-password", "token": token,
                "conversation_id": result.conversation_id}  # fmt: skip


def sign_in(page, live_server, agent):
    page.goto(live_server.url + "/inbox")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Email").fill(agent["email"])
    page.get_by_label("Password").fill(agent["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/inbox"))


def test_agent_signs_in_opens_a_conversation_and_replies(page, live_server, agent):
    sign_in(page, live_server, agent)
    page.get_by_role("link", name="Four snow tyres").click()
    expect(page.get_by_role("heading", name="Four snow tyres")).to_be_visible()
    expect(page.locator(".message.inbound")).to_contain_text("Can I return four snow tyres?")

    page.get_by_placeholder(re.compile("Write a reply")).fill("Of course. Bring them in, we will refund you.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".message.outbound")).to_contain_text("we will refund you")

    # The reply is committed, not just drawn: the API sees it.
    detail = httpx.get(
        f"{live_server.url}/api/v1/conversations/{agent['conversation_id']}",
        headers={"Authorization": f"Bearer {agent['token']}"},
    ).json()
    assert [m["direction"] for m in detail["messages"]] == ["inbound", "outbound"]


def test_the_row_opens_the_conversation_and_the_name_the_customer(page, live_server, agent):
    sign_in(page, live_server, agent)
    conversation_id = agent["conversation_id"]
    row = page.locator(f'tr[data-conversation-id="{conversation_id}"]')
    expect(row.locator("[data-preview]")).to_have_text("Can I return four snow tyres?")
    row.locator("td.waiting").click()  # anywhere on the row
    expect(page).to_have_url(re.compile(rf"/conversations/{conversation_id}$"))

    page.go_back()
    page.keyboard.press("j")
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    row.get_by_role("link", name="Tyre Customer").focus()
    page.keyboard.press("Enter")  # the focused link, not the selected row
    expect(page).to_have_url(re.compile(r"/customers/\d+$"))
    expect(page.get_by_role("heading", name="Tyre Customer")).to_be_visible()

    page.go_back()
    page.keyboard.press("j")
    page.keyboard.press("o")
    expect(page).to_have_url(re.compile(rf"/conversations/{conversation_id}$"))


def test_new_message_appears_in_the_inbox_without_reload(page, live_server, agent):
    sign_in(page, live_server, agent)
    page.evaluate("window.__sameDocument = true")
    response = httpx.post(
        f"{live_server.url}/api/v1/messages/inbound",
        headers={"Authorization": f"Bearer {agent['token']}"},
        json={"channel": "api", "from": {"email": "late@example.org", "name": "Late Larsen"},
              "subject": "Where is my parcel?", "body": "It has been a week."},
    )  # fmt: skip
    assert response.status_code == 201
    expect(page.get_by_role("link", name="Late Larsen")).to_be_visible(timeout=8_000)
    assert page.evaluate("window.__sameDocument") is True  # no navigation happened
