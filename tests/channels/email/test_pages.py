"""What agents see of email: quoted text collapsed, unparseable mail flagged, files and raw source linked."""

from __future__ import annotations

from cape.channels.email.service import receive_email
from tests.channels.email import corpus


def test_conversation_page_collapses_quotes_and_links_files(db, settings, email_channel, client, alice_agent):
    quoted = receive_email(db, settings=settings, channel=email_channel, raw=corpus.reply_with_quote())
    page = client.get(f"/conversations/{quoted.conversation_id}", headers=alice_agent.headers)
    assert page.status_code == 200
    assert "data-quoted" in page.text and "Thanks, that works." in page.text
    assert f"/api/v1/messages/{quoted.message_id}/raw" in page.text

    nested = receive_email(
        db, settings=settings, channel=email_channel, raw=corpus.nested_with_inline_image_and_attachment()
    )
    page = client.get(f"/conversations/{nested.conversation_id}", headers=alice_agent.headers)
    assert "invoice.pdf" in page.text
    assert 'src="/api/v1/attachments/' in page.text and "cid:" not in page.text

    garbage = receive_email(db, settings=settings, channel=email_channel, raw=corpus.garbage())
    page = client.get(f"/conversations/{garbage.conversation_id}", headers=alice_agent.headers)
    assert "data-unparseable" in page.text


def test_attachment_download(db, settings, email_channel, client, alice_agent):
    nested = receive_email(
        db, settings=settings, channel=email_channel, raw=corpus.nested_with_inline_image_and_attachment()
    )
    files = client.get(f"/api/v1/messages/{nested.message_id}/attachments", headers=alice_agent.headers).json()
    invoice = next(f for f in files if f["filename"] == "invoice.pdf")
    response = client.get(f"/api/v1/attachments/{invoice['id']}", headers=alice_agent.headers)
    assert response.content == b"%PDF-1.4 invoice"
    assert "attachment" in response.headers["content-disposition"]
    assert client.get(f"/api/v1/attachments/{invoice['id']}").status_code == 401

    image = next(f for f in files if f["content_type"] == "image/png")
    shown = client.get(f"/api/v1/attachments/{image['id']}", headers=alice_agent.headers)
    assert shown.headers["content-type"] == "image/png" and shown.headers["content-disposition"].startswith("inline")
