"""One visitor's websocket: frames in, the conversation's public events out.

A visitor hears only the topic of its own conversation (``chat:<id>``), where the chat sender
publishes agents' replies and the agents' workspace publishes typing and read receipts. Frames
are limited in size and rate per connection; a client past the limits is closed (1009, 1008),
the server carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial

import anyio
from anyio import ClosedResourceError
from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from cape.channels.base import InboundMessage
from cape.channels.chat import service
from cape.channels.chat.sender import chat_topic
from cape.channels.email.service import attachments_by_message
from cape.kit.errors import CapeError, InvalidInput, NotAuthenticated
from cape.models import Channel, ChatVisitor, Message, User
from cape.realtime.hub import Overflow, publish

log = logging.getLogger(__name__)

# Close codes (RFC 6455): policy violation (rate, origin, token), message too big, try again later.
POLICY_VIOLATION = 1008
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013

Build = Callable[[Session, ChatVisitor, int | None], InboundMessage]


def origin_allowed(channel: Channel, origin: str | None) -> bool:
    """Whether a page of ``origin`` may use the channel (any when it lists none; no Origin: not a browser)."""
    allowed = service.widget_settings(channel)["allowed_origins"]
    if not allowed or origin is None:
        return True
    return origin.rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}


class RateLimit:
    """A token bucket: ``burst`` frames at once, refilled at ``per_s``."""

    def __init__(self, burst: int = service.RATE_BURST, per_s: float = service.RATE_PER_S):
        self.burst, self.per_s = burst, per_s
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class VisitorConnection:
    def __init__(self, app, *, visitor: ChatVisitor, channel: Channel, websocket: WebSocket | None = None):
        self.app = app
        self.visitor_id = visitor.visitor_id
        self.language = visitor.language
        self.channel_id = channel.id
        self.conversation_id = visitor.conversation_id
        self.websocket = websocket
        self.listener = None
        self._send_lock = asyncio.Lock()
        self._rate = RateLimit()
        self._touched = 0.0
        self._last_message_id = 0

    @classmethod
    def for_request(cls, app, *, visitor: ChatVisitor, channel: Channel) -> VisitorConnection:
        """For an HTTP request of the visitor (an upload): files like the socket, without one."""
        return cls(app, visitor=visitor, channel=channel)

    @classmethod
    async def open(cls, websocket: WebSocket, *, token: str) -> VisitorConnection | None:
        """Accept the socket of a valid visitor token from an allowed origin; else close it (1008)."""
        app = websocket.app
        try:
            visitor, channel = await run_in_threadpool(_load, app, token)
        except NotAuthenticated:
            await websocket.close(code=POLICY_VIOLATION)
            return None
        if not channel.is_active or not origin_allowed(channel, websocket.headers.get("origin")):
            await websocket.close(code=POLICY_VIOLATION)
            return None
        await websocket.accept()
        return cls(app, visitor=visitor, channel=channel, websocket=websocket)

    # -- the connection's life ----------------------------------------------------------------

    async def run(self) -> None:
        topics = [chat_topic(self.conversation_id)] if self.conversation_id else []
        async with self.app.state.hub.listen(*topics) as listener:
            self.listener = listener
            await self._touch()
            with suppress(WebSocketDisconnect, ClosedResourceError):  # the visitor left: nothing to do
                async with anyio.create_task_group() as group:

                    async def until_done(part: Callable[[], Awaitable[None]]) -> None:
                        await part()
                        group.cancel_scope.cancel()  # one side ended: the connection is over

                    group.start_soon(until_done, self._read)
                    group.start_soon(until_done, lambda: self._relay(listener))
        # The moment the visitor left, noted even while the server cancels this task (the
        # client is gone, or the server is stopping).
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(self._in_session, _touch_visitor)

    async def _read(self) -> None:
        assert self.websocket is not None
        while True:
            frame = await self.websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None and frame.get("bytes") is not None:
                text = frame["bytes"].decode("utf-8", "replace")
            if text is None:
                continue
            if len(text) > service.MAX_FRAME_BYTES or len(text.encode()) > service.MAX_FRAME_BYTES:
                await self._close(TOO_BIG)
                return
            if not self._rate.take():
                await self._close(POLICY_VIOLATION)
                return
            try:
                data = json.loads(text)
            except ValueError:
                await self._send({"type": "error", "code": "bad_frame", "message": "frames are JSON objects"})
                continue
            if not isinstance(data, dict):
                await self._send({"type": "error", "code": "bad_frame", "message": "frames are JSON objects"})
                continue
            await self._handle(data, text)
            await self._touch()

    async def _handle(self, data: dict, text: str) -> None:
        kind = data.get("type")
        if kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "message":
            await self._message(data, text)
        elif kind == "typing":
            if self.conversation_id is not None:
                publish(f"conversation:{self.conversation_id}", "visitor.typing",
                        {"conversation_id": self.conversation_id, "on": bool(data.get("on"))})  # fmt: skip
        elif kind == "seen":
            message_id = data.get("message_id")
            if isinstance(message_id, int) and not isinstance(message_id, bool):
                await run_in_threadpool(self._in_session, partial(_mark_seen, message_id=message_id))
        else:
            await self._send({"type": "error", "code": "unknown_type", "message": "unknown frame type"})

    async def _message(self, data: dict, text: str) -> None:
        client_id = data.get("client_id")
        try:
            client_id = service.valid_client_id(client_id)
            body = data.get("body")
            if not isinstance(body, str) or not body.strip():
                raise InvalidInput("body", "must not be empty")
            if len(body) > service.MAX_BODY_CHARS:
                raise InvalidInput("body", f"at most {service.MAX_BODY_CHARS} characters")
        except InvalidInput as exc:
            await self._send({"type": "error", "code": "invalid_input", "message": exc.message,
                              "client_id": client_id if isinstance(client_id, str) else None})  # fmt: skip
            return
        raw = text.encode()
        channel_id = self.channel_id

        def build(session: Session, visitor: ChatVisitor, conversation_id: int | None) -> InboundMessage:
            channel = session.get_one(Channel, channel_id)
            return service.inbound_text(
                channel=channel, visitor=visitor, client_id=client_id, body=body, raw=raw,
                conversation_id=conversation_id,
            )  # fmt: skip

        try:
            payload, message_id = await self.file(build)
        except CapeError as exc:
            await self._send({"type": "error", "code": exc.code, "message": exc.message, "client_id": client_id})
            return
        await self._send({"type": "ack", "client_id": client_id, "message_id": message_id})
        if payload is not None:  # sent before: this socket may have missed it, the others have it
            await self._send({"type": "message", "message": payload})

    # -- filing -------------------------------------------------------------------------------

    async def file_inbound(self, build: Build) -> dict:
        """File a message of the visitor (an upload); its payload, published to the visitor's sockets."""
        payload, _ = await self.file(build)
        if payload is None:
            payload = await run_in_threadpool(self._payload_of_last)
        return payload

    async def file(self, build: Build) -> tuple[dict | None, int]:
        """Ingest through the inbound queue (committed before it returns), then publish the new
        message to the visitor's sockets. Returns (payload for this caller when the message was
        there before, else None; message id)."""
        visitor_id, channel_id, language = self.visitor_id, self.channel_id, self.language

        def prepare(session: Session) -> InboundMessage:
            # Made with the first message, in the transaction that files it.
            visitor = service.visitor_row(session, channel_id=channel_id, visitor_id=visitor_id, language=language)
            return build(session, visitor, service.conversation_for_visitor(session, visitor=visitor))

        result = await self.app.state.inbound_queue.ingest(prepare)
        payload = await run_in_threadpool(self._after_filed, result.customer_id, result.conversation_id,
                                          result.message_id)  # fmt: skip
        if self.conversation_id != result.conversation_id:
            if self.listener is not None:
                if self.conversation_id is not None:
                    self.listener.remove(chat_topic(self.conversation_id))
                self.listener.add(chat_topic(result.conversation_id))
            self.conversation_id = result.conversation_id
        self._last_message_id = result.message_id
        if result.created:
            publish(chat_topic(result.conversation_id), "message", payload)
            return None, result.message_id
        return payload, result.message_id

    def _after_filed(self, customer_id: int, conversation_id: int, message_id: int) -> dict:
        with self.app.state.session_factory() as session:
            service.note_filed(session, visitor_id=self.visitor_id, customer_id=customer_id,
                               conversation_id=conversation_id)  # fmt: skip
            session.commit()
            return _payload(session, message_id, self.app.state.settings.resolved_secret_key)

    def _payload_of_last(self) -> dict:
        with self.app.state.session_factory() as session:
            return _payload(session, self._last_message_id, self.app.state.settings.resolved_secret_key)

    def _in_session(self, work: Callable[[Session, ChatVisitor], object]) -> object:
        with self.app.state.session_factory() as session:
            visitor = session.scalar(select(ChatVisitor).where(ChatVisitor.visitor_id == self.visitor_id))
            result = work(session, visitor) if visitor is not None else None
            session.commit()
            return result

    # -- out ----------------------------------------------------------------------------------

    async def _relay(self, listener) -> None:
        while True:
            message = None
            try:
                with anyio.move_on_after(service.SEEN_EVERY_S):
                    message = await listener.get()
            except Overflow:
                await self._close(TRY_AGAIN_LATER)
                return
            if message is None:  # quiet for a while: the visitor is still here
                await self._touch()
                continue
            data = message.data
            if message.event == "message":
                await self._send({"type": "message", "message": data})
            elif message.event == "typing":
                await self._send({"type": "typing", "on": bool(data.get("on")), "agent": data.get("agent")})
            elif message.event == "seen":
                await self._send({"type": "seen", "message_id": data.get("message_id")})

    async def _send(self, frame: dict) -> None:
        assert self.websocket is not None
        async with self._send_lock:
            if self.websocket.application_state is not WebSocketState.CONNECTED:
                # Closed by this side meanwhile (a limit, the hub): the connection is over.
                raise WebSocketDisconnect(code=1000)
            await self.websocket.send_text(json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def _close(self, code: int) -> None:
        assert self.websocket is not None
        async with self._send_lock:
            with suppress(Exception):
                await self.websocket.close(code=code)

    async def _touch(self, *, force: bool = False) -> None:
        """Note that the visitor is here (at most every ``SEEN_EVERY_S``, unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._touched < service.SEEN_EVERY_S:
            return
        self._touched = now
        await run_in_threadpool(self._in_session, _touch_visitor)


def _mark_seen(session: Session, visitor: ChatVisitor, *, message_id: int) -> None:
    service.mark_seen(session, visitor=visitor, message_id=message_id)


def _touch_visitor(session: Session, visitor: ChatVisitor) -> None:
    service.touch_visitor(session, visitor_id=visitor.visitor_id)


def _load(app, token: str) -> tuple[ChatVisitor, Channel]:
    with app.state.session_factory() as session:
        visitor = service.visitor_for_token(session, token=token, app_secret=app.state.settings.resolved_secret_key)
        channel = session.get_one(Channel, visitor.channel_id)
        session.expunge_all()
        return visitor, channel


def _payload(session: Session, message_id: int, app_secret: str) -> dict:
    message = session.get_one(Message, message_id)
    author = session.get(User, message.author_user_id) if message.author_user_id else None
    attachments = attachments_by_message(session, message_ids=[message_id]).get(message_id, [])
    return service.message_payload(message, author=author, attachments=attachments, app_secret=app_secret)
