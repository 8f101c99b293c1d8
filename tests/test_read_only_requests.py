"""Read-only requests: page loads and API reads run beside the writer, never behind it, and may not write."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from cape.app import create_app
from cape.auth.deps import DbSession
from cape.db import WriteInReadOnlySession, create_db_engine, create_session_factory, mark_read_only, unit_of_work
from cape.kit.rawsql import RawSql
from cape.models import ApiToken, Team
from tests.conftest import DATABASES
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_inbound, make_user
from tests.fixtures.web import sign_in


@contextmanager
def _writer_holding(kind: str, settings, engine) -> Iterator[None]:
    """Another writer in the middle of a transaction until the block ends: on SQLite a second
    engine on the file (as another worker process has) holding the write turn, on PostgreSQL a
    transaction that keeps every other writer out of the tables pages read."""
    holding, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        other = create_db_engine(settings) if kind == "sqlite" else engine
        try:
            with other.connect() as connection, connection.begin():
                if kind == "sqlite":
                    connection.execute(text("UPDATE channels SET name = name"))
                else:
                    connection.execute(text("LOCK TABLE conversations, messages, customers IN EXCLUSIVE MODE"))
                holding.set()
                release.wait(60)  # far longer than a request waits for the write turn (30 s)
        except BaseException as exc:
            failure.append(exc)
            holding.set()
        finally:
            if other is not engine:
                other.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    assert not failure, failure
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.mark.parametrize("kind", DATABASES)
def test_pages_and_api_reads_load_while_another_writer_holds_the_database(kind, tmp_path):
    with fresh_database(kind, tmp_path) as (settings, engine):
        with unit_of_work(create_session_factory(engine)) as session:
            agent = make_user(session, name="Alice Agent")
            result = make_inbound(session, name="Olivia Bennett", subject="Snow tyres", body="Can I return them?")
        with TestClient(create_app(settings)) as client:
            headers = sign_in(client, SimpleNamespace(user=agent))
            with _writer_holding(kind, settings, engine):
                inbox = client.get("/inbox")
                assert inbox.status_code == 200 and "Snow tyres" in inbox.text
                page = client.get(f"/conversations/{result.conversation_id}")
                assert page.status_code == 200 and "Can I return them?" in page.text
                assert client.get(f"/customers/{result.customer_id}").status_code == 200
                listed = client.get("/api/v1/conversations")
                assert [c["id"] for c in listed.json()["items"]] == [result.conversation_id]
            url = f"/conversations/{result.conversation_id}/reply"
            reply = client.post(url, data={"body": "Yes."}, headers=headers)
            assert reply.status_code == 200 and "Yes." in reply.text


def _write_orm(session) -> None:
    session.add(Team(name="Written in a GET"))
    session.flush()


def _write_core(session) -> None:
    session.execute(update(Team).values(name="Renamed in a GET"))


def _write_driver(session) -> None:
    RawSql.of(session).execute("UPDATE teams SET name = name", {})


@pytest.mark.parametrize("write", [_write_orm, _write_core, _write_driver], ids=["orm", "core", "driver"])
def test_a_write_in_a_read_only_request_fails_clearly(app, db, write):
    @app.get("/test/writes")
    @app.post("/test/writes")
    def writes(session: DbSession):
        write(session)
        return {"written": True}

    with TestClient(app) as client:
        with pytest.raises(WriteInReadOnlySession):
            client.get("/test/writes")
        assert client.post("/test/writes").json() == {"written": True}  # a POST may write


def test_a_read_only_transaction_on_sqlite_refuses_any_write_and_leaves_its_connection_writable(tmp_path):
    with fresh_database("sqlite", tmp_path) as (_, engine):
        factory = create_session_factory(engine)
        with mark_read_only(factory()) as session:
            assert session.scalars(select(Team)).all() == []
            with pytest.raises(OperationalError, match="readonly"):
                session.execute(text("INSERT INTO teams (name, created_at) VALUES ('x', '2026-01-01')"))
        with unit_of_work(factory) as session:  # the same pooled connection, writable again
            session.add(Team(name="Support"))
        with unit_of_work(factory, read_only=True) as session:
            assert session.scalars(select(Team.name)).all() == ["Support"]


def test_an_api_read_notes_the_tokens_use_in_a_write_of_its_own(client, db, alice_agent):
    assert db.scalars(select(ApiToken.last_used_at)).all() == [None]
    assert client.get("/api/v1/users/me", headers=alice_agent.headers).status_code == 200
    db.expire_all()
    assert db.scalars(select(ApiToken.last_used_at)).one() is not None
