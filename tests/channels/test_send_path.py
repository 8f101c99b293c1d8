"""One send path: every reply is carried by a sender chosen for its conversation, or kept as undeliverable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from cape.channels.email.service import SmtpConfig, create_email_channel, receive_email, set_default_outbound
from cape.channels.integrations.service import set_reply_webhook
from cape.kit.webhooks import verify
from cape.models import Activity, AuditEntry, ChannelKind, Conversation, Message
from tests.fixtures.factories import make_inbound
from tests.fixtures.mailservers import smtp_sink


@pytest.fixture
def sink():
    with smtp_sink() as server:
        yield server


@pytest.fixture
def mailbox(db, settings, sink):
    """An email channel that sends through the test's SMTP sink."""
    channel = create_email_channel(
        db, address="help@example.com", name="Example Help", app_secret=settings.resolved_secret_key,
        smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False),
    )  # fmt: skip
    db.commit()
    return channel


def _reply(client, actor, conversation_id, body="Thank you, we are on it.", **extra):
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/replies", json={"body": body, **extra}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def _message(client, actor, conversation_id, message_id):
    detail = client.get(f"/api/v1/conversations/{conversation_id}", headers=actor.headers).json()
    return next(m for m in detail["messages"] if m["id"] == message_id)


def test_a_contact_form_reply_is_emailed_from_the_default_mailbox_and_the_answer_threads_back(
    db, settings, mailbox, sink, client, alice_agent, job_sessions
):
    set_default_outbound(db, address="help@example.com")
    db.commit()
    form = make_inbound(db, email="olivia@example.org", channel=ChannelKind.web, subject="Snow tyres")
    reply = _reply(client, alice_agent, form.conversation_id)
    assert reply["channel"] == "email" and reply["delivery_status"] in ("queued", "sent")

    email = sink.wait_for(1)[0]
    assert email.rcpt_tos == ["olivia@example.org"]
    assert email.message["From"].addresses[0].addr_spec == "help@example.com"
    assert _message(client, alice_agent, form.conversation_id, reply["id"])["delivery_status"] == "sent"

    answer = (
        f"From: Olivia <olivia@example.org>\r\nTo: {email.message['Reply-To']}\r\nSubject: Re: Snow tyres\r\n"
        f"Message-ID: <answer-1@example.org>\r\nIn-Reply-To: {email.message['Message-ID']}\r\n\r\nThanks!\r\n"
    ).encode()
    filed = receive_email(db, settings=settings, channel=mailbox, raw=answer)
    assert filed.conversation_id == form.conversation_id


def test_without_a_default_mailbox_the_reply_is_kept_undeliverable_and_sent_once_one_is_set(
    db, settings, mailbox, sink, client, alice_agent, carol_admin, job_sessions
):
    form = make_inbound(db, email="piet@example.org", channel=ChannelKind.web)
    page = client.get(f"/conversations/{form.conversation_id}", headers=alice_agent.headers)
    assert 'data-unreachable="no_default_outbound"' in page.text  # the composer warns before sending

    reply = _reply(client, alice_agent, form.conversation_id)
    assert reply["delivery_status"] == "undeliverable"
    assert "default outbound mailbox" in reply["delivery_error"]
    assert sink.received == []

    response = client.put(
        "/api/v1/channels/default-outbound", json={"address": "help@example.com"}, headers=carol_admin.headers
    )
    assert response.status_code == 200 and response.json()["is_default_outbound"] is True
    retried = client.post(f"/api/v1/messages/{reply['id']}/retry", headers=alice_agent.headers)
    assert retried.status_code == 200, retried.text
    assert sink.wait_for(1)[0].rcpt_tos == ["piet@example.org"]
    assert _message(client, alice_agent, form.conversation_id, reply["id"])["delivery_status"] == "sent"
    kinds = db.scalars(select(Activity.kind).where(Activity.conversation_id == form.conversation_id)).all()
    assert "delivery_retried" in kinds
    assert db.scalar(select(AuditEntry).where(AuditEntry.event == "channel.default_outbound_set")) is not None

    again = client.post(f"/api/v1/messages/{reply['id']}/retry", headers=alice_agent.headers)
    assert again.status_code == 409  # sent: nothing to try again


def test_only_an_admin_sets_the_default_mailbox(client, mailbox, alice_agent, bob_supervisor):
    for actor in (alice_agent, bob_supervisor):
        response = client.put(
            "/api/v1/channels/default-outbound", json={"address": "help@example.com"}, headers=actor.headers
        )
        assert response.status_code == 403


def test_an_api_reply_goes_to_the_integrations_signed_webhook(
    db, settings, client, alice_agent, carol_admin, store_server, job_sessions
):
    receiver, url = store_server(["500", "delivered"])
    response = client.put(
        "/api/v1/channels/api/reply-webhook", json={"url": url, "secret": "s" * 20}, headers=carol_admin.headers
    )
    assert response.status_code == 200 and response.json()["secret"] == "s" * 20
    inbound = make_inbound(db, email="noor@example.org", external_id="shop-7")
    reply = _reply(client, alice_agent, inbound.conversation_id, body="Your parcel left today.")

    assert len(receiver.requests) == 2  # a 500, retried with the same key
    request = receiver.requests[-1]
    headers = request["headers"]
    assert headers["Idempotency-Key"] == f"message-{reply['id']}"
    assert verify(
        "s" * 20, timestamp=headers["Cape-Timestamp"], body=request["body"], signature=headers["Cape-Signature"]
    )
    payload = json.loads(request["body"])
    assert payload["event"] == "message.outbound"
    assert payload["message"]["body"] == "Your parcel left today."
    assert payload["message"]["in_reply_to"] == "shop-7"
    assert payload["customer"]["emails"] == ["noor@example.org"]
    assert _message(client, alice_agent, inbound.conversation_id, reply["id"])["delivery_status"] == "delivered"


def test_an_integration_that_refuses_a_reply_marks_it_failed_with_the_reason(
    db, settings, client, alice_agent, store_server, job_sessions
):
    _receiver, url = store_server(["404"])
    set_reply_webhook(db, url=url, secret="t" * 20, app_secret=settings.resolved_secret_key)
    db.commit()
    inbound = make_inbound(db, email="lea@example.org")
    reply = _reply(client, alice_agent, inbound.conversation_id)
    message = _message(client, alice_agent, inbound.conversation_id, reply["id"])
    assert message["delivery_status"] == "failed" and "HTTP 404" in message["delivery_error"]
    page = client.get(f"/conversations/{inbound.conversation_id}", headers=alice_agent.headers)
    assert "data-retry" in page.text and 'data-delivery="failed"' in page.text


def test_an_integration_reports_delivery_later(db, client, alice_agent, store_server, settings, job_sessions):
    _receiver, url = store_server(["done"])
    set_reply_webhook(db, url=url, secret="u" * 20, app_secret=settings.resolved_secret_key)
    db.commit()
    inbound = make_inbound(db, email="ida@example.org")
    reply = _reply(client, alice_agent, inbound.conversation_id)
    assert _message(client, alice_agent, inbound.conversation_id, reply["id"])["delivery_status"] == "sent"
    reported = client.post(
        f"/api/v1/messages/{reply['id']}/delivery", json={"status": "delivered"}, headers=alice_agent.headers
    )
    assert reported.status_code == 200 and reported.json()["delivery_status"] == "delivered"
    bad = client.post(f"/api/v1/messages/{reply['id']}/delivery", json={"status": "sent"}, headers=alice_agent.headers)
    assert bad.status_code == 422


def test_an_api_conversation_without_a_webhook_is_answered_by_email(
    db, mailbox, sink, client, alice_agent, job_sessions
):
    set_default_outbound(db, address="help@example.com")
    db.commit()
    inbound = make_inbound(db, email="sam@example.org")
    reply = _reply(client, alice_agent, inbound.conversation_id)
    assert reply["channel"] == "email"
    assert sink.wait_for(1)[0].rcpt_tos == ["sam@example.org"]


def test_a_customer_no_channel_can_reach_gets_an_undeliverable_reply_with_the_reason(db, client, alice_agent):
    inbound = make_inbound(db, phone="+4512345678", email=None)
    reply = _reply(client, alice_agent, inbound.conversation_id)
    assert reply["delivery_status"] == "undeliverable"
    assert reply["delivery_error"] == "no reply webhook is registered for the API channel"
    note = _reply(client, alice_agent, inbound.conversation_id, internal=True)
    assert note["delivery_status"] is None  # notes are never sent


def test_replies_go_to_the_customer_and_the_copies_the_agent_keeps(
    db, settings, mailbox, sink, client, alice_agent, job_sessions
):
    raw = (
        b"From: Ann <ann@example.org>\r\nTo: help@example.com\r\nCc: bo@example.org, help@example.com\r\n"
        b"Subject: Wedding list\r\nMessage-ID: <cc-1@example.org>\r\n\r\nPlease keep Bo informed.\r\n"
    )
    first = receive_email(db, settings=settings, channel=mailbox, raw=raw)
    page = client.get(f"/conversations/{first.conversation_id}", headers=alice_agent.headers)
    assert 'value="bo@example.org"' in page.text  # offered in the composer, not our own address

    reply = _reply(client, alice_agent, first.conversation_id, cc=["bo@example.org"])
    delivered = sink.wait_for(1)[0]
    assert delivered.rcpt_tos == ["ann@example.org", "bo@example.org"]
    assert delivered.message["Cc"] == "bo@example.org"
    detail = client.get(f"/api/v1/conversations/{first.conversation_id}", headers=alice_agent.headers).json()
    assert detail["cc"] == ["bo@example.org"]

    # Bo answers all: a participant joins the conversation, as Bo.
    bo = (
        "From: Bo <bo@example.org>\r\nTo: help@example.com, ann@example.org\r\nSubject: Re: Wedding list\r\n"
        f"Message-ID: <bo-1@example.org>\r\nIn-Reply-To: {reply['external_id']}\r\n\r\nThanks both.\r\n"
    ).encode()
    joined = receive_email(db, settings=settings, channel=mailbox, raw=bo)
    assert joined.conversation_id == first.conversation_id
    assert joined.customer_id != first.customer_id

    # The next reply still goes to Ann, with Bo in copy.
    _reply(client, alice_agent, first.conversation_id, body="Both noted.")
    assert sink.wait_for(2)[1].rcpt_tos == ["ann@example.org", "bo@example.org"]
    # Copies the agent removes are no longer written to.
    _reply(client, alice_agent, first.conversation_id, body="Just you now.", cc=[])
    assert sink.wait_for(3)[2].rcpt_tos == ["ann@example.org"]


def test_someone_else_answering_a_thread_starts_a_linked_conversation_and_gets_no_reply_there(
    db, settings, mailbox, sink, client, alice_agent, job_sessions
):
    first = receive_email(db, settings=settings, channel=mailbox, raw=_mail("ann@example.org", "<a-1@example.org>"))
    reply = _reply(client, alice_agent, first.conversation_id, body="Your order number is 4711.")
    sink.wait_for(1)
    stranger = _mail("eve@example.net", "<e-1@example.net>", in_reply_to=reply["external_id"])
    filed = receive_email(db, settings=settings, channel=mailbox, raw=stranger)
    assert filed.conversation_id != first.conversation_id
    linked = db.get(Conversation, filed.conversation_id)
    assert linked.customer_id == filed.customer_id and linked.linked_conversation_id == first.conversation_id
    kinds = db.scalars(select(Activity.kind).where(Activity.conversation_id == first.conversation_id)).all()
    assert "linked_conversation_opened" in kinds

    _reply(client, alice_agent, first.conversation_id, body="Anything else, Ann?")
    assert sink.wait_for(2)[1].rcpt_tos == ["ann@example.org"]  # Eve is not written to


def test_only_the_most_recent_fifty_references_are_considered(db, settings, mailbox):
    first = receive_email(db, settings=settings, channel=mailbox, raw=_mail("ann@example.org", "<old@example.org>"))
    references = "<old@example.org> " + " ".join(f"<filler-{n}@example.org>" for n in range(60))
    again = _mail("ann@example.org", "<new@example.org>", references=references)
    filed = receive_email(db, settings=settings, channel=mailbox, raw=again)
    assert filed.conversation_id != first.conversation_id
    assert db.scalar(select(Message.conversation_id).where(Message.external_id == "<new@example.org>")) == (
        filed.conversation_id
    )


def _mail(sender: str, message_id: str, *, in_reply_to: str | None = None, references: str | None = None) -> bytes:
    lines = [f"From: <{sender}>", "To: help@example.com", "Subject: Order", f"Message-ID: {message_id}"]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    return ("\r\n".join([*lines, "", "Hello."]) + "\r\n").encode()


def test_importing_a_channel_registers_no_sender():
    code = (
        "import cape.channels.email.tasks, cape.channels.integrations.tasks\n"
        "from cape.channels import outbound\n"
        "print(sorted(outbound.registered_senders()))\n"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "[]"
