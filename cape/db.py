"""Engine and sessions. The request or job boundary commits or rolls back here, and only here."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from cape.config import Settings
from cape.kit.errors import DatabaseBusy

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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Savepoints (ingest files each batch in one) journal into a temporary file otherwise:
        # measured 20% of ingest's time. Sorts and temporary tables stay in memory too.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    # One writer at a time, queued in Python. Every transaction takes SQLite's write lock up
    # front (BEGIN IMMEDIATE: a deferred transaction that reads and then writes fails with
    # SQLITE_BUSY_SNAPSHOT when another writer committed in between, which no timeout can
    # retry). Threads that find the lock taken would otherwise wait in SQLite's busy handler,
    # which sleeps in steps of up to 100 ms; a mutex wakes the next writer the moment the
    # previous one commits. Other processes (web workers, the CLI) and other engines on the
    # same file queue on a file lock beside it, polled in steps of at most 2 ms.
    write_turn = WriteTurn(_FileWriteLock.beside(engine))
    _WRITE_TURNS[engine] = write_turn
    holders: dict[int, bool] = {}  # connections in a transaction: whether they took the turn

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        took_turn = write_turn.take(_WRITE_TURN_TIMEOUT_S)
        try:
            # Straight to the driver: this runs for every transaction, and through
            # exec_driver_sql it cost as much as the rest of a small transaction.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            if took_turn:
                write_turn.give_back()
            if isinstance(exc, sqlite3.Error):
                raise DBAPIError.instance("BEGIN IMMEDIATE", (), exc, sqlite3.Error) from exc
            raise
        holders[id(conn.connection.dbapi_connection)] = took_turn

    dialect = engine.dialect
    original_commit, original_rollback = dialect.do_commit, dialect.do_rollback

    def _release(connection) -> None:
        # Called with the pool's proxy or the raw sqlite3 connection, depending on the caller.
        key = id(getattr(connection, "dbapi_connection", connection))
        if holders.pop(key, False):
            write_turn.give_back()

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


class WriteTurn:
    """The right to write to a SQLite database: a mutex for this process's threads, then a file
    lock for other processes and engines on the same file.

    Each transaction takes it at BEGIN and gives it back at COMMIT or ROLLBACK, which may
    happen on another thread. A thread may also hold it across several transactions (``held``),
    having taken it without waiting (``try_reserve``) or had another thread wait for it
    (``wait``); its transactions then run in that turn.
    """

    def __init__(self, file_lock: _FileWriteLock | None) -> None:
        self._lock = threading.Lock()
        self._file_lock = file_lock
        self._held_by: int | None = None

    def take(self, timeout: float) -> bool:
        """Wait for the turn; False when this thread already holds it (``held``)."""
        if self._held_by == threading.get_ident():
            return False
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            raise DatabaseBusy("the database stayed busy; try again")
        if self._file_lock is not None and not self._file_lock.acquire(deadline):
            self._lock.release()
            raise DatabaseBusy("the database stayed busy; try again")
        return True

    def give_back(self) -> None:
        if self._file_lock is not None:
            self._file_lock.release()
        self._lock.release()

    def wait(self, timeout: float) -> None:
        """Block until the turn is free and take it, to hand to a thread that will hold it.

        The file lock is waited for in the kernel, not polled: the moment another process lets
        go, this returns. ``timeout`` bounds the wait for this process's other threads only.
        """
        if not self._lock.acquire(timeout=timeout):
            raise DatabaseBusy("the database stayed busy; try again")
        if self._file_lock is not None:
            try:
                self._file_lock.acquire_waiting()
            except BaseException:
                self._lock.release()
                raise

    @contextmanager
    def try_reserve(self) -> Iterator[bool]:
        """Hold the turn for this block if it is free now; yields whether it was."""
        if not self._lock.acquire(blocking=False):
            yield False
            return
        if self._file_lock is not None and not self._file_lock.acquire(deadline=0.0):
            self._lock.release()
            yield False
            return
        with self.held():
            yield True

    @contextmanager
    def held(self) -> Iterator[None]:
        """This thread holds the turn already taken for it, for this block, then gives it back."""
        self._held_by = threading.get_ident()
        try:
            yield
        finally:
            self._held_by = None
            self.give_back()


_WRITE_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurn] = weakref.WeakKeyDictionary()


def write_turn(engine: Engine) -> WriteTurn | None:
    """The in-process write turn of a SQLite engine; None for PostgreSQL."""
    return _WRITE_TURNS.get(engine)


class _FileWriteLock:
    """An exclusive lock on a file beside the database, for writers in other processes."""

    def __init__(self, path: str):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    @classmethod
    def beside(cls, engine: Engine) -> _FileWriteLock | None:
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        lock = cls(database + "-writer.lock")
        weakref.finalize(engine, os.close, lock._fd)
        return lock

    def acquire(self, deadline: float) -> bool:
        delay = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.002)

    def acquire_waiting(self) -> None:
        """Wait for the lock in the kernel, however long another process holds it."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


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
