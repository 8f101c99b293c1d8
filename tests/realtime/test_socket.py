"""The agents' socket /realtime with the app: who may connect, what they may hear, limits, presence, collisions."""

from __future__ import annotations

import json

import pytest
from starlette.websockets import WebSocketDisconnect

from cape.models import ChannelKind, User
from cape.realtime import presence
from cape.realtime.socket import BURST, MAX_FRAME
from tests.fixtures.factories import make_inbound
from tests.fixtures.web import sign_in

ORIGIN = {"origin": "http://testserver"}


def until(ws, wanted, *, frames: int = 30) -> dict:
    """The first frame that ``wanted`` accepts among the next ``frames``."""
    seen = []
    for _ in range(frames):
        frame = ws.receive_json()
        if wanted(frame):
            return frame
        seen.append(frame)
    raise AssertionError(f"not among {seen}")


def event(event_name: str, **data):
    return lambda f: f.get("event") == event_name and all(f["data"].get(k) == v for k, v in data.items())


def barrier(ws) -> list[dict]:
    """What the socket sent before it answered a ping (all it had to say about earlier frames)."""
    ws.send_json({"type": "ping"})
    frames = []
    while (frame := ws.receive_json()) != {"type": "pong"}:
        frames.append(frame)
    return frames


@pytest.fixture
def conversation_id(db) -> int:
    result = make_inbound(db, email="sam@example.org", subject="Lost parcel")
    db.commit()
    return result.conversation_id


def test_without_a_sign_in_or_from_another_site_the_socket_is_refused(client, alice_agent):
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/realtime", headers=ORIGIN):
        pass
    assert refused.value.code == 1008
    sign_in(client, alice_agent)
    for headers in ({"origin": "https://evil.example"}, {}):  # cross-site websocket hijacking
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/realtime", headers=headers):
            pass
    with client.websocket_connect("/realtime", headers=ORIGIN) as ws:
        assert barrier(ws) == []


def test_an_api_token_opens_the_socket_in_a_header_or_the_query(app, alice_agent):
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:  # no cookie at all
        with anonymous.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
            assert barrier(ws) == []
        with anonymous.websocket_connect(f"/realtime?token={alice_agent.token}") as ws:
            assert barrier(ws) == []
        with pytest.raises(WebSocketDisconnect), anonymous.websocket_connect("/realtime?token=cape_wrong"):
            pass


def test_every_topic_is_checked_against_the_callers_role(client, alice_agent, bob_supervisor, conversation_id):
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
        ws.send_json({"type": "subscribe", "topics": ["inbox", "approvals", f"conversation:{conversation_id}",
                                                      "conversation:999999999", "chat:1", "anything"]})  # fmt: skip
        assert ws.receive_json() == {"type": "subscribed", "topics": ["inbox", f"conversation:{conversation_id}"]}
        refused = ws.receive_json()
        assert refused["type"] == "error" and refused["code"] == "forbidden"
        assert "approvals" in refused["message"] and "chat:1" in refused["message"]
        ws.send_json({"type": "view", "conversation_id": 999999999})
        assert ws.receive_json()["code"] == "forbidden"
    with client.websocket_connect("/realtime", headers=bob_supervisor.headers) as ws:
        ws.send_json({"type": "subscribe", "topics": ["approvals"]})
        assert ws.receive_json() == {"type": "subscribed", "topics": ["approvals"]}


def test_a_client_over_the_limits_is_closed_and_the_server_goes_on(client, alice_agent):
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
        ws.send_text(json.dumps({"type": "ping", "pad": "x" * MAX_FRAME}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1009
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
        for _ in range(BURST * 3):
            ws.send_text('{"type":"nothing"}')
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 1008
    assert client.get("/healthz").status_code == 200
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
        assert barrier(ws) == []


def test_presence_changes_reach_colleagues(client, db, alice_agent, bob_supervisor):
    with client.websocket_connect("/realtime", headers=bob_supervisor.headers) as bob:
        bob.send_json({"type": "subscribe", "topics": ["presence"]})
        until(bob, lambda f: f.get("type") == "subscribed")
        with client.websocket_connect("/realtime", headers=alice_agent.headers) as alice:
            alice_id = alice_agent.user.id
            until(bob, event("presence.changed", user_id=alice_id, status="online"))
            alice.send_json({"type": "presence", "status": "away"})
            until(bob, event("presence.changed", user_id=alice_id, status="away", user_name="Alice Agent"))
            db.expire_all()
            assert presence.presence_of(db.get_one(User, alice_id)) == "away"
            alice.send_json({"type": "presence", "status": "busy"})
            assert until(alice, lambda f: f.get("type") == "error")["code"] == "bad_request"


def test_agents_on_one_conversation_see_each_other_view_type_and_leave(
    client, alice_agent, bob_supervisor, conversation_id
):
    alice_id, bob_id = alice_agent.user.id, bob_supervisor.user.id
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as alice:
        alice.send_json({"type": "view", "conversation_id": conversation_id})
        until(alice, event("viewer.joined", user_id=alice_id))
        with client.websocket_connect("/realtime", headers=bob_supervisor.headers) as bob:
            bob.send_json({"type": "view", "conversation_id": conversation_id})
            until(alice, event("viewer.joined", user_id=bob_id, name="Bob Supervisor"))
            # The newcomer learns who was there first.
            until(bob, event("viewer.joined", user_id=alice_id, again=True))
            alice.send_json({"type": "typing", "conversation_id": conversation_id, "on": True})
            until(bob, event("typing", user_id=alice_id, on=True, name="Alice Agent"))
            # A message in the conversation reaches both the conversation and the inbox.
            bob.send_json({"type": "subscribe", "topics": ["inbox"]})
            until(bob, lambda f: f.get("type") == "subscribed" and f["topics"] == ["inbox"])
            response = client.post(f"/api/v1/conversations/{conversation_id}/replies",
                                   json={"body": "On its way."}, headers=alice_agent.headers)  # fmt: skip
            assert response.status_code == 201
            until(bob, lambda f: f.get("topic") == "inbox" and f["event"] == "message.created")
        # Bob's socket closed: Alice's screen hears that he left.
        until(alice, event("viewer.left", user_id=bob_id))


def test_a_chat_visitor_hears_the_agents_typing_and_reading_but_not_a_note(client, db, alice_agent):
    result = make_inbound(db, email="visitor@example.org", channel=ChannelKind.chat, body="Anyone there?")
    db.commit()
    conversation_id = result.conversation_id
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as alice:
        # What the chat socket relays to the visitor, heard here through the hub.
        hub = client.app.state.hub
        heard = []

        async def listen():
            async with hub.listen(f"chat:{conversation_id}") as listener:
                async for message in listener:
                    heard.append((message.event, message.data))

        task = client.portal.start_task_soon(listen)
        alice.send_json({"type": "view", "conversation_id": conversation_id})
        until(alice, event("viewer.joined", user_id=alice_agent.user.id))
        alice.send_json({"type": "typing", "conversation_id": conversation_id, "on": True, "internal": True})
        alice.send_json({"type": "typing", "conversation_id": conversation_id, "on": True})
        until(alice, event("typing", on=True))
        until(alice, event("typing", on=True))
        barrier(alice)
        task.cancel()
    assert ("seen", {"message_id": result.message_id}) in heard
    assert heard.count(("typing", {"on": True, "agent": {"name": "Alice Agent"}})) == 1


def test_a_socket_that_falls_behind_is_closed_to_come_back_later(client, alice_agent, monkeypatch):
    from cape.realtime import hub as hub_module

    monkeypatch.setattr(hub_module, "LISTENER_QUEUE", 4)
    hub = client.app.state.hub
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:
        ws.send_json({"type": "subscribe", "topics": ["inbox"]})
        until(ws, lambda f: f.get("type") == "subscribed")
        # More than the queue holds, at once (in one turn of the loop, before the socket can send any).
        message = hub_module.Message("inbox", "conversation.updated", {"conversation_id": 1})
        client.portal.call(lambda: [hub.deliver(message) for _ in range(10)])
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_json()
        assert closed.value.code == 1013
    with client.websocket_connect("/realtime", headers=alice_agent.headers) as ws:  # the server goes on
        assert barrier(ws) == []
