"""Engine and sessions. The request or job boundary commits or rolls back here, and only here.

A session may be opened read-only (``mark_read_only``), before its first statement: page loads, API
reads, exports and scans that only look. On SQLite its transactions then run beside the writer
instead of waiting for the write turn (cape.kit.sqlite_turn); on both databases a write in it is
refused with ``WriteInReadOnlySession``, so a GET that writes by accident fails in tests rather
than queueing behind writers in production. Work that must write from a read-only request (an
API token's last use) opens a short write session of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cape.config import Settings
from cape.kit import sqlite_turn

# In a session's info: its transactions only read.
READ_ONLY = "cape.read_only"


class WriteInReadOnlySession(RuntimeError):
    """A write was attempted in a session opened read-only: a bug in the code that tried it."""


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
            pool_use_lifo=True,
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
        # Readers see the last commit and never wait for the writer.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Savepoints (ingest files each batch in one) journal into a temporary file otherwise:
        # measured 20% of ingest's time. Sorts and temporary tables stay in memory too.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    sqlite_turn.install(engine)


class CapeSession(Session):
    """A session whose transactions, once it is marked read-only, begin on the engine's reader."""

    def get_bind(self, mapper=None, **kw):
        bind = super().get_bind(mapper, **kw)
        if self.info.get(READ_ONLY) and isinstance(bind, Engine):
            return sqlite_turn.reader(bind)
        return bind


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, class_=CapeSession, expire_on_commit=False, autoflush=True)


def mark_read_only(session: Session) -> Session:
    """Mark a new session read-only, before its first statement; returns it."""
    if session.in_transaction():
        raise RuntimeError("a session is made read-only before its first statement")
    session.info[READ_ONLY] = True
    return session


def is_read_only(session: Session) -> bool:
    return bool(session.info.get(READ_ONLY))


@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, _flush_context, _instances) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.deleted or session.dirty):
        changed = next(iter(session.new or session.deleted or session.dirty))
        raise WriteInReadOnlySession(f"a change to {type(changed).__name__} in a read-only session")


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement(state) -> None:
    if state.session.info.get(READ_ONLY) and (state.is_insert or state.is_update or state.is_delete):
        raise WriteInReadOnlySession(f"a write in a read-only session: {state.statement}")


@contextmanager
def unit_of_work(session_factory: sessionmaker[Session], *, read_only: bool = False) -> Iterator[Session]:
    """A session that commits once at the end, or rolls back once on error; ``read_only`` for work
    that only looks (see the module's docstring)."""
    session = session_factory()
    if read_only:
        mark_read_only(session)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
