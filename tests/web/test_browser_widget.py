"""Headless Chromium: the chat widget on a shop's page (another origin than Cape's).

The shop is a small HTTP server of its own on another port; Cape serves for real on a loopback
port and is stopped and started again on that port and database.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cape.channels.chat import service as chat
from cape.db import create_session_factory
from cape.models import Conversation, Message, Role
from cape.realtime.hub import publish
from tests.fixtures.browser import start_server
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_token, make_user

pytestmark = pytest.mark.browser

WIDGET = Path(__file__).resolve().parents[2] / "cape" / "web" / "static" / "widget.js"
CLOSED = {"mon": ["00:00", "00:00"]}  # no hour of any day: nobody is there


class RestartableCape:
    """Cape in a thread of this process that can be stopped and started on the same port and database."""

    def __init__(self, settings, session_factory):
        self.settings = settings
        self.session_factory = session_factory
        self.server, self.thread, self.url = start_server(settings)
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def hub(self):
        return self.server.config.app.state.hub

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "Cape did not stop"

    def start(self) -> None:
        self.server, self.thread, _ = start_server(self.settings, port=self.port)


@pytest.fixture(scope="module")
def cape(tmp_path_factory) -> Iterator[RestartableCape]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("widget")) as (settings, engine):
        factory = create_session_factory(engine)
        with factory() as session:
            user = make_user(session, role=Role.agent, name="Robin Reply", email="robin@example.test",
                             password="robin-password")  # fmt: skip
            make_token(session, user)
            secret = settings.resolved_secret_key
            chat.create_chat_channel(session, name="Shop chat", slug="shop", app_secret=secret)
            closed, identity_secret = chat.create_chat_channel(session, name="Boutique", slug="boutique",
                                                               app_secret=secret)  # fmt: skip
            closed.settings = {**closed.settings, "business_hours": CLOSED}
            # A customer the shop knows (she wrote by email before) and is signed in on its site.
            known = make_inbound(session, email="claire@example.org", name="Claire Dubois", body="Ma commande ?")
            butik, _ = chat.create_chat_channel(session, name="Butik", slug="butik", app_secret=secret)
            butik.settings = {
                **butik.settings, "colour": "#aa3300", "position": "left", "business_hours": CLOSED,
                "prechat": {"ask_name": True, "ask_email": True},
                "upload": {"max_bytes": 20_000, "types": ["text/plain", "application/pdf"]},
            }  # fmt: skip
            session.commit()
        server = RestartableCape(settings, factory)
        server.claire = {"customer_id": known.customer_id,
                         "hash": chat.identity_hash(identity_secret, "claire@example.org")}  # fmt: skip
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def api_token(cape) -> str:
    with cape.session_factory() as session:
        user = make_user(session, role=Role.agent, name="Api Agent")
        token = make_token(session, user)
        session.commit()
        return token


def shop_page(src: str, channel: str, *, lang: str | None = "en", in_head: bool = False, head: str = "",
              body: str = "", attributes: str = "") -> str:  # fmt: skip
    tag = f'<script src="{src}" data-channel="{channel}"{attributes}{"" if in_head else " async"}></script>'
    lang_attr = f' lang="{lang}"' if lang else ""
    return (
        f"<!doctype html><html{lang_attr}><head><meta charset='utf-8'><title>Shop</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>{tag if in_head else ''}{head}</head>"
        f"<body><h1>Shop</h1>{body}{'' if in_head else tag}</body></html>"
    )


class Shop:
    """Someone else's website: pages put up by the tests, on a port of their own."""

    def __init__(self):
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self, page, html: str) -> None:
        path = f"/page-{len(self.pages)}.html"
        self.pages[path] = html.encode()
        page.goto(self.url + path)


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    server = Shop()
    yield server
    server.server.shutdown()


def conversation_of(cape, body: str) -> int:
    with cape.session_factory() as session:
        return session.scalar(select(Message.conversation_id).where(Message.body_text == body))


def messages(cape, api_token: str, conversation_id: int) -> list[dict]:
    detail = httpx.get(f"{cape.url}/api/v1/conversations/{conversation_id}",
                       headers={"Authorization": f"Bearer {api_token}"}).json()  # fmt: skip
    return detail["messages"]


def bodies(cape, api_token: str, conversation_id: int) -> list[str]:
    detail = {"messages": messages(cape, api_token, conversation_id)}
    assert {m["channel"] for m in detail["messages"]} == {"chat"}
    return [m["body"] for m in detail["messages"]]


def reply_by_api(cape, api_token: str, conversation_id: int, body: str) -> None:
    response = httpx.post(f"{cape.url}/api/v1/conversations/{conversation_id}/replies",
                          headers={"Authorization": f"Bearer {api_token}"}, json={"body": body})  # fmt: skip
    assert response.status_code == 201, response.text


def first_event(cape, topic: str, event: str):
    """A future: the data of the next ``event`` published on ``topic`` (heard on Cape's own hub)."""
    hub = cape.hub
    subscribed = threading.Event()

    async def listen():
        async with hub.listen(topic) as listener:
            subscribed.set()
            async for message in listener:
                if message.event == event:
                    return message.data

    future = asyncio.run_coroutine_threadsafe(listen(), hub._loop)
    assert subscribed.wait(5)
    return future


# A page that does its worst: styles for every element, a broken JSON before the tag, broken
# fetch and WebSocket after it, keyboard shortcuts, and a button of its own where the chat opens.
HOSTILE_HEAD = """
<script>window.JSON = null;</script>
{tag}
<script>
  window.fetch = function () { return Promise.reject(new Error("no fetch here")); };
  window.WebSocket = function () { throw new Error("no sockets here"); };
  document.addEventListener("keydown", function (e) { document.documentElement.setAttribute("data-shortcut", e.key); });
</script>
<style>
  * { all: unset !important; }
  head, script, style { display: none !important; }
  button, textarea, li, ol, ul, section, div, form { display: none !important; }
  html { font-size: 3px !important; }
  #under { all: revert !important; display: block !important; position: fixed !important;
           right: 40px !important; bottom: 140px !important; width: 220px !important; height: 60px !important; }
</style>
"""


def test_a_visitor_and_an_agent_chat_live_on_a_hostile_page(cape, shop, api_token, browser, page):
    tag = f'<script src="{cape.url}/widget.js" data-channel="chat:shop"></script>'
    under = "<button id='under' onclick=\"this.textContent='clicked'\">Today's offers</button>"
    head = HOSTILE_HEAD.replace("{tag}", tag)
    html = f"<!doctype html><html lang='en'><head>{head}</head><body>{under}</body></html>"
    shop.open(page, html)

    launcher = page.get_by_role("button", name="Chat")
    expect(launcher).to_be_visible()
    page.locator("#under").click()  # the closed widget leaves the page's own button alone
    expect(page.locator("#under")).to_have_text("clicked")

    launcher.click()
    expect(page.get_by_text("Hi! How can we help?")).to_be_visible()
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    box.fill("Hello, has my order shipped?")
    box.press("Shift+Enter")
    box.press_sequentially("It is number 1042.")
    box.press("Enter")
    mine = page.get_by_role("listitem").filter(has_text="has my order shipped")
    expect(mine).to_contain_text("Sent")
    conversation_id = conversation_of(cape, "Hello, has my order shipped?\nIt is number 1042.")
    assert conversation_id

    # The visitor types: the agents' screens hear it.
    typing = first_event(cape, f"conversation:{conversation_id}", "visitor.typing")
    box.press_sequentially("And")
    assert typing.result(timeout=10)["on"] is True

    # An agent in a browser of their own answers on the conversation page.
    agent = browser.new_context(locale="en-GB")
    agent.set_default_timeout(20_000)  # the conversation page is the heaviest the test loads
    desk = agent.new_page()
    desk.goto(cape.url + "/login")
    desk.get_by_label("Email").fill("robin@example.test")
    desk.get_by_label("Password").fill("robin-password")
    desk.get_by_role("button", name="Sign in").click()
    desk.goto(f"{cape.url}/conversations/{conversation_id}")
    expect(desk.get_by_text("has my order shipped")).to_be_visible()
    desk.get_by_placeholder(re.compile("Write a reply")).fill("It left our warehouse this morning.")
    desk.get_by_role("button", name="Send").click()

    reply = page.get_by_role("listitem").filter(has_text="It left our warehouse this morning.")
    expect(reply).to_contain_text("Robin")
    expect(page.get_by_role("dialog")).to_contain_text("Robin")  # who answers, in the header

    # The agent types and reads (as the agents' workspace publishes it): the visitor sees both.
    publish(f"chat:{conversation_id}", "typing", {"on": True, "agent": {"name": "Robin"}})
    expect(page.get_by_text("Robin is typing…")).to_be_visible()
    mine_id = int(mine.get_attribute("data-id"))
    publish(f"chat:{conversation_id}", "seen", {"message_id": mine_id})
    expect(mine).to_contain_text("Seen")

    # The visitor has the reply on screen: it counts as delivered (the widget said "seen").
    def reply_status():
        return [m["delivery_status"] for m in messages(cape, api_token, conversation_id) if m["id"] > mine_id]

    for _ in range(100):  # the receipt is written by the server as it comes: ask until it is there
        if reply_status() == ["delivered"]:
            break
        page.wait_for_timeout(100)
    assert reply_status() == ["delivered"]

    # The visitor writes again; an agent's reply through the API reaches the open widget live.
    box.fill("Thank you!")
    box.press("Enter")
    expect(page.get_by_role("listitem").filter(has_text="Thank you!")).to_contain_text("Sent")
    reply_by_api(cape, api_token, conversation_id, "You're welcome.")
    expect(page.get_by_role("listitem").filter(has_text="You're welcome.")).to_be_visible()
    agent.close()

    # Escape closes the window and gives the focus back to the launcher.
    box.press("Escape")
    expect(box).to_be_hidden()
    expect(launcher).to_be_focused()
    assert page.locator("html").get_attribute("data-shortcut") is None  # no key reached the page's shortcuts


def test_a_restart_loses_nothing_and_duplicates_nothing(cape, shop, api_token, page):
    shop.open(page, shop_page(f"{cape.url}/widget.js", "chat:shop"))
    page.get_by_role("button", name="Chat").click()
    box = page.get_by_role("textbox", name="Message")
    box.fill("Before the restart")
    box.press("Enter")
    items = page.get_by_role("listitem")
    expect(items.filter(has_text="Before the restart")).to_contain_text("Sent")
    conversation_id = conversation_of(cape, "Before the restart")

    cape.stop()
    expect(page.get_by_text("Reconnecting")).to_be_visible()
    box.fill("While Cape is down")
    box.press("Enter")
    expect(items.filter(has_text="While Cape is down")).to_contain_text("Sending")

    cape.start()
    expect(items.filter(has_text="While Cape is down")).to_contain_text("Sent", timeout=30_000)
    reply_by_api(cape, api_token, conversation_id, "Back again.")
    expect(items.filter(has_text="Back again.")).to_be_visible()
    expect(items).to_have_count(3)
    assert bodies(cape, api_token, conversation_id) == ["Before the restart", "While Cape is down", "Back again."]

    # The history comes back with the page.
    page.reload()
    page.get_by_role("button", name="Chat").click()
    expect(items).to_have_count(3)
    expect(items.nth(1)).to_contain_text("While Cape is down")


def test_french_and_danish_and_a_phone(cape, shop, browser):
    # French by the page's lang, in <head>; a customer the site signed in; nobody there: continue by email.
    french = browser.new_context(locale="en-US")
    french.set_default_timeout(10_000)
    page = french.new_page()
    signed = f' data-identity-email="claire@example.org" data-identity-hash="{cape.claire["hash"]}"'
    shop.open(page, shop_page(f"{cape.url}/widget.js", "chat:boutique", lang="fr", in_head=True, attributes=signed))
    page.get_by_role("button", name="Chat en ligne").click()
    box = page.get_by_role("textbox", name="Message")
    box.fill("Bonjour, où en est ma commande ?")
    box.press("Enter")
    expect(page.get_by_role("listitem").filter(has_text="Bonjour")).to_contain_text("Envoyé")
    with cape.session_factory() as session:  # the chat is on the known customer's timeline
        conversation = session.get(Conversation, conversation_of(cape, "Bonjour, où en est ma commande ?"))
        assert conversation.customer_id == cape.claire["customer_id"]
    expect(page.get_by_text("Bonjour ! Comment pouvons-nous vous aider ?")).to_be_visible()
    expect(page.get_by_text("Nous sommes absents pour le moment")).to_be_visible()
    page.get_by_role("button", name="Continuer par e-mail").click()
    page.get_by_role("textbox", name="Votre adresse e-mail").fill("claire@example.org")
    page.get_by_role("button", name="Continuer par e-mail").click()
    expect(page.get_by_text("Merci. Nous vous répondrons à claire@example.org.")).to_be_visible()
    french.close()

    # Danish by the browser's language (the page has none), on a phone, on a page with a strict
    # Content-Security-Policy (no inline styles, Trusted Types); the admin's colour, position,
    # pre-chat and file limits.
    danish = browser.new_context(locale="da-DK", viewport={"width": 390, "height": 800}, has_touch=True,
                                 reduced_motion="reduce")  # fmt: skip
    danish.set_default_timeout(10_000)
    page = danish.new_page()
    socket_url = cape.url.replace("http", "ws")
    policy = f"default-src 'self' {cape.url} {socket_url}; style-src 'self'; require-trusted-types-for 'script'"
    csp = f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    shop.open(page, shop_page(f"{cape.url}/widget.js", "chat:butik", lang=None, head=csp))
    launcher = page.get_by_role("button", name="Chat med os")
    expect(launcher).to_be_visible()
    assert launcher.bounding_box()["x"] < 100  # on the left
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(170, 51, 0)"
    launcher.click()
    window = page.get_by_role("dialog")
    box = window.bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 800)  # the whole screen, unanimated
    page.get_by_role("textbox", name="Dit navn").fill("Mette")
    page.get_by_role("textbox", name="Din e-mailadresse").fill("mette@example.dk")
    page.get_by_role("button", name="Start chatten").click()
    expect(page.get_by_role("textbox", name="Besked")).to_be_focused()

    files = page.locator("input[type=file]")
    files.set_input_files({"name": "stor.pdf", "mimeType": "application/pdf", "buffer": b"%PDF" + b"x" * 30_000})
    expect(page.get_by_role("alert")).to_have_text("stor.pdf er for stor: grænsen er 20 KB.")
    files.set_input_files({"name": "kvittering.txt", "mimeType": "text/plain", "buffer": b"Ordre 1042"})
    expect(page.get_by_role("link", name=re.compile("kvittering.txt"))).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="kvittering.txt")).to_contain_text("Sendt")
    danish.close()


def test_cape_out_of_reach_leaves_the_page_alone(shop, page):
    script = WIDGET.read_text(encoding="utf-8")

    def cape_route(route):
        if route.request.url.endswith("/widget.js"):
            route.fulfill(body=script, content_type="text/javascript")
        else:
            route.abort("connectionrefused")

    page.route("http://cape.invalid/**", cape_route)
    button = ("<button id='corner' style='position:fixed;right:10px;bottom:10px;width:80px;height:80px' "
              "onclick=\"this.textContent='clicked'\">Corner</button>")  # fmt: skip
    with page.expect_request(re.compile(r"/widget/api/config")):
        shop.open(page, shop_page("http://cape.invalid/widget.js", "chat:shop", body=button))
    page.locator("#corner").click()  # where the launcher would be
    expect(page.locator("#corner")).to_have_text("clicked")
    expect(page.locator("cape-chat")).to_have_count(0)
