"""Engine and sessions. The request or job boundary commits or rolls back here, and only here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cape.config import Settings

_WRITE_TURN_TIMEOUT_S = 30


def create_db_engine(settings: Settings) -> Engine:
    """An engine for the configured database, tuned for SQLite or PostgreSQL."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - trivial
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SAVEPOINT support).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # One writer at a time, queued in Python. Every transaction takes SQLite's write lock up
    # front (BEGIN IMMEDIATE: a deferred transaction that reads and then writes fails with
    # SQLITE_BUSY_SNAPSHOT when another writer committed in between, which no timeout can
    # retry). Threads that find the lock taken would otherwise wait in SQLite's busy handler,
    # which sleeps in steps of up to 100 ms; a mutex wakes the next writer the moment the
    # previous one commits. Other processes on the same file still meet the busy handler.
    write_turn = threading.Lock()
    holders: set[int] = set()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if not write_turn.acquire(timeout=_WRITE_TURN_TIMEOUT_S):
            raise TimeoutError("the database stayed busy; try again")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            write_turn.release()
            raise
        holders.add(id(conn.connection.dbapi_connection))

    dialect = engine.dialect
    original_commit, original_rollback = dialect.do_commit, dialect.do_rollback

    def _release(connection) -> None:
        # Called with the pool's proxy or the raw sqlite3 connection, depending on the caller.
        key = id(getattr(connection, "dbapi_connection", connection))
        if key in holders:
            holders.discard(key)
            write_turn.release()

    def do_commit(dbapi_connection) -> None:
        try:
            original_commit(dbapi_connection)
        finally:
            _release(dbapi_connection)

    def do_rollback(dbapi_connection) -> None:
        try:
            original_rollback(dbapi_connection)
        finally:
            _release(dbapi_connection)

    # After the commit or rollback has happened, not before: the next writer must not find
    # SQLite's lock still held and fall back into the busy handler.
    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def unit_of_work(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits once at the end, or rolls back once on error."""
    session = session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
