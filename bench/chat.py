"""Live chat at scale: 1,000 visitors connected to one server process, their messages timed to an agent's screen.

    python bench/chat.py                          # SQLite, 1,000 visitors, rates 50..1600 msg/s, 10 s each
    python bench/chat.py --databases sqlite,postgresql --visitors 1000 --seconds 10
    python bench/chat.py --rates 100,200,400

A Cape is started here (one `cape serve` process, jobs in it, as bench/ingest.py does) with a chat
widget channel. ``--visitors`` visitors each start a session (POST /widget/api/session) and keep the
visitor websocket open; each says hello once, which opens their conversation. One agent listens on
the agents' socket (/realtime, topic ``inbox``). Then, for each rate in ``--rates``, visitors chosen
at random send messages on a fixed schedule for ``--seconds``; a message's latency runs from the
moment its frame is sent to the moment the agent's socket hears it was filed.

Prints the machine reference figure, the server's memory per open chat connection, and for each
rate p50/p99 and their ratio to the targets: p99 under 100 ms on loopback, and the highest rate whose
p99 stays under 250 ms. Client and server share the machine's cores, as in the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from ingest import percentile, print_reference, serving
from websockets.asyncio.client import connect

TARGET_P99_MS = 100.0
SATURATION_P99_MS = 250.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def add_chat(database_url: str | None, data_dir: Path) -> None:
    env = {**os.environ, "CAPE_DATA_DIR": str(data_dir)}
    if database_url:
        env["CAPE_DATABASE_URL"] = database_url
    cape = shutil.which("cape") or str(Path(sys.executable).parent / "cape")
    subprocess.run([cape, "channels", "add-chat", "--name", "Bench chat", "--slug", "bench"], env=env, check=True,
                   capture_output=True)  # fmt: skip


class Visitor:
    def __init__(self, token: str, socket):
        self.token = token
        self.socket = socket


class Timings:
    def __init__(self):
        self.sent: dict[str, float] = {}  # client_id -> when its frame left
        self.client_of: dict[int, str] = {}  # message_id -> client_id (from the ack)
        self.heard: dict[int, float] = {}  # message_id -> when the agent heard of it
        self.errors = 0

    def latencies(self, client_ids: set[str]) -> list[float]:
        """Sorted seconds from sending to the agent hearing, of the messages heard."""
        out = []
        for message_id, client_id in self.client_of.items():
            if client_id in client_ids and message_id in self.heard:
                out.append(self.heard[message_id] - self.sent[client_id])
        return sorted(out)


async def visitor_reader(visitor: Visitor, timings: Timings) -> None:
    async for raw in visitor.socket:
        frame = json.loads(raw)
        if frame.get("type") == "ack":
            timings.client_of[frame["message_id"]] = frame["client_id"]
        elif frame.get("type") == "error":
            timings.errors += 1


async def agent_reader(socket, timings: Timings) -> None:
    async for raw in socket:
        frame = json.loads(raw)
        if frame.get("event") == "message.created" and frame.get("data", {}).get("direction") == "inbound":
            timings.heard.setdefault(frame["data"]["message_id"], time.perf_counter())


async def send(visitor: Visitor, timings: Timings, body: str) -> str:
    client_id = uuid.uuid4().hex
    timings.sent[client_id] = time.perf_counter()
    await visitor.socket.send(json.dumps({"type": "message", "client_id": client_id, "body": body}))
    return client_id


async def run(url: str, token: str, server_pid: int | None, visitors: int, rates: list[int], seconds: float) -> None:
    ws_url = url.replace("http://", "ws://")
    timings = Timings()
    agent = await connect(f"{ws_url}/realtime?token={token}", max_size=2**20)
    await agent.send(json.dumps({"type": "subscribe", "topics": ["inbox"]}))
    tasks = [asyncio.create_task(agent_reader(agent, timings))]

    before = rss_kib(server_pid) if server_pid else None
    limits = httpx.Limits(max_connections=50)
    crowd: list[Visitor] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def join(n: int) -> Visitor:
            for attempt in range(3):  # a kept-alive connection the server closed as it was reused
                try:
                    answer = await http.post("/widget/api/session",
                                             json={"channel": "chat:bench", "name": f"Visitor {n}"})  # fmt: skip
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            answer.raise_for_status()
            visitor_token = answer.json()["token"]
            socket = await connect(f"{ws_url}/widget/ws?token={visitor_token}", max_size=2**20)
            return Visitor(visitor_token, socket)

        began = time.perf_counter()
        for start in range(0, visitors, 100):
            crowd += await asyncio.gather(*(join(n) for n in range(start, min(visitors, start + 100))))
        print(f"{visitors} visitors connected in {time.perf_counter() - began:.1f} s")
    tasks += [asyncio.create_task(visitor_reader(v, timings)) for v in crowd]

    hellos = set()
    for start in range(0, visitors, 10):  # every visitor's first message opens their conversation: 100 a second
        hellos |= set(await asyncio.gather(*(send(v, timings, "Hello!") for v in crowd[start : start + 10])))
        await asyncio.sleep(0.1)
    await asyncio.sleep(5)
    if server_pid:
        after = rss_kib(server_pid)
        print(f"server memory: {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB with {visitors} chats open "
              f"and their conversations started: {(after - before) / visitors:.0f} KiB per connection")  # fmt: skip
    opened = timings.latencies(hellos)
    print(f"first messages (each opens a conversation): {len(opened)}/{visitors} heard, "
          f"p50 {percentile(opened, 0.50):.1f} ms  p99 {percentile(opened, 0.99):.1f} ms")  # fmt: skip

    best = None
    for rate in rates:
        ids: set[str] = set()
        count = int(rate * seconds)
        start = time.perf_counter()
        errors_before = timings.errors
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ids.add(await send(random.choice(crowd), timings, f"Message {n} at {rate}/s: where is my parcel?"))
        await asyncio.sleep(2)
        got = timings.latencies(ids)
        achieved = count / (time.perf_counter() - start - 2)
        p50, p99 = percentile(got, 0.50), percentile(got, 0.99)
        lost = count - len(got)
        errors = timings.errors - errors_before
        print(f"{rate:>5} msg/s (sent at {achieved:6.0f}/s)  heard {len(got)}/{count}  p50 {p50:6.1f} ms  "
              f"p99 {p99:7.1f} ms  errors {errors}  | p99/target {p99 / TARGET_P99_MS:.2f}")  # fmt: skip
        if p99 <= SATURATION_P99_MS and lost == 0:
            best = rate
        else:
            break
    print(f"highest rate with p99 under {SATURATION_P99_MS:.0f} ms: {best or 'none'} msg/s")
    for task in tasks:
        task.cancel()
    for visitor in crowd:
        await visitor.socket.close()
    await agent.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--rates", default="50,100,200,400,800,1600")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    # Each chat is a socket here and one at the server (which inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.visitors + 1024)), hard))
    print_reference()
    rates = [int(r) for r in args.rates.split(",")]
    for kind in args.databases.split(","):
        print(f"\n{kind}, one server process")
        with serving(kind, 1, args.postgres_dsn, prepare=add_chat) as (url, token, server):
            asyncio.run(run(url, token, server.pid, args.visitors, rates, args.seconds))


if __name__ == "__main__":
    main()
