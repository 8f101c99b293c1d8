"""Group commit of inbound messages: batches over real HTTP, failures kept apart, never a blocked loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import httpx
import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from cape import events
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.conversations.inbound_queue import InboundQueue, _BatchIngester
from cape.conversations.service import IngestResult, ingest_many
from cape.db import create_db_engine, create_session_factory
from cape.kit.errors import DatabaseBusy, InvalidInput, NotAuthenticated
from cape.kit.rawsql import RawSql
from cape.models import ChannelKind, Customer, Message, RawSource, RawStatus, Role
from tests.fixtures.browser import start_server
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_token, make_user


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request, tmp_path):
    """A real Cape over HTTP on a real committed database; yields (url, session_factory)."""
    with fresh_database(request.param, tmp_path) as (settings, engine):
        server, thread, url = start_server(settings)
        try:
            yield url, create_session_factory(engine)
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_concurrent_inbound_over_http_files_each_message_once(live):
    url, session_factory = live
    with session_factory() as session:
        token = make_token(session, make_user(session, role=Role.agent))
        session.commit()

    def post(n: int) -> tuple[int, dict]:
        response = httpx.post(
            f"{url}/api/v1/messages/inbound",
            json={"channel": "api", "external_id": f"order-{n % 30}", "body": f"delivery {n}",
                  "from": {"email": f"buyer{n % 10}@example.org", "name": f"Buyer {n % 10}"}},
            headers={"Authorization": f"Bearer {token}"}, timeout=60,
        )  # fmt: skip
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(post, range(120)))

    assert sorted(status for status, _ in answers) == [200] * 90 + [201] * 30
    by_external: dict[int, set] = {}
    for n, (_, body) in enumerate(answers):
        by_external.setdefault(n % 30, set()).add((body["customer_id"], body["conversation_id"], body["message_id"]))
    assert all(len(ids) == 1 for ids in by_external.values())  # every repeat answered with the same ids
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 30
        assert session.scalar(select(func.count()).select_from(Customer)) == 10
        statuses = sorted(session.scalars(select(RawSource.status)))
        assert statuses.count(RawStatus.processed) == 30 and statuses.count(RawStatus.duplicate) == 90


def _inbound(session, email: str, **kwargs) -> InboundMessage:
    return InboundMessage(
        channel=builtin_channel(session, kind=ChannelKind.api), sender=Sender(email=email, name="Batch"),
        body_text=kwargs.pop("body", "hello"), raw=b'{"body": "hello"}', raw_content_type="application/json", **kwargs,
    )  # fmt: skip


def test_one_bad_message_in_a_batch_costs_the_others_nothing(db):
    other = make_inbound(db, email="someone-else@example.org")
    db.commit()
    announced: list[events.DomainEvent] = []
    unsubscribe = events.subscribe(announced.append)
    try:
        outcomes = ingest_many(db, inbounds=[
            _inbound(db, "first@example.org", external_id="b-1"),
            _inbound(db, "second@example.org", external_id="b-2", conversation_id=other.conversation_id),
            _inbound(db, "third@example.org", external_id="b-3"),
        ])  # fmt: skip
    finally:
        unsubscribe()

    first, bad, third = outcomes
    assert isinstance(first, IngestResult) and isinstance(third, IngestResult)
    assert first.created and third.created  # the failed attempt together left nothing behind
    assert isinstance(bad, InvalidInput) and bad.field == "conversation_id"
    raws = {r.external_id: r for r in db.scalars(select(RawSource).where(RawSource.external_id.like("b-%")))}
    assert {k: r.status for k, r in raws.items()} == {
        "b-1": RawStatus.processed, "b-2": RawStatus.failed, "b-3": RawStatus.processed,
    }  # fmt: skip
    assert "another customer" in raws["b-2"].error
    assert db.scalar(select(func.count()).select_from(Message).where(Message.external_id.like("b-%"))) == 2
    # Announced once each, after the one commit: nothing of the attempt that was rolled back.
    created = [e.payload["message_id"] for e in announced if e.name == "message.created"]
    assert sorted(created) == sorted([first.message_id, third.message_id])


def test_repeats_inside_one_batch_are_one_message(db):
    outcomes = ingest_many(db, inbounds=[_inbound(db, "twice@example.org", external_id="same") for _ in range(3)])
    assert [o.created for o in outcomes] == [True, False, False]
    assert len({o.message_id for o in outcomes}) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def committed(request, tmp_path):
    with fresh_database(request.param, tmp_path) as (_, engine):
        yield create_session_factory(engine)


def test_many_waiting_requests_are_ingested_together_and_each_answered(committed):
    queue = InboundQueue(committed)

    async def main():
        return await asyncio.gather(*[
            queue.ingest(lambda session, n=n: _inbound(session, f"crowd{n % 7}@example.org", external_id=f"c-{n}"))
            for n in range(50)
        ])  # fmt: skip

    try:
        results = asyncio.run(main())
    finally:
        queue.close()
    assert all(r.created for r in results)
    assert len({r.message_id for r in results}) == 50
    assert len({r.customer_id for r in results}) == 7
    with committed() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 50


def test_a_deadlock_is_tried_again_in_a_fresh_transaction_not_marked_failed(committed, monkeypatch):
    from cape.conversations import service

    file_inbound, deadlocks = service._file_inbound, []

    def deadlocks_once(session, **kwargs):
        if not deadlocks:
            deadlocks.append(True)
            raise OperationalError("UPDATE conversations ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
        return file_inbound(session, **kwargs)

    monkeypatch.setattr(service, "_file_inbound", deadlocks_once)
    queue = InboundQueue(committed)
    try:
        result = asyncio.run(queue.ingest(lambda s: _inbound(s, "unlucky@example.org", external_id="dl")))
    finally:
        queue.close()
    assert deadlocks and result.created
    with committed() as session:  # the first try left nothing behind, not even a failed raw source
        assert [(r.external_id, r.status) for r in session.scalars(select(RawSource))] == [("dl", RawStatus.processed)]


def test_a_refused_caller_is_answered_alone_and_nothing_of_it_is_stored(committed):
    queue = InboundQueue(committed)

    def refused(session):
        raise NotAuthenticated("invalid or revoked API token")

    async def main():
        return await asyncio.gather(
            queue.ingest(lambda session: _inbound(session, "welcome@example.org", external_id="ok")),
            queue.ingest(refused),
            return_exceptions=True,
        )

    try:
        accepted, rejected = asyncio.run(main())
    finally:
        queue.close()
    assert isinstance(accepted, IngestResult) and isinstance(rejected, NotAuthenticated)
    with committed() as session:
        assert session.scalars(select(RawSource.external_id)).all() == ["ok"]


def test_the_loop_never_waits_for_a_write_turn_another_thread_holds(tmp_path):
    """A request thread holding SQLite's write turn may need the loop to finish; the loop must not wait for it."""
    with fresh_database("sqlite", tmp_path) as (_, engine):
        session_factory = create_session_factory(engine)
        queue = InboundQueue(session_factory)
        holding, release = threading.Event(), threading.Event()

        def hold_the_turn():
            with session_factory() as session:
                session.execute(text("UPDATE channels SET name = name"))  # takes the write turn
                holding.set()
                release.wait(10)
                session.commit()

        holder = threading.Thread(target=hold_the_turn)
        holder.start()
        holding.wait(10)

        async def main():
            ingest = asyncio.ensure_future(
                queue.ingest(lambda session: _inbound(session, "patient@example.org", external_id="wait"))
            )
            ticks = 0
            while ticks < 20:  # the loop keeps running while the message waits for its turn
                await asyncio.sleep(0.01)
                ticks += 1
            assert not ingest.done()
            release.set()
            return await ingest

        try:
            result = asyncio.run(main())
        finally:
            release.set()
            holder.join()
            queue.close()
        assert result.created


@contextmanager
def _another_process_writing(tmp_path):
    """A queue on a fresh SQLite file, and a second engine (as another worker process has) in a
    write transaction on it until the yielded event is set; yields (queue, release, engine)."""
    with fresh_database("sqlite", tmp_path) as (settings, engine):
        queue = InboundQueue(create_session_factory(engine))
        holding, release = threading.Event(), threading.Event()

        def hold():
            other = create_db_engine(settings)
            try:
                with create_session_factory(other)() as session:
                    session.execute(text("UPDATE channels SET name = name"))  # takes the file lock
                    holding.set()
                    release.wait(10)
                    session.commit()
            finally:
                other.dispose()

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(10)
        try:
            yield queue, release, engine
        finally:
            release.set()
            holder.join()
            queue.close()


def test_a_batch_waits_for_another_process_without_blocking_the_loop(tmp_path):
    with _another_process_writing(tmp_path) as (queue, release, _):

        async def main():
            ingests = [
                asyncio.ensure_future(
                    queue.ingest(lambda s, n=n: _inbound(s, f"queued{n}@example.org", external_id=f"q{n}"))
                )
                for n in range(5)
            ]
            for _ in range(20):  # the loop keeps serving while the batch waits for the other process
                await asyncio.sleep(0.01)
            assert not any(ingest.done() for ingest in ingests)
            release.set()
            return await asyncio.gather(*ingests)

        results = asyncio.run(main())
    assert all(result.created for result in results)


def test_a_turn_kept_too_long_answers_busy_and_the_next_message_gets_through(tmp_path, monkeypatch):
    monkeypatch.setattr("cape.conversations.inbound_queue._TURN_TIMEOUT_S", 0.2)
    with _another_process_writing(tmp_path) as (queue, release, engine):

        async def main():
            with pytest.raises(DatabaseBusy):
                await queue.ingest(lambda s: _inbound(s, "late@example.org", external_id="late"))
            release.set()  # the turn comes back; what waits then is filed
            return await queue.ingest(lambda s: _inbound(s, "next@example.org", external_id="next"))

        result = asyncio.run(main())
        assert result.created
        with create_session_factory(engine)() as session:
            assert session.scalars(select(RawSource.external_id)).all() == ["next"]


def test_a_failing_session_answers_its_batch_and_the_queue_goes_on(tmp_path, monkeypatch):
    end_transaction, failures = _BatchIngester.end_transaction, []

    def fails_once(self):
        if not failures:
            failures.append(True)
            raise RuntimeError("the connection broke")
        end_transaction(self)

    monkeypatch.setattr(_BatchIngester, "end_transaction", fails_once)
    with fresh_database("sqlite", tmp_path) as (_, engine):
        queue = InboundQueue(create_session_factory(engine))

        async def main():
            first = await asyncio.wait_for(queue.ingest(lambda s: _inbound(s, "one@example.org", external_id="1")), 10)
            second = await asyncio.wait_for(queue.ingest(lambda s: _inbound(s, "two@example.org", external_id="2")), 10)
            return first, second

        try:
            first, second = asyncio.run(main())
        finally:
            queue.close()
    assert failures and first.created and second.created  # the first was committed before the failure


def test_closing_while_waiting_for_the_turn_answers_busy_and_the_queue_starts_again(tmp_path):
    with _another_process_writing(tmp_path) as (queue, release, _):

        async def shut_down_while_waiting():
            waiting = asyncio.ensure_future(queue.ingest(lambda s: _inbound(s, "early@example.org", external_id="e")))
            await asyncio.sleep(0.05)
            queue.close()
            with pytest.raises(DatabaseBusy):
                await waiting

        asyncio.run(shut_down_while_waiting())
        release.set()

        async def again():
            return await asyncio.wait_for(queue.ingest(lambda s: _inbound(s, "again@example.org", external_id="a")), 10)

        assert asyncio.run(again()).created


def test_raw_values_read_back_through_the_orm(db):
    customer = db.get(Customer, make_inbound(db, email="when@example.org").customer_id)
    db.commit()
    moment = datetime(2026, 3, 29, 1, 30, 0, 123, tzinfo=timezone(timedelta(hours=2)))
    raw = RawSql.of(db)
    raw.execute("UPDATE customers SET merged_at = :at WHERE id = :id", {"at": raw.datetime(moment), "id": customer.id})
    db.commit()
    db.expire_all()
    assert db.get(Customer, customer.id).merged_at == moment.astimezone(UTC)
    assert RawSql.read_datetime(RawSql.of(db).scalar("SELECT merged_at FROM customers WHERE id = :id",
                                                     {"id": customer.id})) == moment  # fmt: skip
    db.rollback()


def test_writers_in_other_processes_queue_on_the_file_lock(tmp_path):
    """Two engines on one SQLite file (as two web workers have) write at once, and every write lands."""
    with fresh_database("sqlite", tmp_path) as (settings, _):
        engines = [create_db_engine(settings) for _ in range(2)]
        factories = [create_session_factory(engine) for engine in engines]
        errors: list[BaseException] = []

        def write(factory, n: int):
            try:
                for i in range(40):
                    with factory() as session:
                        make_inbound(session, email=f"proc{n}-{i}@example.org")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(f, n)) for n, f in enumerate(factories)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with factories[0]() as session:
            assert session.scalar(select(func.count()).select_from(Message)) == 80
        for engine in engines:
            engine.dispose()
