"""Headless Chromium, two agents in two browsers: each sees the other on the conversation, and what arrives, live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cape.models import Role
from tests.fixtures.factories import make_inbound, make_user

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def team(live_server):
    with live_server.session_factory() as session:
        for name in ("Sam", "Robin"):
            email, password = f"{name.lower()}@example.test", "password-" + name
            make_user(session, role=Role.agent, name=name, email=email, password=password)
        conversation_id = make_inbound(session, email="kim@example.org", name="Kim Customer",
                                       subject="Broken zipper", body="The zipper broke.").conversation_id  # fmt: skip
        session.commit()
    return {"conversation_id": conversation_id}


def open_as(browser, live_server, name: str, path: str):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(30_000)  # two browsers at once on a loaded machine
    page = context.new_page()
    page.goto(live_server.url + "/login")
    page.get_by_label("Email").fill(f"{name.lower()}@example.test")
    page.get_by_label("Password").fill("password-" + name)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/inbox"))
    page.goto(live_server.url + path)
    return context, page


def test_two_agents_see_each_other_and_new_messages_without_reload(browser, live_server, team):
    conversation_id = team["conversation_id"]
    path = f"/conversations/{conversation_id}"
    sam_context, sam = open_as(browser, live_server, "Sam", path)
    robin_context, robin = open_as(browser, live_server, "Robin", path)
    try:
        expect(robin.locator("[data-collision]")).to_have_text("Sam is viewing")
        expect(sam.locator("[data-collision]")).to_have_text("Robin is viewing")
        sam.evaluate("window.__sameDocument = true")
        robin.evaluate("window.__sameDocument = true")

        sam.get_by_placeholder(re.compile("Write a reply")).press_sequentially("On it")
        expect(robin.locator("[data-collision]")).to_have_text("Sam is typing…")

        with live_server.session_factory() as session:
            make_inbound(session, email="kim@example.org", conversation_id=conversation_id,
                         body="Also the strap is torn.")  # fmt: skip
            session.commit()
        for page in (sam, robin):
            expect(page.locator(".message.inbound")).to_contain_text(["The zipper broke.", "Also the strap is torn."])
        # What Sam was typing is still there: the composer is not replaced.
        expect(sam.get_by_placeholder(re.compile("Write a reply"))).to_have_value("On it")
        assert sam.evaluate("window.__sameDocument") and robin.evaluate("window.__sameDocument")

        sam_context.close()  # Sam's socket closes: Robin's screen says so at once
        expect(robin.locator("[data-collision]")).to_be_hidden()
    finally:
        robin_context.close()
        if sam_context.pages:
            sam_context.close()
