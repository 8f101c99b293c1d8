"""The hub: a publish from any thread reaches the listeners of its topic, here or, through Redis, in another process."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from cape.realtime.hub import LISTENER_QUEUE, Hub, Overflow
from tests.fixtures.databases import REDIS_URL


async def _next(listener, timeout=5.0):
    return await asyncio.wait_for(listener.get(), timeout)


def test_a_publish_from_another_thread_reaches_the_topics_listeners_only():
    async def scenario():
        hub = Hub()
        await hub.start()
        async with hub.listen("conversation:1") as one, hub.listen("conversation:2", "inbox") as two:
            worker = threading.Thread(target=hub.publish, args=("conversation:1", "message.created", {"message_id": 7}))
            worker.start()
            worker.join()
            hub.publish("inbox", "conversation.created", {"conversation_id": 3})
            got = await _next(one)
            assert (got.topic, got.event, got.data) == ("conversation:1", "message.created", {"message_id": 7})
            assert (await _next(two)).event == "conversation.created"
            with pytest.raises(TimeoutError):
                await _next(one, timeout=0.2)  # "inbox" is not one's topic
            two.remove("inbox")
        assert hub.listening("conversation:1") == 0 and hub.listening("conversation:2") == 0
        await hub.stop()

    asyncio.run(scenario())


def test_a_listener_that_does_not_keep_up_is_told_so_instead_of_growing():
    async def scenario():
        hub = Hub()
        await hub.start()
        async with hub.listen("inbox") as slow, hub.listen("inbox") as quick:
            for n in range(LISTENER_QUEUE + 1):
                hub.publish("inbox", "conversation.updated", {"n": n})
                if n % 16 == 0:
                    while True:  # the quick one reads as it goes
                        try:
                            await asyncio.wait_for(quick.get(), 0.05)
                        except TimeoutError:
                            break
            await asyncio.sleep(0.05)
            with pytest.raises(Overflow):
                await _next(slow)
            assert not quick.overflowed
        await hub.stop()

    asyncio.run(scenario())


def test_with_redis_a_publish_in_one_hub_reaches_the_listeners_of_another():
    # Two hubs stand for two server processes (or a worker and a server) of one installation.
    channel = f"cape_test_{uuid.uuid4().hex[:8]}.realtime"

    async def scenario():
        server_a, server_b = Hub(redis_url=REDIS_URL, channel=channel), Hub(redis_url=REDIS_URL, channel=channel)
        other_installation = Hub(redis_url=REDIS_URL, channel=channel + "x")
        for hub in (server_a, server_b, other_installation):
            await hub.start()
        async with (
            server_a.listen("conversation:9") as on_a,
            server_b.listen("conversation:9") as on_b,
            other_installation.listen("conversation:9") as elsewhere,
        ):
            await asyncio.to_thread(server_a.publish, "conversation:9", "message.created", {"message_id": 1})
            assert (await _next(on_b)).data == {"message_id": 1}
            assert (await _next(on_a)).data == {"message_id": 1}  # the publisher's own process too
            with pytest.raises(TimeoutError):
                await _next(elsewhere, timeout=0.3)
        for hub in (server_a, server_b, other_installation):
            await hub.stop()

    asyncio.run(scenario())
