"""Agents' replies leave by SMTP, threaded, and the customer's answer threads back."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from cape.channels.email.service import SmtpConfig, create_email_channel, receive_email
from cape.models import Activity, DeliveryStatus, Identity, Message
from tests.channels.email import corpus
from tests.fixtures.mailservers import smtp_sink


@pytest.fixture
def sink():
    with smtp_sink() as server:
        yield server


@pytest.fixture
def relayed_channel(db, settings, sink):
    channel = create_email_channel(
        db,
        address="help@example.com",
        name="Example Help",
        app_secret=settings.resolved_secret_key,
        smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False),
    )
    db.commit()
    return channel


def _reply(client, actor, conversation_id, body="We have sent a new one."):
    response = client.post(
        f"/api/v1/conversations/{conversation_id}/replies", json={"body": body}, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_reply_is_sent_threaded_and_the_answer_threads_back(
    db, settings, relayed_channel, sink, client, alice_agent, job_sessions
):
    alice_agent.user.signature = "Alice, Example Help"
    db.commit()
    first = receive_email(db, settings=settings, channel=relayed_channel, raw=corpus.reply_with_quote())
    reply = _reply(client, alice_agent, first.conversation_id)
    assert reply["channel"] == "email"

    delivered = sink.wait_for(1)[0]
    email = delivered.message
    assert delivered.rcpt_tos == ["ann@example.org"]
    assert email["In-Reply-To"] == "<quoted@example.org>"
    assert "<quoted@example.org>" in email["References"]
    assert email["Message-ID"] == reply["external_id"]
    assert email["Subject"] == "Re: Plain message 1"
    assert email["Reply-To"].startswith("help+c")
    assert email.get_content_type() == "multipart/alternative"
    text = email.get_body(("plain",)).get_content()
    assert "We have sent a new one." in text and "Alice, Example Help" in text
    assert "> Thanks, that works." in text
    assert "Try turning it off" not in text  # the customer's own quoted history is trimmed
    assert "<blockquote>" in email.get_body(("html",)).get_content()

    detail = client.get(f"/api/v1/conversations/{first.conversation_id}", headers=alice_agent.headers).json()
    assert detail["messages"][-1]["delivery_status"] == "sent"

    answer = corpus._raw(
        "From: ann@example.org",
        "To: help@example.com",
        "Subject: Re: Plain message 1",
        "Message-ID: <answer@example.org>",
        f"In-Reply-To: {email['Message-ID']}",
        "",
        "Got it, thanks!",
    )
    assert receive_email(db, settings=settings, channel=relayed_channel, raw=answer).conversation_id == (
        first.conversation_id
    )
    # A mail client that drops In-Reply-To still threads through the signed Reply-To token.
    by_token = corpus._raw(
        "From: ann@example.org",
        f"To: {email['Reply-To']}",
        "Subject: one more thing",
        "Message-ID: <token@example.org>",
        "",
        "And another question.",
    )
    assert receive_email(db, settings=settings, channel=relayed_channel, raw=by_token).conversation_id == (
        first.conversation_id
    )
    # A forged token does not.
    forged_to = re.sub(r"-[a-z2-7]{10}@", "-aaaaaaaaaa@", email["Reply-To"])
    assert forged_to != email["Reply-To"]
    forged = by_token.replace(b"<token@", b"<forged@").replace(email["Reply-To"].encode(), forged_to.encode())
    assert receive_email(db, settings=settings, channel=relayed_channel, raw=forged).conversation_id != (
        first.conversation_id
    )
    # Our own outbound copy coming back (e.g. via a Bcc to the mailbox) is not a new message.
    again = receive_email(db, settings=settings, channel=relayed_channel, raw=delivered.raw)
    assert not again.created and again.message_id == reply["id"]


def test_temporary_failure_is_retried_later(db, settings, relayed_channel, sink, client, alice_agent, job_sessions):
    sink.refuse_with = [451]
    first = receive_email(db, settings=settings, channel=relayed_channel, raw=corpus.plain(11))
    reply = _reply(client, alice_agent, first.conversation_id)
    message = db.get(Message, reply["id"])
    db.refresh(message)
    assert message.delivery_status is DeliveryStatus.queued
    assert message.delivery_error.startswith("attempt 1 of 6 failed, retrying")


def test_permanent_failure_is_shown_and_marks_the_address(
    db, settings, relayed_channel, sink, client, alice_agent, job_sessions
):
    sink.refuse_with = [550]
    first = receive_email(db, settings=settings, channel=relayed_channel, raw=corpus.plain(12))
    reply = _reply(client, alice_agent, first.conversation_id)
    message = db.get(Message, reply["id"])
    db.refresh(message)
    assert message.delivery_status is DeliveryStatus.failed
    assert "550" in message.delivery_error
    identity = db.scalars(select(Identity).where(Identity.value == "ann@example.org")).one()
    assert identity.failing_reason
    kinds = set(db.scalars(select(Activity.kind).where(Activity.conversation_id == first.conversation_id)))
    assert "delivery_failed" in kinds


def test_bounce_marks_the_sent_message_failed(db, settings, relayed_channel, sink, client, alice_agent, job_sessions):
    first = receive_email(
        db, settings=settings, channel=relayed_channel, raw=corpus.plain(13, sender="gone@example.org")
    )
    reply = _reply(client, alice_agent, first.conversation_id)
    sink.wait_for(1)
    bounce = receive_email(
        db, settings=settings, channel=relayed_channel, raw=corpus.dsn(reply["external_id"], "gone@example.org")
    )
    assert bounce.conversation_id == first.conversation_id
    message = db.get(Message, reply["id"])
    db.refresh(message)
    assert message.delivery_status is DeliveryStatus.failed
    assert message.delivery_error.startswith("bounced")
    assert db.get(Message, bounce.message_id).meta["auto_submitted"] is True


def test_internal_note_is_not_sent(db, settings, relayed_channel, sink, client, alice_agent, job_sessions):
    first = receive_email(db, settings=settings, channel=relayed_channel, raw=corpus.plain(14))
    response = client.post(
        f"/api/v1/conversations/{first.conversation_id}/replies",
        json={"body": "note to self", "internal": True},
        headers=alice_agent.headers,
    )
    assert response.json()["delivery_status"] is None
    assert sink.received == []


def test_credentials_are_encrypted_at_rest(db, settings):
    channel = create_email_channel(
        db,
        address="secure@example.com",
        app_secret=settings.resolved_secret_key,
        smtp=SmtpConfig(host="smtp.example.com", user="u", password="hunter2-very-secret"),
    )
    db.flush()
    assert "hunter2" not in (channel.secrets_encrypted or "")
    assert "hunter2" not in str(channel.settings)


def test_a_reply_whose_send_job_was_lost_is_sent_later(
    db, settings, relayed_channel, sink, client, alice_agent, job_sessions
):
    from datetime import timedelta

    from cape.channels.email.tasks import resend_stalled_email_task
    from cape.kit.clock import utcnow

    sink.refuse_with = [451]  # the first attempt fails; its scheduled retry is "lost"
    first = receive_email(db, settings=settings, channel=relayed_channel, raw=corpus.plain(15))
    reply = _reply(client, alice_agent, first.conversation_id)
    message = db.get(Message, reply["id"])
    resend_stalled_email_task.call_local()
    db.refresh(message)
    assert message.delivery_status is DeliveryStatus.queued  # too recent: its retries may still run

    message.created_at = utcnow() - timedelta(hours=1)
    db.commit()
    resend_stalled_email_task.call_local()
    db.refresh(message)
    assert message.delivery_status is DeliveryStatus.sent
    assert len(sink.received) == 1


def test_a_reply_counts_as_stalled_only_once_all_its_retries_could_have_run():
    from datetime import timedelta

    from cape.channels.email.tasks import stalled_after
    from cape.config import Settings

    assert stalled_after(Settings(email_retry_backoff_s=30)) == timedelta(minutes=30)  # retries: 15.5 minutes
    assert stalled_after(Settings(email_retry_backoff_s=0.1)) == timedelta(minutes=30)
    # Ten-minute backoff: the retries take 310 minutes, so the job counts as lost after 465.
    assert stalled_after(Settings(email_retry_backoff_s=600)) == timedelta(minutes=465)
