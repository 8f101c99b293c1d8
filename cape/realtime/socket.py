"""The agents' socket, ``GET /realtime``: the hub's topics for the workspace, collision detection and presence.

Who connects: a browser signed in to the workspace (its session cookie, and an ``Origin`` that is
this host: another site's page cannot open a socket with the agent's cookie), or an API token
(``Authorization: Bearer cape_...`` or ``?token=``). Anyone else is refused before the socket opens.

Frames are JSON text. The client says:

- ``{"type":"subscribe","topics":[...]}`` / ``{"type":"unsubscribe","topics":[...]}``: what to hear;
  every topic is checked (``inbox``, ``presence``, ``conversation:<id>`` of a conversation the
  caller may see, ``approvals`` for supervisors and admins); the answer ``{"type":"subscribed",
  "topics":[...]}`` lists those allowed, and an ``error`` names the refused.
- ``{"type":"view","conversation_id":N}`` / ``{"type":"leave","conversation_id":N}``: the agent has
  the conversation open (or no longer): colleagues hear ``viewer.joined`` / ``viewer.left`` on
  ``conversation:<id>``; for a chat, the visitor gets a read receipt.
- ``{"type":"typing","conversation_id":N,"on":bool,"internal":bool}``: relayed as ``typing`` to
  colleagues, and to the chat visitor unless it is an internal note.
- ``{"type":"presence","status":"online"|"away"}``; ``{"type":"ping"}`` (the heartbeat: ``pong``).

The server sends the hub's messages as ``{"topic","event","data"}``, and ``subscribed``,
``error``, ``pong`` frames. A client that sends frames over ``MAX_FRAME`` bytes is closed with
1009, one that sends faster than ``RATE_PER_S`` (beyond a burst) with 1008, and one that does not
read what it is sent (the hub's ``Overflow``) with 1013: the server goes on serving the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from cape.auth.deps import SESSION_KEY
from cape.auth.service import note_token_use, token_caller, user_id_for_web_session
from cape.db import unit_of_work
from cape.models import Channel, ChannelKind, Conversation, Message, MessageDirection, PresenceStatus, Role, User
from cape.realtime import presence
from cape.realtime.hub import Hub, Overflow

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

MAX_FRAME = 4096  # bytes in one client frame
RATE_PER_S = 20  # frames a second, on average...
BURST = 40  # ...and at most this many at once
MAX_TOPICS = 64  # topics one connection may hear
MAX_VIEWING = 16  # conversations one connection may have open at once

POLICY_VIOLATION, TOO_BIG, TRY_AGAIN = 1008, 1009, 1013


@dataclass(frozen=True)
class Agent:
    id: int
    name: str
    role: Role
    session_key: str | None  # signed in with the cookie: checked again at each heartbeat


@dataclass(frozen=True)
class Viewed:
    """A conversation an agent has open: whether it is a chat (the visitor hears typing and receipts)."""

    is_chat: bool
    last_inbound_id: int | None


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a browser's ``Origin`` is the host it connects to (no cross-site socket with the cookie)."""
    if not origin or not host:
        return False
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


def _authenticate(websocket: WebSocket, factory: sessionmaker[Session]) -> Agent | None:
    """Who opens the socket: an API token's user, or the signed-in browser's (same origin only)."""
    token = websocket.query_params.get("token")
    scheme, _, bearer = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        token = bearer.strip()
    with unit_of_work(factory) as session:
        if token:
            caller = token_caller(session, plain=token)
            if caller is None:
                return None
            if caller.use_unnoted:
                note_token_use(session, token_id=caller.token_id)
            return _agent(session, caller.user_id, None)
        key = websocket.session.get(SESSION_KEY) if "session" in websocket.scope else None
        if not isinstance(key, str) or not same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
            return None
        user_id = user_id_for_web_session(session, key=key)
        return _agent(session, user_id, key) if user_id is not None else None


def _agent(session: Session, user_id: int, key: str | None) -> Agent:
    user = session.get_one(User, user_id)
    return Agent(user.id, user.name, user.role, key)


def _viewed(factory: sessionmaker[Session], conversation_id: int) -> Viewed | None:
    """What the socket needs of a conversation, or None when there is none (agents see every conversation)."""
    with unit_of_work(factory, read_only=True) as session:
        kind = session.scalar(
            select(Channel.kind)
            .join(Conversation, Conversation.channel_id == Channel.id)
            .where(Conversation.id == conversation_id)
        )
        if kind is None:
            return None
        is_chat = kind is ChannelKind.chat
        last = None
        if is_chat:
            last = session.scalar(
                select(func.max(Message.id)).where(
                    Message.conversation_id == conversation_id, Message.direction == MessageDirection.inbound
                )
            )
        return Viewed(is_chat, last)


def _heartbeat(factory: sessionmaker[Session], agent: Agent, status: PresenceStatus | None) -> bool:
    """The agent's workspace is there (and says ``status``); False when its sign-in ended meanwhile."""
    with unit_of_work(factory) as session:
        if agent.session_key is not None and user_id_for_web_session(session, key=agent.session_key) != agent.id:
            return False
        if not session.get_one(User, agent.id).is_active:
            return False
        presence.change(session, user_id=agent.id, status=status)
        return True


class Closed(Exception):
    """The connection is to be closed with ``code``."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass
class Connection:
    websocket: WebSocket
    agent: Agent
    factory: sessionmaker[Session]
    hub: Hub
    subscribed: set[str] = field(default_factory=set)
    viewing: dict[int, Viewed] = field(default_factory=dict)
    typing: set[int] = field(default_factory=set)
    tokens: float = BURST
    refilled_at: float = field(default_factory=time.monotonic)
    touched_at: float = 0.0

    def __post_init__(self):
        self._send_lock = asyncio.Lock()
        self.listener = None

    async def run(self) -> None:
        code, reason = 1000, ""
        async with self.hub.listen() as listener:
            self.listener = listener
            try:
                await self._touch(None)
                tasks = {asyncio.create_task(self._read()), asyncio.create_task(self._write())}
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    for task in tasks:
                        with suppress(asyncio.CancelledError, Exception):
                            await task
                for task in done:
                    error = task.exception()
                    if isinstance(error, Closed):
                        code, reason = error.code, error.reason
                    elif error is not None and not isinstance(error, WebSocketDisconnect):
                        log.warning("realtime connection failed", exc_info=error)
                        code = 1011
            except Closed as closed:
                code, reason = closed.code, closed.reason
            finally:
                # Even when the server cancels the connection (shutting down), colleagues hear it left.
                await asyncio.shield(asyncio.ensure_future(self._leave_all()))
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with suppress(Exception):
                await self.websocket.close(code=code, reason=reason)

    # -- what the client says ----------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(raw) > MAX_FRAME or len(raw.encode()) > MAX_FRAME:
                raise Closed(TOO_BIG, "frame too large")
            self._spend()
            try:
                frame = json.loads(raw)
            except ValueError:
                await self._error("bad_request", "frames are JSON objects")
                continue
            if not isinstance(frame, dict):
                await self._error("bad_request", "frames are JSON objects")
                continue
            await self._dispatch(frame)

    def _spend(self) -> None:
        """The token bucket: ``RATE_PER_S`` frames a second, ``BURST`` at once; beyond, the client goes."""
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.refilled_at) * RATE_PER_S)
        self.refilled_at = now
        if self.tokens < 1:
            raise Closed(POLICY_VIOLATION, "too many frames")
        self.tokens -= 1

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "ping":
            await self._send({"type": "pong"})
            await self._touch(None)
        elif kind in ("subscribe", "unsubscribe"):
            topics = frame.get("topics")
            if not isinstance(topics, list) or not all(isinstance(t, str) and len(t) <= 64 for t in topics):
                await self._error("bad_request", "topics: a list of topic names")
            elif kind == "subscribe":
                await self._subscribe(topics)
            else:
                for topic in topics:
                    self.subscribed.discard(topic)
                    if not self._viewing_topic(topic):
                        self.listener.remove(topic)
        elif kind in ("view", "leave", "typing"):
            conversation_id = frame.get("conversation_id")
            if not isinstance(conversation_id, int) or isinstance(conversation_id, bool) or conversation_id < 1:
                await self._error("bad_request", "conversation_id: a conversation's id")
            elif kind == "view":
                await self._view(conversation_id)
            elif kind == "leave":
                await self._leave(conversation_id)
            else:
                await self._typing(conversation_id, bool(frame.get("on")), internal=bool(frame.get("internal")))
        elif kind == "presence":
            status = frame.get("status")
            if status not in ("online", "away"):
                await self._error("bad_request", "status: online or away")
            else:
                await self._touch(PresenceStatus(status))
        else:
            await self._error("bad_request", "unknown frame type")

    async def _subscribe(self, topics: list[str]) -> None:
        allowed, refused = [], []
        for topic in dict.fromkeys(topics):
            if len(self.listener.topics) + len(allowed) >= MAX_TOPICS and topic not in self.listener.topics:
                refused.append(topic)
            elif await self._may_hear(topic):
                allowed.append(topic)
            else:
                refused.append(topic)
        self.listener.add(*allowed)
        self.subscribed.update(allowed)
        await self._send({"type": "subscribed", "topics": allowed})
        if refused:
            await self._error("forbidden", "not allowed: " + ", ".join(refused))

    async def _may_hear(self, topic: str) -> bool:
        """The role rules of the pages that show the same: every agent sees the inbox and every conversation;
        the approvals queue is for supervisors and admins."""
        if topic in ("inbox", "presence"):
            return True
        if topic == "approvals":
            return self.agent.role.at_least(Role.supervisor)
        name, _, number = topic.partition(":")
        if name == "conversation" and number.isdigit() and len(number) <= 18:
            return await run_in_threadpool(_viewed, self.factory, int(number)) is not None
        return False

    def _viewing_topic(self, topic: str) -> bool:
        name, _, number = topic.partition(":")
        return name == "conversation" and number.isdigit() and int(number) in self.viewing

    async def _view(self, conversation_id: int) -> None:
        if conversation_id not in self.viewing:
            if len(self.viewing) >= MAX_VIEWING:
                await self._error("too_many", "too many conversations open on one connection")
                return
            viewed = await run_in_threadpool(_viewed, self.factory, conversation_id)
            if viewed is None:
                await self._error("forbidden", f"not allowed: conversation:{conversation_id}")
                return
            self.viewing[conversation_id] = viewed
            self.listener.add(f"conversation:{conversation_id}")
        viewed = self.viewing[conversation_id]
        await self._send({"type": "subscribed", "topics": [f"conversation:{conversation_id}"]})
        await self._announce(conversation_id, "viewer.joined")
        if viewed.is_chat and viewed.last_inbound_id is not None:
            await self._publish(f"chat:{conversation_id}", "seen", {"message_id": viewed.last_inbound_id})

    async def _leave(self, conversation_id: int) -> None:
        if self.viewing.pop(conversation_id, None) is None:
            return
        topic = f"conversation:{conversation_id}"
        if topic not in self.subscribed:
            self.listener.remove(topic)
        if conversation_id in self.typing:
            await self._typing(conversation_id, False, internal=False, viewed=True)
        await self._announce(conversation_id, "viewer.left")

    async def _leave_all(self) -> None:
        with suppress(Exception):  # the socket is gone: colleagues' screens also expire what they do not hear again
            for conversation_id in list(self.viewing):
                await self._leave(conversation_id)

    async def _typing(self, conversation_id: int, on: bool, *, internal: bool, viewed: bool = False) -> None:
        if not viewed and conversation_id not in self.viewing:
            await self._error("bad_request", "view the conversation first")
            return
        (self.typing.add if on else self.typing.discard)(conversation_id)
        who = {"user_id": self.agent.id, "name": self.agent.name}
        await self._publish(f"conversation:{conversation_id}", "typing", {**who, "on": on})
        viewed_conversation = self.viewing.get(conversation_id)
        if viewed_conversation is not None and viewed_conversation.is_chat and (not internal or not on):
            await self._publish(f"chat:{conversation_id}", "typing", {"on": on, "agent": {"name": self.agent.name}})

    async def _announce(self, conversation_id: int, event: str, **extra: Any) -> None:
        data = {"user_id": self.agent.id, "name": self.agent.name, **extra}
        await self._publish(f"conversation:{conversation_id}", event, data)

    async def _touch(self, status: PresenceStatus | None) -> None:
        """The heartbeat: the agent is there (at most twice a heartbeat period, unless the status changes);
        colleagues viewing the same conversations hear again that this agent views them."""
        now = time.monotonic()
        if status is None and now - self.touched_at < presence.HEARTBEAT_S / 2:
            return
        self.touched_at = now
        if not await run_in_threadpool(_heartbeat, self.factory, self.agent, status):
            raise Closed(POLICY_VIOLATION, "signed out")
        if status is None:
            for conversation_id in list(self.viewing):
                await self._announce(conversation_id, "viewer.joined", again=True)

    # -- what the client hears ---------------------------------------------------------------

    async def _write(self) -> None:
        try:
            async for message in self.listener:
                await self._react(message.topic, message.event, message.data)
                await self._send({"topic": message.topic, "event": message.event, "data": message.data})
        except Overflow:
            raise Closed(TRY_AGAIN, "too slow: reconnect") from None

    async def _react(self, topic: str, event: str, data: dict[str, Any]) -> None:
        """What this agent's having a conversation open means for others: a newcomer learns that this
        agent is there too, and a chat visitor that their new message was read."""
        name, _, number = topic.partition(":")
        if name != "conversation" or not number.isdigit() or int(number) not in self.viewing:
            return
        conversation_id = int(number)
        if event == "viewer.joined" and data.get("user_id") != self.agent.id and not data.get("again"):
            await self._announce(conversation_id, "viewer.joined", again=True)
        elif event == "message.created" and data.get("direction") == "inbound":
            viewed = self.viewing[conversation_id]
            if viewed.is_chat and isinstance(data.get("message_id"), int):
                self.viewing[conversation_id] = Viewed(True, data["message_id"])
                await self._publish(f"chat:{conversation_id}", "seen", {"message_id": data["message_id"]})

    async def _publish(self, topic: str, event: str, data: dict[str, Any]) -> None:
        # With Redis, a publish is a network call: never on the loop.
        await run_in_threadpool(self.hub.publish, topic, event, data)

    async def _send(self, body: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps(body, separators=(",", ":")))

    async def _error(self, code: str, message: str) -> None:
        await self._send({"type": "error", "code": code, "message": message})


@router.websocket("/realtime")
async def realtime_socket(websocket: WebSocket) -> None:
    factory = websocket.app.state.session_factory
    agent = await run_in_threadpool(_authenticate, websocket, factory)
    if agent is None:
        await websocket.close(code=POLICY_VIOLATION)  # before accepting: the browser gets a 403
        return
    await websocket.accept()
    await Connection(websocket, agent, factory, websocket.app.state.hub).run()
