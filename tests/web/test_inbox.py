"""The inbox's rows: who (a link to the customer), what (subject, priority in words, the customer's
last words), and how long they have waited, coloured by the thresholds an admin sets."""

from __future__ import annotations

import re
from datetime import timedelta

from cape.conversations.service import add_reply, get_conversation, update_conversation
from cape.kit.clock import utcnow
from cape.models import Conversation, Priority
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import sign_in


def _row(page: str, conversation_id: int) -> str:
    found = re.search(rf'<tr data-row[^>]*data-conversation-id="{conversation_id}".*?</tr>', page, re.S)
    assert found, f"no row for conversation {conversation_id}"
    return found.group(0)


def test_a_row_links_the_customer_and_shows_priority_channel_and_the_customers_last_words(client, db, alice_agent):
    first = make_inbound(db, email="olivia@example.org", name="Olivia Bennett", subject="Snow tyres",
                         body="Can I return   four\nsnow tyres?")  # fmt: skip
    later = make_inbound(db, email="olivia@example.org", name="Olivia Bennett", subject="Re: Snow tyres",
                         body="They are\n\nstill in the box.\n\nOlivia",
                         conversation_id=first.conversation_id)  # fmt: skip
    conversation = get_conversation(db, conversation_id=first.conversation_id)
    update_conversation(db, conversation=conversation, actor=alice_agent.user, priority=Priority.urgent)
    add_reply(db, conversation=conversation, author=alice_agent.user, body="Check the stock first", internal=True)
    add_reply(db, conversation=conversation, author=alice_agent.user, body="Of course, bring them in.")
    quiet = make_inbound(db, name="Quiet Quentin", subject="Gloves", body="Do you sell gloves?")
    db.commit()
    assert later.conversation_id == first.conversation_id
    sign_in(client, alice_agent)

    row = _row(client.get("/inbox?status=all").text, first.conversation_id)
    # The name opens the customer; the subject (and the row itself) the conversation.
    assert f'<a href="/customers/{first.customer_id}" data-customer-link>Olivia Bennett</a>' in row
    assert f'href="/conversations/{first.conversation_id}" class="subject-link">Snow tyres</a>' in row
    # Priority in words, not only as a coloured bar; the channel by its label.
    assert 'data-priority="urgent"><span class="visually-hidden">Priority: urgent</span>' in row
    assert ">API</span>" in row
    # The customer's latest message on one line: not the agent's reply, nor the internal note.
    assert '<span class="preview" data-preview>They are still in the box. Olivia</span>' in row
    quiet_row = _row(client.get("/inbox/rows?view=all&status=all").text, quiet.conversation_id)
    assert "Do you sell gloves?" in quiet_row and "data-priority" not in quiet_row  # normal: no badge


def test_a_long_message_is_previewed_by_its_start(client, db, alice_agent):
    result = make_inbound(db, name="Wordy Wendy", subject="Story", body="Once upon a time " * 100)
    db.commit()
    sign_in(client, alice_agent)
    preview = re.search(r"data-preview>([^<]*)<", _row(client.get("/inbox").text, result.conversation_id)).group(1)
    assert preview.startswith("Once upon a time Once") and preview.endswith("…") and len(preview) <= 141


def _waiting_for(db, minutes: dict[str, int]) -> dict[str, int]:
    ids = {}
    for name, waited in minutes.items():
        result = make_inbound(db, name=name, subject=f"Waiting {waited} minutes")
        db.get(Conversation, result.conversation_id).waiting_since = utcnow() - timedelta(minutes=waited)
        ids[name] = result.conversation_id
    db.commit()
    return ids


def _levels(client, ids: dict[str, int]) -> dict[str, str]:
    page = client.get("/inbox").text
    return {name: re.search(r'data-waiting="(\w+)"', _row(page, cid)).group(1) for name, cid in ids.items()}


def test_waiting_turns_amber_then_red_by_the_thresholds_an_admin_sets(client, db, alice_agent, carol_admin):
    ids = _waiting_for(db, {"Ten minutes": 10, "Two hours": 120, "Five hours": 300})
    sign_in(client, alice_agent)
    # By default: amber after an hour, red (late) after four; a fresh wait is neutral.
    assert _levels(client, ids) == {"Ten minutes": "fresh", "Two hours": "warn", "Five hours": "late"}
    page = client.get("/inbox").text
    assert "under 1 hr" in page and "late after 4 hr" in page  # the legend says what the colours mean
    assert 'title="late"' in _row(page, ids["Five hours"])
    assert 'href="/admin/settings"' not in page  # an agent cannot change them

    client.cookies.clear()
    headers = sign_in(client, carol_admin)
    response = client.post("/admin/settings", data={"waiting_warn_minutes": "5", "waiting_late_minutes": "90"},
                           headers=headers, follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    assert _levels(client, ids) == {"Ten minutes": "warn", "Two hours": "late", "Five hours": "late"}
    page = client.get("/inbox").text
    assert "under 5 min" in page and "late after 1 hr 30 min" in page
    assert 'href="/admin/settings"' in page


def test_the_inbox_shows_labels_in_french(client, db, alice_agent):
    result = make_inbound(db, name="Léa Martin", subject="Bottes", body="Bonjour")
    conversation = get_conversation(db, conversation_id=result.conversation_id)
    update_conversation(db, conversation=conversation, actor=alice_agent.user, priority=Priority.high)
    alice_agent.user.language = "fr"
    db.commit()
    sign_in(client, alice_agent)
    row = _row(client.get("/inbox").text, result.conversation_id)
    assert re.search(r'<span class="visually-hidden">Priorité\W+haute</span>', row)
    assert "Bonjour" in row and 'title="récente"' in row
