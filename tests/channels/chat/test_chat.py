"""The chat channel, server side: visitor sessions and tokens, identity verification, messages over a
real websocket through the app, uploads, limits, and replies that reach the widget or go by email."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from starlette.websockets import WebSocketDisconnect

from cape.channels.chat import service
from cape.channels.email.service import SmtpConfig, create_email_channel, set_default_outbound
from cape.kit.clock import utcnow
from cape.models import (
    Attachment,
    ChatVisitor,
    Conversation,
    Customer,
    DeliveryStatus,
    Identity,
    IdentityKind,
    Message,
    PresenceStatus,
    RawSource,
)
from cape.realtime import presence
from tests.fixtures.mailservers import smtp_sink

ORIGIN = "https://shop.example"


@pytest.fixture
def chat(db, settings):
    channel, secret = service.create_chat_channel(
        db, name="Website chat", slug="demo", app_secret=settings.resolved_secret_key
    )
    db.commit()
    return channel, secret


def _session(client, **body) -> dict:
    response = client.post("/widget/api/session", json={"channel": "chat:demo", **body}, headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Origin": ORIGIN}


def _say(ws, body: str, client_id: str | None = None) -> dict:
    """Send a message frame; return the ack (skipping the echo that may come first)."""
    client_id = client_id or uuid.uuid4().hex
    ws.send_text(json.dumps({"type": "message", "client_id": client_id, "body": body}))
    return _next(ws, "ack")


def _next(ws, kind: str) -> dict:
    for _ in range(20):
        frame = ws.receive_json()
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_config_says_offline_without_agents_and_online_with_one(client, chat, db, alice_agent):
    response = client.get("/widget/api/config?channel=chat:demo&lang=fr", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    config = response.json()
    assert config["channel"] == "chat:demo" and config["name"] == "Website chat"
    assert config["greeting"] == service.DEFAULT_GREETING["fr"]
    assert config["online"] is False
    assert config["upload"]["max_bytes"] > 0 and "image/png" in config["upload"]["types"]
    assert response.headers["access-control-allow-origin"] == ORIGIN
    presence.touch(db, user_id=alice_agent.user.id, status=PresenceStatus.online)
    db.commit()
    assert client.get("/widget/api/config?channel=chat:demo").json()["online"] is True
    assert client.get("/widget/api/config?channel=chat:nope").status_code == 404


def test_cors_preflight_and_allowed_origins(client, chat, db):
    preflight = client.options(
        "/widget/api/session",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in preflight.headers
    channel, _ = chat
    channel.settings = {**channel.settings, "allowed_origins": [ORIGIN]}
    db.commit()
    assert client.get("/widget/api/config?channel=chat:demo", headers={"Origin": ORIGIN}).status_code == 200
    refused = client.get("/widget/api/config?channel=chat:demo", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    token = _session(client)["token"]
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(f"/widget/ws?token={token}", headers={"Origin": "https://evil.example"}) as ws,
    ):
        ws.receive_json()


def test_token_lifecycle_and_tampered_token(client, chat, db):
    first = _session(client)
    assert first["conversation_id"] is None and first["messages"] == [] and first["agent"] is None
    again = _session(client, token=first["token"])
    assert (
        service.read_token(client.app.state.settings.resolved_secret_key, again["token"])[1]
        == (service.read_token(client.app.state.settings.resolved_secret_key, first["token"])[1])
    )
    tampered = first["token"][:-2] + ("AA" if not first["token"].endswith("AA") else "BB")
    fresh = _session(client, token=tampered)
    secret = client.app.state.settings.resolved_secret_key
    assert service.read_token(secret, fresh["token"])[1] != service.read_token(secret, first["token"])[1]
    assert client.get("/widget/api/messages", headers=_bearer(tampered)).status_code == 401
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(f"/widget/ws?token={tampered}") as ws:
        ws.receive_json()
    # Page views write nothing: a visitor gets its row when it first writes.
    assert db.scalar(select(func.count()).select_from(ChatVisitor)) == 0


def test_message_is_stored_raw_first_idempotent_and_acked_after_commit(client, chat, db):
    token = _session(client, name="Vera Visitor", email="vera@example.org")["token"]
    with client.websocket_connect(f"/widget/ws?token={token}", headers={"Origin": ORIGIN}) as ws:
        first = _say(ws, "Hello, is my order on its way?", client_id="c-1")
        second = _say(ws, "Hello, is my order on its way?", client_id="c-1")
        assert first["client_id"] == "c-1" and first["message_id"] == second["message_id"]
        ws.send_text(json.dumps({"type": "ping"}))
        assert _next(ws, "pong") == {"type": "pong"}
    db.expire_all()
    messages = list(db.scalars(select(Message)))
    assert len(messages) == 1
    message = messages[0]
    raws = list(db.scalars(select(RawSource).order_by(RawSource.id)))
    assert [r.status.value for r in raws] == ["processed", "duplicate"]
    assert json.loads(raws[0].content) == {"type": "message", "client_id": "c-1",
                                           "body": "Hello, is my order on its way?"}  # fmt: skip
    assert message.raw_source_id == raws[0].id
    assert message.external_id.endswith(":c-1") and message.meta["contact_email"] == "vera@example.org"
    customer = db.get(Customer, message.customer_id)
    assert customer.name == "Vera Visitor"
    kinds = {i.kind for i in db.scalars(select(Identity).where(Identity.customer_id == customer.id))}
    assert kinds == {IdentityKind.chat_visitor}  # the typed email is a contact detail, not an identity
    history = client.get("/widget/api/messages", headers=_bearer(token)).json()["messages"]
    assert [(m["id"], m["client_id"], m["direction"]) for m in history] == [(message.id, "c-1", "inbound")]


def test_typed_email_never_joins_an_existing_customer(client, chat, db):
    from tests.fixtures.factories import make_inbound

    known = make_inbound(db, email="known@example.org", body="An earlier question")
    db.commit()
    token = _session(client, email="known@example.org")["token"]
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        ack = _say(ws, "I am known@example.org, show me my orders")
    message = db.get(Message, ack["message_id"])
    assert message.customer_id != known.customer_id


def test_identity_hash_joins_the_known_customer_and_a_wrong_one_does_not(client, chat, db):
    from tests.fixtures.factories import make_inbound

    _, secret = chat
    known = make_inbound(db, email="known@example.org", body="An earlier question")
    db.commit()
    wrong = client.post(
        "/widget/api/session",
        json={"channel": "chat:demo", "identity": {"email": "known@example.org", "hash": "0" * 64}},
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "identity"
    good_hash = service.identity_hash(secret, "known@example.org")
    started = _session(client, identity={"email": "Known@example.org", "hash": good_hash, "name": "Kim"})
    with client.websocket_connect(f"/widget/ws?token={started['token']}") as ws:
        ack = _say(ws, "Hello again")
    message = db.get(Message, ack["message_id"])
    assert message.customer_id == known.customer_id
    # By external id: a second browser of the same signed-in customer joins the same customer.
    by_id = _session(client, identity={"id": "cust-42", "hash": service.identity_hash(secret, "cust-42")})
    with client.websocket_connect(f"/widget/ws?token={by_id['token']}") as ws:
        first = db.get(Message, _say(ws, "From my laptop")["message_id"])
    other = _session(client, identity={"id": "cust-42", "hash": service.identity_hash(secret, "cust-42")})
    assert other["conversation_id"] == first.conversation_id
    assert [m["body"] for m in other["messages"]] == ["From my laptop"]


def test_agent_reply_reaches_the_visitor_socket_and_notes_never_do(client, chat, db, alice_agent):
    token = _session(client)["token"]
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        ack = _say(ws, "Do you ship to Denmark?")
        conversation_id = db.get(Message, ack["message_id"]).conversation_id
        detail = client.get(f"/api/v1/conversations/{conversation_id}", headers=alice_agent.headers).json()
        assert detail["channel"] == "chat" and detail["messages"][0]["channel"] == "chat"
        note = client.post(
            f"/api/v1/conversations/{conversation_id}/replies",
            json={"body": "internal: check stock", "internal": True},
            headers=alice_agent.headers,
        )
        assert note.status_code == 201
        reply = client.post(f"/api/v1/conversations/{conversation_id}/replies",
                            json={"body": "Yes, in 2 days."}, headers=alice_agent.headers)  # fmt: skip
        assert reply.status_code == 201 and reply.json()["delivery_status"] == "sent"
        frame = _next(ws, "message")
        while frame["message"]["direction"] == "inbound":  # our own message's echo
            frame = _next(ws, "message")
        assert frame["message"]["body"] == "Yes, in 2 days." and frame["message"]["author"]["name"] == "Alice"
        ws.send_text(json.dumps({"type": "seen", "message_id": frame["message"]["id"]}))
        ws.send_text(json.dumps({"type": "ping"}))
        _next(ws, "pong")
    db.expire_all()
    assert db.get(Message, reply.json()["id"]).delivery_status is DeliveryStatus.delivered
    bodies = [m["body"] for m in client.get("/widget/api/messages", headers=_bearer(token)).json()["messages"]]
    assert bodies == ["Do you ship to Denmark?", "Yes, in 2 days."]


def test_a_visitor_never_hears_another_visitors_conversation(client, chat, db, alice_agent):
    one, two = _session(client)["token"], _session(client)["token"]
    with client.websocket_connect(f"/widget/ws?token={one}") as ws_one:
        ack = _say(ws_one, "Visitor one here")
        conversation_one = db.get(Message, ack["message_id"]).conversation_id
        with client.websocket_connect(f"/widget/ws?token={two}") as ws_two:
            ack_two = _say(ws_two, "Visitor two here")
            client.post(f"/api/v1/conversations/{conversation_one}/replies", json={"body": "For one only"},
                        headers=alice_agent.headers)  # fmt: skip
            ws_two.send_text(json.dumps({"type": "ping"}))
            frames = []
            while (frame := ws_two.receive_json())["type"] != "pong":
                frames.append(frame)
            assert all(f.get("message", {}).get("body") != "For one only" for f in frames)
    other = client.get("/widget/api/messages", headers=_bearer(two)).json()["messages"]
    assert [m["id"] for m in other] == [ack_two["message_id"]]


def test_frame_size_and_rate_limits_close_the_socket_and_the_server_lives_on(client, chat):
    token = _session(client)["token"]
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        ws.send_text("x" * (service.MAX_FRAME_BYTES + 1))
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 1009
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        for _ in range(service.RATE_BURST + 5):
            ws.send_text(json.dumps({"type": "typing", "on": True}))
        closed = ws.receive()
        while closed["type"] != "websocket.close":
            closed = ws.receive()
        assert closed["code"] == 1008
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        assert _say(ws, "Still here")["message_id"] > 0


def test_uploads_have_size_and_type_limits(client, chat, db, settings, alice_agent):
    channel, _ = chat
    channel.settings = {**channel.settings, "upload": {"max_bytes": 1000, "types": ["image/png", "text/plain"]}}
    db.commit()
    token = _session(client)["token"]
    too_big = client.post("/widget/api/upload", headers=_bearer(token),
                          files={"file": ("big.png", b"x" * 1001, "image/png")})  # fmt: skip
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    wrong = client.post("/widget/api/upload", headers=_bearer(token),
                        files={"file": ("run.exe", b"MZ", "application/x-msdownload")})  # fmt: skip
    assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "unsupported_type"
    ok = client.post("/widget/api/upload", headers=_bearer(token), data={"client_id": "f-1"},
                     files={"file": ("note.txt", b"my receipt", "text/plain")})  # fmt: skip
    assert ok.status_code == 200, ok.text
    message = ok.json()["message"]
    assert message["client_id"] == "f-1" and message["attachments"][0]["filename"] == "note.txt"
    again = client.post("/widget/api/upload", headers=_bearer(token), data={"client_id": "f-1"},
                        files={"file": ("note.txt", b"my receipt", "text/plain")})  # fmt: skip
    assert again.json()["message"]["id"] == message["id"]
    download = client.get(message["attachments"][0]["url"])
    assert download.status_code == 200 and download.content == b"my receipt"
    stored = db.scalars(select(Attachment).where(Attachment.message_id == message["id"])).one()
    assert stored.size == 10
    # Agents see it in the conversation, like an email's attachment; the raw source is the file.
    listed = client.get(f"/api/v1/messages/{message['id']}/attachments", headers=alice_agent.headers).json()
    assert [(a["filename"], a["size"]) for a in listed] == [("note.txt", 10)]
    raw = client.get(f"/api/v1/messages/{message['id']}/raw", headers=alice_agent.headers)
    assert raw.content == b"my receipt"
    assert client.post("/widget/api/upload", files={"file": ("a.txt", b"a", "text/plain")}).status_code == 401


def test_offline_continue_by_email_and_the_reply_is_emailed(client, chat, db, settings, alice_agent, job_sessions):
    with smtp_sink() as sink:
        create_email_channel(db, address="help@example.com", name="Help", app_secret=settings.resolved_secret_key,
                             smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False))  # fmt: skip
        set_default_outbound(db, address="help@example.com")
        db.commit()
        started = _session(client)
        assert started["online"] is False
        token = started["token"]
        with client.websocket_connect(f"/widget/ws?token={token}") as ws:
            ack = _say(ws, "Are you open on Sunday?")
        answer = client.post("/widget/api/email", json={"email": "Sam@Example.org"}, headers=_bearer(token))
        assert answer.status_code == 200, answer.text
        conversation_id = db.get(Message, ack["message_id"]).conversation_id
        reply = client.post(f"/api/v1/conversations/{conversation_id}/replies", json={"body": "Yes, 10 to 16."},
                            headers=alice_agent.headers)  # fmt: skip
        assert reply.status_code == 201, reply.text
        received = sink.wait_for(1)
        assert received[0].message["To"].addresses[0].addr_spec == "sam@example.org"
        assert "Yes, 10 to 16." in received[0].message.get_body(("plain",)).get_content()
    db.expire_all()
    conversation = db.get(Conversation, conversation_id)
    assert conversation.reply_to == "sam@example.org"
    owner = db.scalar(select(Identity.customer_id).where(Identity.value == "sam@example.org"))
    assert owner == conversation.customer_id


def test_a_reply_to_a_visitor_who_left_goes_by_email_when_email_can_carry_it(
    client, chat, db, settings, alice_agent, job_sessions
):
    token = _session(client, email="gone@example.org")["token"]
    with client.websocket_connect(f"/widget/ws?token={token}") as ws:
        ack = _say(ws, "I have to go, answer me later please")
    conversation_id = db.get(Message, ack["message_id"]).conversation_id
    db.execute(update(ChatVisitor).values(last_seen_at=utcnow() - service.VISITOR_GONE_AFTER - timedelta(minutes=1)))
    db.commit()
    # No mailbox can send yet: the reply waits in the chat for the visitor to come back.
    waiting = client.post(f"/api/v1/conversations/{conversation_id}/replies", json={"body": "First answer"},
                          headers=alice_agent.headers)  # fmt: skip
    assert waiting.json()["delivery_status"] == "sent" and waiting.json()["channel"] == "chat"
    with smtp_sink() as sink:
        create_email_channel(db, address="help@example.com", name="Help", app_secret=settings.resolved_secret_key,
                             smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False))  # fmt: skip
        set_default_outbound(db, address="help@example.com")
        db.commit()
        emailed = client.post(f"/api/v1/conversations/{conversation_id}/replies", json={"body": "Second answer"},
                              headers=alice_agent.headers)  # fmt: skip
        assert emailed.json()["channel"] == "email"
        assert sink.wait_for(1)[0].message["To"].addresses[0].addr_spec == "gone@example.org"
    # The visitor comes back: both answers are in the chat's history.
    bodies = [m["body"] for m in client.get("/widget/api/messages", headers=_bearer(token)).json()["messages"]]
    assert bodies == ["I have to go, answer me later please", "First answer", "Second answer"]
