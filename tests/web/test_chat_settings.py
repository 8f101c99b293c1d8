"""The chat widgets on the channels page: added, set up, refused beside the field, the secret shown once."""

from __future__ import annotations

import re

from sqlalchemy import select

from cape.channels.chat import service
from cape.models import AuditEntry, Channel
from tests.fixtures.web import sign_in


def _chat(db) -> Channel:
    db.expire_all()
    return db.scalar(select(Channel).where(Channel.key == "chat:shop"))


def test_an_admin_adds_a_chat_widget_and_sets_it_up(client, db, carol_admin, settings):
    headers = sign_in(client, carol_admin)
    assert "No chat widgets yet." in client.get("/admin/channels").text
    added = client.post("/admin/channels/chat", data={"name": "Shop chat", "slug": "shop"}, headers=headers)
    assert added.status_code == 200
    secret = re.search(r"data-chat-secret>.*?<code[^>]*>([0-9a-f]{64})</code>", added.text, re.S).group(1)
    assert 'data-channel="chat:shop"' in added.text
    assert secret not in client.get("/admin/channels").text  # shown once

    saved = client.post(
        f"/admin/channels/chat/{_chat(db).id}",
        data={"colour": "#AA3300", "greeting_en": "Hello there", "greeting_fr": "", "greeting_da": "Hej med dig",
              "position": "left", "allowed_origins": "https://shop.example\nhttps://www.shop.example/",
              "business_hours": "mon-fri 09:00-17:00, sat 10:00-14:00", "ask_email": "true", "upload_max_mb": "5"},
        headers=headers, follow_redirects=False,
    )  # fmt: skip
    assert saved.status_code == 303
    values = service.widget_settings(_chat(db))
    assert values["colour"] == "#aa3300" and values["position"] == "left"
    assert values["greeting"] == {"en": "Hello there", "fr": service.DEFAULT_GREETING["fr"], "da": "Hej med dig"}
    assert values["allowed_origins"] == ["https://shop.example", "https://www.shop.example"]
    assert values["business_hours"]["fri"] == ["09:00", "17:00"] and "sun" not in values["business_hours"]
    assert values["prechat"] == {"ask_name": False, "ask_email": True}
    assert values["upload"]["max_bytes"] == 5 * 1024 * 1024
    page = client.get("/admin/channels").text
    assert 'value="mon-fri 09:00-17:00' not in page and "mon 09:00-17:00" in page  # shown day by day
    assert db.scalar(select(AuditEntry).where(AuditEntry.event == "channel.updated")) is not None


def test_a_refused_setting_is_explained_beside_its_field_and_what_was_typed_is_kept(client, db, carol_admin, settings):
    carol_admin.user.language = "da"
    db.commit()
    service.create_chat_channel(db, name="Shop chat", slug="shop", app_secret=settings.resolved_secret_key)
    db.commit()
    headers = sign_in(client, carol_admin)
    response = client.post(
        f"/admin/channels/chat/{_chat(db).id}",
        data={"colour": "#112233", "greeting_en": "Hi", "position": "right", "allowed_origins": "shop.example",
              "business_hours": "weekdays 9-5", "upload_max_mb": "500"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 422
    page = response.text
    hours = re.search(r'name="business_hours" value="weekdays 9-5"[^>]*aria-invalid="true" aria-describedby="(\S+)"',
                      page)  # fmt: skip
    assert hours, page
    assert re.search(rf'id="{hours.group(1)}">\s*([^<]+)<', page).group(1).strip().startswith("Dage")
    assert ">shop.example</textarea>" in page and 'name="upload_max_mb" min="1" max="50" value="500"' in page
    assert 'id="allowed_origins-error"' in page and 'id="upload_max_mb-error"' in page
    assert service.widget_settings(_chat(db))["business_hours"] == {}  # nothing saved


def test_a_new_identity_secret_stops_the_old_one(client, db, carol_admin, settings):
    _, old = service.create_chat_channel(db, name="Shop chat", slug="shop", app_secret=settings.resolved_secret_key)
    db.commit()
    headers = sign_in(client, carol_admin)
    response = client.post(f"/admin/channels/chat/{_chat(db).id}/secret", headers=headers)
    new = re.search(r"data-chat-secret>.*?<code[^>]*>([0-9a-f]{64})</code>", response.text, re.S).group(1)
    assert new != old
    claim = {"email": "kim@example.org", "hash": service.identity_hash(old, "kim@example.org")}
    refused = client.post("/widget/api/session", json={"channel": "chat:shop", "identity": claim})
    assert refused.status_code == 422
    claim["hash"] = service.identity_hash(new, "kim@example.org")
    assert client.post("/widget/api/session", json={"channel": "chat:shop", "identity": claim}).status_code == 200


def test_agents_cannot_change_chat_widgets(client, db, alice_agent, settings):
    service.create_chat_channel(db, name="Shop chat", slug="shop", app_secret=settings.resolved_secret_key)
    db.commit()
    headers = sign_in(client, alice_agent)
    response = client.post(f"/admin/channels/chat/{_chat(db).id}/secret", headers=headers)
    assert response.status_code == 403


def test_the_demo_page_embeds_the_widget_in_the_readers_language(client):
    for language, words in (("en", "demo shop page"), ("fr", "boutique de démonstration"), ("da", "demobutik")):
        page = client.get("/widget/demo", headers={"Accept-Language": language}).text
        assert f'<html lang="{language}">' in page and words in page.lower()
        assert '<script src="/widget.js" data-channel="chat:demo" async></script>' in page


def test_widget_js_is_served_as_javascript_when_built(client):
    from cape.channels.chat.api import WIDGET_JS

    response = client.get("/widget.js")
    if WIDGET_JS.exists():
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/javascript")
        assert "max-age" in response.headers["cache-control"]
    else:
        assert response.status_code == 404
