"""Two `cape serve` processes on one PostgreSQL and one Redis: what happens on one reaches sockets on the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr
from websockets.sync.client import connect

from cape.config import Settings
from cape.db import create_session_factory, unit_of_work
from tests.fixtures.browser import free_port
from tests.fixtures.databases import REDIS_URL, fresh_database
from tests.fixtures.factories import make_token, make_user

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60  # generous for a loaded machine; an event that never comes fails


def environment(settings: Settings) -> dict[str, str]:
    """The CAPE_* variables that give a process exactly these settings."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for name, value in settings.model_dump().items():
        if value is not None:
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"CAPE_{name.upper()}"] = str(value)
    return env


@contextmanager
def cape_serve(env: dict[str, str], workdir: Path, name: str) -> Iterator[str]:
    """`cape serve` on a free port; its base URL. What it printed explains a failure."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cape", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}):\n{log.read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def hear(socket, wanted) -> dict:
    """The first frame ``wanted`` accepts, within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        frame = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        if wanted(frame):
            return frame


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); run scripts/test-services.sh")
    workdir = tmp_path_factory.mktemp("two-servers")
    with fresh_database("postgresql", workdir) as (database, engine):
        # The queue's name names the installation: parallel test runs on one Redis keep apart.
        settings = Settings(**{**database.model_dump(), "redis_url": REDIS_URL,
                               "jobs_queue": f"cape_test_{uuid.uuid4().hex}"})  # fmt: skip
        with unit_of_work(create_session_factory(engine)) as session:
            token = make_token(session, make_user(session, email="sam@example.test", name="Sam"))
            robin = make_token(session, make_user(session, email="robin@example.test", name="Robin"))
        env = environment(settings)
        with cape_serve(env, workdir, "a") as a, cape_serve(env, workdir, "b") as b:
            yield {"a": a, "b": b, "sam": token, "robin": robin}


def socket_on(url: str, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    return connect(url.replace("http://", "ws://") + "/realtime", additional_headers=headers)


def test_a_customer_on_one_server_reaches_an_agent_on_the_other_and_back(installation):
    a, b = installation["a"], installation["b"]
    sam = {"Authorization": f"Bearer {installation['sam']}"}
    with socket_on(b, installation["sam"]) as on_b, socket_on(a, installation["robin"]) as on_a:
        on_b.send(json.dumps({"type": "subscribe", "topics": ["inbox"]}))
        hear(on_b, lambda f: f.get("type") == "subscribed")

        # The customer writes through server A; the agent's socket on server B hears of it.
        created = httpx.post(f"{a}/api/v1/messages/inbound", headers=sam, json={
            "channel": "api", "from": {"email": "kim@example.org", "name": "Kim"},
            "subject": "Broken zipper", "body": "The zipper broke.",
        })  # fmt: skip
        assert created.status_code == 201, created.text
        conversation_id = created.json()["conversation_id"]
        heard = hear(on_b, lambda f: f.get("topic") == "inbox" and f["event"] == "message.created")
        assert heard["data"]["conversation_id"] == conversation_id and heard["data"]["direction"] == "inbound"

        # Both agents open it, each on their server: each hears the other.
        on_a.send(json.dumps({"type": "view", "conversation_id": conversation_id}))
        hear(on_a, lambda f: f.get("event") == "viewer.joined" and f["data"]["name"] == "Robin")
        on_b.send(json.dumps({"type": "view", "conversation_id": conversation_id}))
        hear(on_a, lambda f: f.get("event") == "viewer.joined" and f["data"]["name"] == "Sam")
        hear(on_b, lambda f: f.get("event") == "viewer.joined" and f["data"]["name"] == "Robin")

        # The agent replies through server B; the socket on server A hears it.
        reply = httpx.post(f"{b}/api/v1/conversations/{conversation_id}/replies", headers=sam,
                           json={"body": "A new one is on its way."})  # fmt: skip
        assert reply.status_code == 201, reply.text
        heard = hear(on_a, lambda f: f.get("topic") == f"conversation:{conversation_id}"
                     and f["event"] == "message.created")  # fmt: skip
        assert heard["data"] == {"conversation_id": conversation_id, "message_id": reply.json()["id"],
                                 "direction": "outbound"}  # fmt: skip
