"""Headless Chromium at a phone's width (390 by 844): every page of the workspace fits the screen,
and the top bar's links are behind a menu that opens and closes from the keyboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from cape.actions.service import take_action
from cape.auth.service import create_team
from cape.channels.chat.service import create_chat_channel
from cape.channels.email.service import create_email_channel
from cape.conversations.service import get_conversation
from cape.insights.heroes import record_hero_moment
from cape.kit.clock import utcnow
from cape.models import ActionType, Order, Role
from tests.fixtures.factories import make_inbound, make_user

pytestmark = pytest.mark.browser

PASSWORD = "phone-admin-password"
# Long words and numbers, as real data has them: nothing may push a page wider than the phone.
LONG_SUBJECT = "Vinterdæk leveret med flænger i alle fire dæk, ordrenummer NS-2026-004711-DK, kvittering vedhæftet"


@pytest.fixture(scope="module")
def workspace(live_server):
    """A conversation with orders, a request waiting for approval, actions to review, a hero moment
    and an email channel: every page has rows to show."""
    with live_server.session_factory() as session:
        admin = make_user(session, role=Role.admin, name="Philippa Phone-Administrator", email="phone@example.test",
                          password=PASSWORD)  # fmt: skip
        make_user(session, role=Role.admin, name="Françoise Administratrice-Téléphone", email="phone.fr@example.test",
                  password=PASSWORD, language="fr")  # fmt: skip
        agent = make_user(session, role=Role.agent, name="Agnete Agent-Andersen")
        result = make_inbound(session, email="maximiliane.schwarzenberg-oppenheimer@example.org",
                              name="Maximiliane Schwarzenberg-Oppenheimer", subject=LONG_SUBJECT,
                              body="Alle fire dæk kom med flænger. " * 20)  # fmt: skip
        order = Order(customer_id=result.customer_id, number="NS-2026-004711-DK", currency="DKK",
                      total_amount=1_249_900, status="partially_refunded", items=[], placed_at=utcnow())  # fmt: skip
        session.add(order)
        session.flush()
        conversation = get_conversation(session, conversation_id=result.conversation_id)
        for amount in (10_00, 9_000_00):  # within the agent's authority, then above it
            take_action(session, conversation=conversation, actor=agent, action_type=ActionType.store_credit,
                        amount=amount, currency="DKK", reason="lost_in_transit", order_id=order.id,
                        note="Pakken forsvandt mellem Kolding og Aarhus")  # fmt: skip
        record_hero_moment(session, conversation=conversation, user=agent, quote="Tusind tak for hjælpen! " * 5)
        create_team(session, name="Reklamationer-vinterdæk-og-sommerdæk-Nordjylland", member_ids=[admin.id, agent.id])
        create_email_channel(session, address="kundeservice-vinterdaek-og-sommerdaek@example.com",
                             name="Kundeservice for vinterdæk og sommerdæk",
                             app_secret=live_server.settings.resolved_secret_key)  # fmt: skip
        create_chat_channel(session, name="Chat om vinterdæk, sommerdæk og helårsdæk til alle biler",
                            slug="vinterdaek-sommerdaek-og-helaarsdaek",
                            app_secret=live_server.settings.resolved_secret_key)  # fmt: skip
        session.commit()
        return {"conversation": f"/conversations/{result.conversation_id}",
                "customer": f"/customers/{result.customer_id}", "admin": admin.email,
                "admin_fr": "phone.fr@example.test"}  # fmt: skip


def _too_wide(page) -> str | None:
    """None when the page fits the window; else its width and the elements that stick out."""
    width, window = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if width <= window:
        return None
    sticking_out = page.evaluate(
        """() => Array.from(document.querySelectorAll("body *"))
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
            .filter((el) => !el.closest("details:not([open])"))
            .slice(-5).map((el) => el.tagName.toLowerCase() + (el.className ? "." + el.className : ""))"""
    )
    return f"{width}px wide in a {window}px window: {sticking_out}"


def _scrolling_tables(page) -> list[str]:
    """Small tables (orders, the review's) that make their reader scroll sideways on a phone."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll(".table-scroll"))
            .filter((el) => el.scrollWidth > el.clientWidth + 1 && !el.querySelector(".stack-on-phone, .inbox-list"))
            .map((el) => (el.querySelector("table").getAttribute("aria-label") || el.innerText.slice(0, 40))
                 + ": " + el.scrollWidth + "px in " + el.clientWidth + "px")"""
    )


def _names_running_over(page) -> list[str]:
    """Cells of a table read as blocks whose column name (two lines in French) is taller than the cell."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll(".stack-on-phone td[data-label]"))
            .filter((td) => parseFloat(getComputedStyle(td, "::before").height) > td.clientHeight + 1)
            .map((td) => td.dataset.label)"""
    )


def _sign_in(page, url: str, email: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/inbox"))


def test_every_page_fits_a_phone(browser, live_server, workspace):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    url = live_server.url
    try:
        wrong = {}
        for path in ("/login", "/contact", "/widget/demo"):
            page.goto(url + path)
            wrong[path] = _too_wide(page)
        _sign_in(page, url, workspace["admin"])
        pages = [
            "/inbox?view=all&status=all", workspace["conversation"], workspace["customer"], "/approvals", "/review",
            "/heroes", "/admin/authority", "/admin/channels", "/admin/settings", "/admin/users", "/admin/teams",
            "/conversations/987654321",
        ]  # fmt: skip
        for path in pages:
            page.goto(url + path)
            wrong[path] = _too_wide(page) or ", ".join(_scrolling_tables(page))
        wrong = {path: problem for path, problem in wrong.items() if problem}
        assert not wrong, f"pages wider than a phone: {wrong}"
    finally:
        context.close()


def test_french_pages_with_tables_fit_a_phone_and_a_failed_request_is_explained_in_french(
    browser, live_server, workspace
):
    """French words are longer than English ones: the tables still fit, and what cape.js says
    when a request fails is French too."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    url = live_server.url
    try:
        _sign_in(page, url, workspace["admin_fr"])
        wrong = {}
        for path in (workspace["conversation"], workspace["customer"], "/approvals", "/review", "/admin/channels"):
            page.goto(url + path)
            wrong[path] = _too_wide(page) or ", ".join(_scrolling_tables(page) + _names_running_over(page))
        wrong = {path: problem for path, problem in wrong.items() if problem}
        assert not wrong, f"French pages that do not fit a phone: {wrong}"
        # A conversation deleted meanwhile: HTMX does not swap the error, cape.js says what happened.
        page.evaluate("""htmx.ajax("POST", "/conversations/987654321/update", {target: "body", swap: "none"})""")
        expect(page.locator("#notice")).to_contain_text("Ceci n'existe plus\u00a0: rechargez la page.")
    finally:
        context.close()


def test_on_a_phone_the_links_are_behind_a_menu(browser, live_server, workspace):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/login")
        page.get_by_label("Email").fill(workspace["admin"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/inbox"))
        settings = page.get_by_role("link", name="Settings")
        expect(settings).to_be_hidden()
        menu = page.locator("summary", has_text="Menu")
        menu.focus()
        page.keyboard.press("Enter")
        expect(settings).to_be_visible()
        page.keyboard.press("Escape")
        expect(settings).to_be_hidden()
        expect(menu).to_be_focused()

        # On a wide screen the links are in the bar, and there is no menu to open.
        page.set_viewport_size({"width": 1280, "height": 900})
        expect(settings).to_be_visible()
        expect(menu).to_be_hidden()
    finally:
        context.close()
