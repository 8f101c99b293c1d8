"""Every message of the corpus is stored and visible; none raises, none is dropped."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cape.channels.email.parse import parse_email
from cape.channels.email.service import attachment_path, receive_email
from cape.models import Attachment, Identity, Message, RawSource
from tests.channels.email import corpus


@pytest.mark.parametrize("name", sorted(corpus.CORPUS))
def test_parse_never_raises(name):
    parsed = parse_email(corpus.CORPUS[name](), max_attachment_bytes=100_000)
    assert parsed.message_id.startswith("<")
    assert "\x00" not in parsed.body_text


def test_every_corpus_message_is_stored_and_visible(db, settings, email_channel, client, alice_agent):
    settings.email_max_attachment_bytes = 100_000
    results = {}
    for name, build in corpus.CORPUS.items():
        raw = build()
        results[name] = (raw, receive_email(db, settings=settings, channel=email_channel, raw=raw))

    for name, (raw, result) in results.items():
        message = db.get(Message, result.message_id)
        assert message is not None, name
        assert db.get(RawSource, result.raw_source_id).content == raw, name
        response = client.get(f"/api/v1/conversations/{result.conversation_id}", headers=alice_agent.headers)
        assert response.status_code == 200, name
        assert any(m["id"] == result.message_id and m["channel"] == "email" for m in response.json()["messages"])
        downloaded = client.get(f"/api/v1/messages/{result.message_id}/raw", headers=alice_agent.headers)
        assert downloaded.status_code == 200 and downloaded.content == raw, name

    def message(name):
        return db.get(Message, results[name][1].message_id)

    assert message("latin1").body_text.startswith("Hej, min pakke er forsinket. Hilsen Jørgen æøå")
    assert message("latin1").subject == "Forsinket levering æøå"
    assert message("windows1252").body_text == "It\u2019s \u201cquoted\u201d \u20ac100"
    assert message("iso2022jp").body_text == "お問い合わせありがとうございます"
    assert message("iso2022jp").subject == "注文について"
    assert message("rfc2047").subject == "Commande à rembourser vite"
    assert message("eight_bit_headers").subject == "Grüße aus Köln"
    assert "The boundary never matches." in message("broken_boundary").body_text
    assert message("garbage").meta["unparseable"] is True
    assert message("empty").meta["unparseable"] is True
    assert message("auto_reply").meta["auto_submitted"] is True
    assert message("bulk").meta["auto_submitted"] is True
    assert message("plain").meta["auto_submitted"] is False
    html = message("alternative").body_html
    assert "<b>version</b>" in html and "script" not in html and "tracker.example" not in html
    assert message("html_only").body_text == "Only HTML\nsecond"
    # Threading: the quoted reply joins the conversation of the message it answers.
    assert message("reply_with_quote").conversation_id == message("plain").conversation_id

    attachments = {
        a.filename: a
        for a in db.scalars(select(Attachment).where(Attachment.message_id == results["nested"][1].message_id))
    }
    assert attachments["invoice.pdf"].is_stored and not attachments["invoice.pdf"].is_inline
    path = attachment_path(settings.data_dir, attachments["invoice.pdf"].sha256)
    assert path.read_bytes() == b"%PDF-1.4 invoice"
    inline = next(a for a in attachments.values() if a.content_id == "pic1@example.org")
    assert inline.is_inline
    huge = db.scalars(select(Attachment).where(Attachment.message_id == results["huge_attachment"][1].message_id)).one()
    assert huge.size == 300_000 and not huge.is_stored

    # The bounce marks the address as failing and is filed with that customer.
    identity = db.scalars(select(Identity).where(Identity.value == "gone@example.org")).one()
    assert "user unknown" in identity.failing_reason
    assert message("dsn").customer_id == identity.customer_id


def test_same_message_twice_is_one_message(db, settings, email_channel):
    first = receive_email(db, settings=settings, channel=email_channel, raw=corpus.plain(7))
    again = receive_email(db, settings=settings, channel=email_channel, raw=corpus.plain(7))
    assert again.message_id == first.message_id and not again.created
    no_id = corpus.missing_date_and_message_id()
    assert receive_email(db, settings=settings, channel=email_channel, raw=no_id).created
    assert not receive_email(db, settings=settings, channel=email_channel, raw=no_id).created
    count = db.scalar(select(func.count()).select_from(Message).where(Message.channel_id == email_channel.id))
    assert count == 2


def test_sender_identity_is_case_insensitive(db, settings, email_channel):
    first = receive_email(db, settings=settings, channel=email_channel, raw=corpus.plain(1, sender="Ann@Example.org"))
    second = receive_email(db, settings=settings, channel=email_channel, raw=corpus.plain(2, sender="ann@EXAMPLE.ORG"))
    assert first.customer_id == second.customer_id
    assert first.conversation_id != second.conversation_id


def test_raw_download_needs_a_signed_in_user(db, settings, email_channel, client, dave_outsider):
    result = receive_email(db, settings=settings, channel=email_channel, raw=corpus.plain(3))
    assert client.get(f"/api/v1/messages/{result.message_id}/raw").status_code == 401
    assert client.get(f"/api/v1/messages/{result.message_id}/raw", headers=dave_outsider.headers).status_code == 401
