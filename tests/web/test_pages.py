"""Server-rendered pages through the real app: sign-in, inbox, conversation, customer, contact form."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from cape.auth.service import create_team
from cape.auth.throttle import CONTACT_BY_ADDRESS
from cape.conversations.service import get_conversation, update_conversation
from cape.models import Activity, Conversation, Customer, Message, RawSource
from cape.web.conversations import HISTORY_PER_PAGE, MESSAGES_PER_PAGE
from cape.web.customers import CONVERSATIONS_PER_PAGE
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import form_csrf, sign_in


def _link(page: str, marker: str) -> str | None:
    """Where the element marked ``marker`` (a data- attribute) fetches its content from."""
    found = re.search(rf'hx-get="([^"]+)"[^>]*{marker}', page)
    return found.group(1).replace("&amp;", "&") if found else None


def test_pages_send_signed_out_browsers_to_login(client):
    response = client.get("/inbox", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_inbox_lists_open_conversations_with_customer_channel_subject_and_wait(client, db, alice_agent):
    make_inbound(db, name="Olivia Bennett", subject="Snow tyres")
    closed = make_inbound(db, name="Resolved Rita", subject="Done deal")
    db.get(Conversation, closed.conversation_id).status = "resolved"
    db.commit()
    sign_in(client, alice_agent)
    page = client.get("/inbox").text
    assert "Olivia Bennett" in page and "Snow tyres" in page
    assert "Resolved Rita" not in page  # the default view is open conversations
    assert 'class="channel channel-api"' in page
    assert 'data-waiting="fresh"' in page  # just arrived: waiting, not yet late
    rows = client.get("/inbox/rows?view=all&status=resolved").text
    assert "Resolved Rita" in rows and "<html" not in rows  # a fragment for polling


def test_conversation_page_reply_note_assign_and_resolve(client, db, alice_agent):
    result = make_inbound(db, name="Olivia Bennett", subject="Snow tyres", body="Can I return them?")
    headers = sign_in(client, alice_agent)
    url = f"/conversations/{result.conversation_id}"
    page = client.get(url).text
    assert "Can I return them?" in page and "Olivia Bennett" in page

    fragment = client.post(url + "/reply", data={"body": "Yes, of course."}, headers=headers).text
    assert "Yes, of course." in fragment
    client.post(url + "/reply", data={"body": "Check stock", "internal": "true"}, headers=headers)
    client.post(url + "/update", data={"assignee_id": str(alice_agent.user.id), "priority": "high",
                                       "tags": "returns, tyres"}, headers=headers)  # fmt: skip
    done = client.post(url + "/update", data={"status": "resolved"}, headers={**headers, "HX-Request": "true"})
    assert "Reopen" in done.text

    directions = db.scalars(select(Message.direction).where(Message.conversation_id == result.conversation_id)
                            .order_by(Message.id)).all()  # fmt: skip
    assert [d.value for d in directions] == ["inbound", "outbound", "note"]
    db.expire_all()
    conversation = db.get(Conversation, result.conversation_id)
    assert conversation.status.value == "resolved"
    assert conversation.assignee_id == alice_agent.user.id


def test_page_forms_need_the_csrf_token(client, db, alice_agent):
    result = make_inbound(db)
    sign_in(client, alice_agent)
    response = client.post(f"/conversations/{result.conversation_id}/reply", data={"body": "forged"})
    assert response.status_code == 403


def test_customer_page_shows_the_whole_timeline(client, db, alice_agent):
    first = make_inbound(db, email="olivia@example.org", name="Olivia Bennett", body="About my tyres")
    make_inbound(db, email="olivia@example.org", body="And my gift card", subject="Gift card")
    sign_in(client, alice_agent)
    page = client.get(f"/customers/{first.customer_id}").text
    assert "About my tyres" in page and "And my gift card" in page
    assert page.index("About my tyres") < page.index("And my gift card")
    assert "olivia@example.org" in page


def test_conversation_page_shows_the_latest_messages_and_history_then_earlier_ones(client, db, alice_agent):
    first = make_inbound(db, email="olivia@example.org", body="Message #00")
    conversation_id = first.conversation_id
    for n in range(1, MESSAGES_PER_PAGE + 5):
        make_inbound(db, email="olivia@example.org", body=f"Message #{n:02d}", conversation_id=conversation_id)
    for n in range(HISTORY_PER_PAGE + 3):
        db.add(Activity(customer_id=first.customer_id, conversation_id=conversation_id, kind="tags_changed",
                        data={"added": [f"label{n:02d}"], "removed": []}))  # fmt: skip
    db.commit()
    sign_in(client, alice_agent)

    page = client.get(f"/conversations/{conversation_id}").text
    shown = re.findall(r"Message #(\d\d)", page)
    assert shown == [f"{n:02d}" for n in range(5, MESSAGES_PER_PAGE + 5)]  # the latest, oldest first
    assert re.findall(r"\+label(\d\d)", page) == [f"{n:02d}" for n in range(3, HISTORY_PER_PAGE + 3)]
    assert "Show earlier messages" in page and "Show earlier history" in page

    earlier = client.get(_link(page, "data-earlier-messages")).text
    assert re.findall(r"Message #(\d\d)", earlier) == ["00", "01", "02", "03", "04"]
    assert "<html" not in earlier and _link(earlier, "data-earlier-messages") is None  # nothing before
    history = client.get(_link(page, "data-earlier-history")).text
    assert re.findall(r"\+label(\d\d)", history) == ["00", "01", "02"]
    assert "Conversation opened" in history and _link(history, "data-earlier-history") is None


def test_customer_page_pages_its_conversations(client, db, alice_agent):
    total = CONVERSATIONS_PER_PAGE + 4
    results = [make_inbound(db, email="rita@example.org", subject=f"Question {n:02d}") for n in range(total)]
    sign_in(client, alice_agent)
    page = client.get(f"/customers/{results[0].customer_id}").text
    listed = re.findall(r'<li data-conversation-id="(\d+)"', page)
    newest_first = [str(r.conversation_id) for r in reversed(results)]
    assert listed == newest_first[:CONVERSATIONS_PER_PAGE]
    older = client.get(_link(page, "data-older-conversations")).text
    assert re.findall(r'<li data-conversation-id="(\d+)"', older) == newest_first[CONVERSATIONS_PER_PAGE:]
    assert _link(older, "data-older-conversations") is None


def test_inbox_team_view_shows_the_teams_conversations(client, db, alice_agent, bob_supervisor):
    team = create_team(db, name="Returns desk", member_ids=[alice_agent.user.id])
    theirs = make_inbound(db, name="Team Tina", subject="Return label")
    make_inbound(db, name="Other Otto", subject="Invoice copy")
    conversation = get_conversation(db, conversation_id=theirs.conversation_id, with_messages=False)
    update_conversation(db, conversation=conversation, actor=bob_supervisor.user, team_id=team.id)
    db.commit()
    sign_in(client, alice_agent)
    assert "Returns desk" in client.get("/inbox").text  # her teams are offered
    page = client.get("/inbox?view=team").text  # her (first) team
    assert "Team Tina" in page and "Other Otto" not in page
    rows = client.get(f"/inbox/rows?view=team&team={team.id}&status=all").text
    assert "Team Tina" in rows and "Other Otto" not in rows


def test_contact_form_creates_a_conversation(client, db):
    token = form_csrf(client, "/contact")
    response = client.post(
        "/contact",
        data={
            "csrf_token": token,
            "name": "Web Wendy",
            "email": "wendy@example.org",
            "subject": "Opening hours",
            "message": "Are you open on Sunday?",
        },
    )
    assert response.status_code == 200
    assert "Thank you" in response.text
    message = db.scalars(select(Message)).one()
    assert message.body_text == "Are you open on Sunday?"
    raw = db.get(RawSource, message.raw_source_id)
    assert b"Sunday" in raw.content and b"csrf" not in raw.content


def test_contact_form_explains_what_is_missing_and_keeps_the_text(client, db):
    token = form_csrf(client, "/contact")
    response = client.post("/contact", data={"csrf_token": token, "message": "Long message I wrote"})
    assert response.status_code == 422
    assert "Please give an email address" in response.text
    assert "Long message I wrote" in response.text
    assert db.scalars(select(Message)).first() is None


def test_contact_form_silently_drops_bots(client, db):
    token = form_csrf(client, "/contact")
    client.post("/contact", data={"csrf_token": token, "email": "bot@example.org", "message": "Buy",
                                  "website": "http://spam.example"})  # fmt: skip
    assert db.scalars(select(Message)).first() is None


def test_contact_form_floods_from_one_address_are_held_back_keeping_the_text(client, db):
    def send(n: int):
        data = {"csrf_token": form_csrf(client, "/contact"), "email": f"eager{n}@example.org", "message": f"Hello {n}"}
        return client.post("/contact", data=data, headers={"accept-language": "fr"})

    for n in range(CONTACT_BY_ADDRESS.max_hits):
        assert send(n).status_code == 200
    held = send(99)
    assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
    assert "Merci de patienter" in held.text and "Hello 99" in held.text  # in their language, text kept
    assert db.scalar(select(func.count()).select_from(Message)) == CONTACT_BY_ADDRESS.max_hits


def test_pages_speak_the_agents_language(client, db, carol_admin):
    french = client.post("/api/v1/users", json={"email": "amelie@example.test", "name": "Amélie", "role": "agent",
                                                 "password": "mot-de-passe", "language": "fr"},
                         headers=carol_admin.headers)  # fmt: skip
    assert french.status_code == 201
    client.post(
        "/login", data={"email": "amelie@example.test", "password": "mot-de-passe", "csrf_token": form_csrf(client)}
    )
    page = client.get("/inbox").text
    assert 'lang="fr"' in page
    assert "Boîte de réception" in page


def test_contact_form_follows_the_browser_language(client):
    assert "Kontakt os" in client.get("/contact", headers={"accept-language": "da-DK,da;q=0.9"}).text
    assert "Contactez-nous" in client.get("/contact", headers={"accept-language": "fr"}).text
    assert "Contact us" in client.get("/contact", headers={"accept-language": "de"}).text


def test_the_contact_form_keeps_the_customers_language(client, db):
    danish = {"accept-language": "da-DK,da;q=0.9"}
    page = client.get("/contact", headers=danish)
    assert 'name="language" value="da"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    form = {"csrf_token": token, "language": "da", "email": "freja@example.dk", "message": "Hej, hvor er min pakke?"}
    assert client.post("/contact", data=form, headers=danish).status_code == 200
    conversation = db.scalars(select(Conversation)).one()
    assert conversation.language == "da"
    assert db.get(Customer, conversation.customer_id).language == "da"


def test_an_integration_may_say_which_language_the_customer_wrote_in(client, db, alice_agent):
    body = {"from": {"email": "jean@example.fr"}, "body": "Bonjour", "language": "fr"}
    created = client.post("/api/v1/messages/inbound", json=body, headers=alice_agent.headers).json()
    assert db.get(Conversation, created["conversation_id"]).language == "fr"
    body = {"from": {"email": "x@example.org"}, "body": "Hi", "language": "de"}
    assert client.post("/api/v1/messages/inbound", json=body, headers=alice_agent.headers).status_code == 422
