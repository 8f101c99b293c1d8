"""Background jobs in a real `cape worker` process, on Redis and PostgreSQL as in production.

The rest of the suite runs jobs inline (``CAPE_JOBS_BACKEND=immediate``); here the web app only
enqueues, into a Redis queue named for this run, and a separate worker process does the work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from cape import jobs
from cape.actions import connectors
from cape.actions.tasks import redeliver_stale_actions
from cape.app import create_app
from cape.channels.email.service import SmtpConfig, create_email_channel, receive_email
from cape.config import Settings
from cape.db import create_session_factory, unit_of_work
from cape.models import Action, Channel, DeliveryStatus, FulfilmentStatus, Message
from tests.channels.email import corpus
from tests.fixtures.databases import REDIS_URL, fresh_database
from tests.fixtures.factories import make_token, make_user
from tests.fixtures.mailservers import SmtpSink, smtp_sink
from tests.fixtures.stores import Store, store_servers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60  # generous: a slow CI machine is not a failure; a job that never runs is


class Worker:
    """`cape worker` as a process of its own; what it prints is kept to explain a failure."""

    def __init__(self, env: dict[str, str], workdir: Path):
        self.env = env
        self.workdir = workdir
        self.log = workdir / "worker.log"
        self.process = None
        self._log_start = 0

    def start(self) -> None:
        # No periodic jobs: the tests trigger the one they need, at the moment they choose.
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cape", "worker", "--threads", "2", "--no-periodic"],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when the machine or the kernel stops it."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """What the current process printed."""
        with self.log.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")


@dataclass
class Stack:
    settings: Settings
    factory: sessionmaker[Session]
    client: TestClient
    sink: SmtpSink
    store: Store
    agent_headers: dict[str, str]
    channel_id: int
    worker_env: dict[str, str]
    workdir: Path

    def receive(self, raw: bytes) -> int:
        with unit_of_work(self.factory) as session:
            channel = session.get_one(Channel, self.channel_id)
            return receive_email(session, settings=self.settings, channel=channel, raw=raw).conversation_id

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(f"/api/v1{path}", json=body, headers=self.agent_headers)
        assert response.status_code == 201, response.text
        return response.json()

    def refund(self, conversation_id: int) -> dict:
        action = self.post(
            f"/conversations/{conversation_id}/actions",
            {"type": "refund", "amount": 25_00, "currency": "USD", "reason": "damaged"},
        )
        assert (action["status"], action["fulfilment_status"]) == ("executed", "queued")  # sent after commit
        return action

    def load(self, model, row_id: int):
        with self.factory() as session:
            return session.get_one(model, row_id)


def _environment(settings: Settings) -> dict[str, str]:
    """The CAPE_* variables that give a process exactly these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"CAPE_{name.upper()}"] = str(value)
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); run scripts/test-services.sh")
    workdir = tmp_path_factory.mktemp("worker")
    with (
        fresh_database("postgresql", workdir) as (database, engine),
        smtp_sink() as sink,
        store_servers() as start_store,
    ):
        store, store_url = start_store([])
        settings = Settings(**{
            **database.model_dump(), "jobs_backend": "redis", "redis_url": REDIS_URL,
            # A queue of this run's own: parallel runs on one Redis never take each other's jobs.
            "jobs_queue": f"cape_test_{uuid.uuid4().hex}",
            "email_retry_backoff_s": 0.1,  # 30 s in production
            "actions_connector": "webhook", "actions_webhook_url": store_url,
            "actions_webhook_secret": "shared-secret", "actions_webhook_attempts": 1,
            "actions_redeliver_after_s": 0,  # 10 minutes in production
        })  # fmt: skip
        factory = create_session_factory(engine)
        try:
            app = create_app(settings)  # enqueues into Redis; runs no jobs itself
            assert not jobs.huey.immediate
            with unit_of_work(factory) as session:
                agent = make_user(session, email="alice.agent@example.test")
                headers = {"Authorization": f"Bearer {make_token(session, agent)}"}
                channel = create_email_channel(
                    session, address="support@example.com", app_secret=settings.resolved_secret_key,
                    smtp=SmtpConfig(host=sink.host, port=sink.port, starttls=False),
                )  # fmt: skip
                channel_id = channel.id
            env = {**os.environ, **_environment(settings), "PYTHONUNBUFFERED": "1"}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
            with TestClient(app, base_url="http://testserver") as client:
                yield Stack(settings, factory, client, sink, store, headers, channel_id, env, workdir)
        finally:
            jobs.huey.storage.flush_all()  # this run's queue, schedule and results in Redis
            # Back to running jobs inline, as the rest of the suite expects.
            jobs.configure(factory, Settings(**{**settings.model_dump(), "jobs_backend": "immediate"}))
            jobs._runtime.clear()
            connectors.configure(connectors.LedgerConnector())


@pytest.fixture
def worker(stack) -> Iterator[Worker]:
    process = Worker(stack.worker_env, stack.workdir)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def wait_until(condition: Callable[[], bool], worker: Worker, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited ({worker.process.returncode}) before {what}:\n{worker.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {DEADLINE_S} s; the worker said:\n{worker.output()}")
        time.sleep(0.05)


def test_a_reply_is_sent_by_the_worker_and_retried_after_a_temporary_refusal(stack, worker):
    stack.sink.refuse_with = [451]  # the relay refuses the first attempt: "try again later"
    conversation_id = stack.receive(corpus.plain(1))
    reply = stack.post(f"/conversations/{conversation_id}/replies", {"body": "A new one is on its way."})

    def sent() -> bool:
        return stack.load(Message, reply["id"]).delivery_status is DeliveryStatus.sent

    wait_until(sent, worker, "reply sent")
    message = stack.load(Message, reply["id"])
    assert message.meta["attempts"] == 2 and message.delivery_error is None  # sent by the retry
    assert stack.sink.refuse_with == []
    assert [m.message["Message-ID"] for m in stack.sink.received] == [reply["external_id"]]
    assert "A new one is on its way." in stack.sink.received[0].message.get_body(("plain",)).get_content()


def test_work_a_killed_worker_left_is_done_once_after_a_restart(stack, worker):
    stack.store.reset(["hold"])  # the store carries the refund out, then answers too late
    stack.sink.received.clear()
    conversation_id = stack.receive(corpus.plain(2))
    action = stack.refund(conversation_id)
    stack.store.wait_for(1)  # the worker is mid-delivery, waiting for the store's answer
    worker.kill()
    stack.store.release()
    assert stack.store.carried_out == [str(action["id"])]
    assert stack.load(Action, action["id"]).fulfilment_status is FulfilmentStatus.queued  # answer lost

    # While no worker runs, a reply's job waits in Redis; the killed delivery is gone from it.
    reply = stack.post(f"/conversations/{conversation_id}/replies", {"body": "Your refund is under way."})
    assert (jobs.huey.pending_count(), jobs.huey.scheduled_count()) == (1, 0)

    worker.start()
    redeliver_stale_actions()  # what the schedule enqueues every five minutes

    def all_done() -> bool:
        return (
            stack.load(Action, action["id"]).fulfilment_status is FulfilmentStatus.done
            and stack.load(Message, reply["id"]).delivery_status is DeliveryStatus.sent
        )

    wait_until(all_done, worker, "refund recorded and reply sent")
    assert stack.load(Action, action["id"]).fulfilment_reference == "STORE-42"
    # Sent twice with one key, carried out once; the reply left once; nothing is left queued.
    assert [r["headers"]["Idempotency-Key"] for r in stack.store.requests] == [str(action["id"])] * 2
    assert stack.store.carried_out == [str(action["id"])]
    assert [m.message["Message-ID"] for m in stack.sink.received] == [reply["external_id"]]
    assert (jobs.huey.pending_count(), jobs.huey.scheduled_count()) == (0, 0)


def test_a_worker_asked_to_stop_finishes_the_job_in_hand_first(stack, worker):
    stack.store.reset(["hold"])
    action = stack.refund(stack.receive(corpus.plain(3)))
    stack.store.wait_for(1)  # the worker is mid-delivery
    worker.process.terminate()  # SIGTERM, as a service manager or container runtime stops it
    wait_until(lambda: "Shutting down gracefully" in worker.output(), worker, "the worker begins to stop")
    stack.store.release()
    assert worker.process.wait(timeout=DEADLINE_S) == 0
    done = stack.load(Action, action["id"])
    assert (done.fulfilment_status, done.fulfilment_reference) == (FulfilmentStatus.done, "STORE-42")
    assert len(stack.store.requests) == 1
