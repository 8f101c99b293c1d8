"""The live workspace's pages: nothing polls, the open conversation's parts come as fragments, the presence switch."""

from __future__ import annotations

import re

from cape.models import User
from cape.realtime import presence
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import sign_in


def test_no_page_polls_and_the_parts_that_change_listen_to_their_topics(client, db, bob_supervisor):
    conversation_id = make_inbound(db, email="pat@example.org").conversation_id
    db.commit()
    headers = sign_in(client, bob_supervisor)
    pages = {path: client.get(path).text for path in ("/inbox", f"/conversations/{conversation_id}", "/approvals")}
    for path, html in pages.items():
        assert not re.search(r'hx-trigger="[^"]*every', html), path
        assert 'data-realtime="/realtime"' in html and 'data-live-topics="approvals"' in html  # the badge
    assert 'data-live-topics="inbox"' in pages["/inbox"]
    assert f'data-live-topics="conversation:{conversation_id}"' in pages[f"/conversations/{conversation_id}"]
    # Without the socket (no JavaScript) the page is whole as it was: the list is in it.
    assert f'data-conversation-id="{conversation_id}"' in pages["/inbox"]

    live = client.get(f"/conversations/{conversation_id}/live", headers={**headers, "hx-request": "true"}).text
    for part in ("thread-head", "thread-messages", "customer-card", "details-card", "actions-card", "history-card"):
        assert re.search(rf'id="{part}"[^>]*hx-swap-oob="true"', live), part
    assert "data-composer" in live and 'id="reply-body"' in live  # sent, but not swapped: no hx-swap-oob on it
    assert not re.search(r"<form[^>]*data-composer[^>]*hx-swap-oob", live)


def test_the_switch_says_online_or_away_and_the_assignee_picker_shows_it(client, db, alice_agent, bob_supervisor):
    conversation_id = make_inbound(db, email="lee@example.org").conversation_id
    db.commit()
    headers = sign_in(client, alice_agent)
    page = client.get("/inbox").text
    assert 'data-presence-status="online"' in page
    switched = client.post("/presence", data={"status": "away"}, headers={**headers, "hx-request": "true"})
    assert switched.status_code == 200 and 'data-presence-status="away"' in switched.text
    db.expire_all()
    assert presence.presence_of(db.get_one(User, alice_agent.user.id)) == "away"
    # Without JavaScript: the form posts and the browser comes back to the page it was on.
    back = client.post("/presence", data={"status": "online", "csrf_token": headers["X-CSRF-Token"]},
                       headers={"referer": "http://testserver/inbox?view=mine"}, follow_redirects=False)  # fmt: skip
    assert back.status_code == 303 and back.headers["location"] == "/inbox?view=mine"
    assert client.post("/presence", data={"status": "busy"}, headers=headers).status_code == 422
    picker = client.get(f"/conversations/{conversation_id}").text
    assert re.search(rf'data-presence-user="{alice_agent.user.id}"[^>]*>Alice Agent · Online<', picker)
    assert re.search(rf'data-presence-user="{bob_supervisor.user.id}"[^>]*>Bob Supervisor · Offline<', picker)
