"""The hub: topics that connections listen to, and a publish that reaches them from any thread or process.

A message is published on a *topic* ("inbox", "conversation:42", ...) with an *event* name and a
JSON-able ``data`` dict. Each web process runs one hub on its event loop; every websocket
connection of that process listens through it to the topics its owner may see (the endpoint
decides which: the hub checks nothing).

Without Redis the hub is the whole story: ``publish`` hands the message to the loop, which gives it
to this process's listeners. With ``CAPE_REDIS_URL`` every publish goes through one Redis pub/sub
channel per installation, and every process's hub relays what comes from it to its own listeners,
so an agent connected to one server sees what a customer wrote to another, and what a worker
process did. Delivery is at most once, like Redis pub/sub: a connection that comes back asks the
database for what it missed (each client knows the last id it saw).

A listener has a bounded queue: one that does not keep up is told so (``Overflow``) and its
connection is closed, rather than the process's memory growing for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Messages a listener may have waiting before it counts as not keeping up.
LISTENER_QUEUE = 256


@dataclass(frozen=True)
class Message:
    topic: str
    event: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"topic": self.topic, "event": self.event, "data": self.data}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Message:
        body = json.loads(raw)
        return cls(body["topic"], body["event"], body.get("data") or {})


class Overflow(Exception):
    """The listener fell too far behind: its connection should be closed."""


class Listener:
    """One connection's subscription: the topics it hears, and what is waiting for it."""

    def __init__(self, hub: Hub, topics: set[str]):
        self._hub = hub
        self.topics: set[str] = set()
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(LISTENER_QUEUE)
        self.overflowed = False
        self.add(*topics)

    def add(self, *topics: str) -> None:
        for topic in topics:
            if topic not in self.topics:
                self.topics.add(topic)
                self._hub._listeners.setdefault(topic, set()).add(self)

    def remove(self, *topics: str) -> None:
        for topic in topics:
            self.topics.discard(topic)
            listeners = self._hub._listeners.get(topic)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del self._hub._listeners[topic]

    def _offer(self, message: Message) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self._queue.empty():  # what waits is dropped: the connection will be closed
                self._queue.get_nowait()
            self._queue.put_nowait(None)  # wakes ``get`` to raise Overflow

    async def get(self) -> Message:
        """The next message for this listener; raises ``Overflow`` when it fell behind."""
        message = await self._queue.get()
        if message is None:
            raise Overflow
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        return await self.get()


class Hub:
    """This process's hub. ``start`` it on the event loop that serves the websockets."""

    def __init__(self, *, redis_url: str = "", channel: str = "cape.realtime"):
        self.redis_url = redis_url
        self.channel = channel
        self._listeners: dict[str, set[Listener]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay: asyncio.Task | None = None
        self._publisher = None
        self._publisher_lock = threading.Lock()

    # -- publishing (any thread, any process) -------------------------------------------------

    def publish(self, topic: str, event: str, data: dict[str, Any] | None = None) -> None:
        """Send ``event`` to every listener of ``topic``, in every process; safe from any thread."""
        message = Message(topic, event, data or {})
        if self.redis_url:
            try:
                self._redis().publish(self.channel, message.to_json())
            except Exception:  # a realtime push is a nicety: the change itself is committed
                log.warning("realtime publish through Redis failed", exc_info=True)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody in this process listens (a worker without Redis, or before start)
        with suppress(RuntimeError):  # the loop closed meanwhile: nobody listens any more
            loop.call_soon_threadsafe(self.deliver, message)

    def _redis(self):
        with self._publisher_lock:
            if self._publisher is None:
                import redis

                self._publisher = redis.Redis.from_url(self.redis_url)
            return self._publisher

    # -- listening (the event loop) -----------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """Give ``message`` to this process's listeners of its topic (on the hub's loop)."""
        for listener in tuple(self._listeners.get(message.topic, ())):
            listener._offer(message)

    @asynccontextmanager
    async def listen(self, *topics: str) -> AsyncIterator[Listener]:
        """Listen to ``topics`` (more can be added with ``listener.add``) until the block ends."""
        listener = Listener(self, set(topics))
        try:
            yield listener
        finally:
            listener.remove(*tuple(listener.topics))

    def listening(self, topic: str) -> int:
        """How many of this process's listeners hear ``topic``."""
        return len(self._listeners.get(topic, ()))

    async def start(self) -> None:
        """Bind to the running loop; with Redis, relay the installation's channel to this process."""
        self._loop = asyncio.get_running_loop()
        if self.redis_url and self._relay is None:
            ready = asyncio.Event()
            self._relay = asyncio.create_task(self._relay_from_redis(ready), name="realtime-relay")
            # Subscribed before the app serves: what is published after start reaches this process.
            await asyncio.wait_for(ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with suppress(asyncio.CancelledError):
                await self._relay
            self._relay = None
        self._loop = None
        with self._publisher_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    async def _relay_from_redis(self, ready: asyncio.Event) -> None:
        from redis import asyncio as aioredis

        delay = 0.1
        while True:
            client = aioredis.Redis.from_url(self.redis_url)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    ready.set()
                    delay = 0.1
                    async for raw in pubsub.listen():
                        try:
                            self.deliver(Message.from_json(raw["data"]))
                        except (ValueError, KeyError, TypeError):
                            log.warning("realtime: ignored a malformed message on %s", self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away: keep trying; clients catch up from the database on reconnect.
                log.warning("realtime relay from Redis lost; retrying in %.1f s", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                await client.aclose()


_hub: Hub | None = None


def configure(*, redis_url: str, channel: str) -> Hub:
    """Make the process's hub (the app and the worker call this at start)."""
    global _hub
    _hub = Hub(redis_url=redis_url, channel=channel)
    return _hub


def hub() -> Hub:
    """The process's hub; a local one when nothing configured it (a script, a test)."""
    global _hub
    if _hub is None:
        _hub = Hub()
    return _hub


def publish(topic: str, event: str, data: dict[str, Any] | None = None) -> None:
    """Publish through the process's hub (see ``Hub.publish``)."""
    hub().publish(topic, event, data)
