"""The write turn: on SQLite, one writing transaction at a time, queued in Python; readers beside it.

Why it exists. SQLite lets one transaction write at a time. A transaction that begins DEFERRED,
reads, and then writes fails with SQLITE_BUSY_SNAPSHOT when another writer committed in between,
which no busy timeout can retry; so a transaction that may write begins IMMEDIATE, taking
SQLite's write lock up front. Threads that find it taken would wait in SQLite's busy handler,
which sleeps in steps of up to 100 ms; here they queue instead, on a mutex for this process's
threads and then on a file lock beside the database for other processes (web workers, the CLI)
and other engines on the same file, and the next writer starts the moment the previous one
commits. That is the write turn: taken at BEGIN, given back once COMMIT or ROLLBACK is done.

Readers do not take it. In WAL mode a reader sees the last commit and never waits for the writer,
so a transaction known before it starts to only read (one begun on ``reader(engine)``: cape.db
routes read-only sessions there) begins DEFERRED without the turn, under ``PRAGMA query_only``:
a write in it fails at once ("attempt to write a readonly database") instead of queueing readers
behind writers or failing later with SQLITE_BUSY_SNAPSHOT.

A thread may also hold the turn across several transactions (``WriteTurn.held``), having taken it
without waiting (``try_reserve``) or had another thread wait for it (``wait``); the inbound queue
does, to run group commits on the event loop (cape.conversations.inbound_queue).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError

from cape.kit.errors import DatabaseBusy

_TIMEOUT_S = 30
# The execution option that marks an engine's transactions as read-only.
_READER_OPTION = "cape_reader"
# What a connection's open transaction holds.
_READING, _WRITING, _IN_HELD_TURN = "reading", "writing", "in held turn"


def install(engine: Engine) -> None:
    """Make ``engine`` (SQLite) take the write turn for each writing transaction, and give it a reader."""
    turn = WriteTurn(_FileWriteLock.beside(engine))
    engine._cape_write_turn = turn  # type: ignore[attr-defined]
    engine._cape_reader = engine.execution_options(**{_READER_OPTION: True})  # type: ignore[attr-defined]
    transactions: dict[int, str] = {}  # connections in a transaction: what it holds

    @event.listens_for(engine, "begin")  # also for the reader, which shares the engine's events and pool
    def _on_begin(conn):
        # Straight to the driver: this runs for every transaction, and through exec_driver_sql
        # it cost as much as the rest of a small transaction.
        driver = conn.connection.driver_connection
        key = id(conn.connection.dbapi_connection)
        if conn.get_execution_options().get(_READER_OPTION):
            _driver_execute(driver, "PRAGMA query_only = ON")
            transactions[key] = _READING
            try:
                _driver_execute(driver, "BEGIN")
            except BaseException:
                _end(conn.connection.dbapi_connection)
                raise
            return
        took_turn = turn.take(_TIMEOUT_S)
        try:
            _driver_execute(driver, "BEGIN IMMEDIATE")
        except BaseException:
            if took_turn:
                turn.give_back()
            raise
        transactions[key] = _WRITING if took_turn else _IN_HELD_TURN

    def _end(connection) -> None:
        # Called with the pool's proxy or the raw sqlite3 connection, depending on the caller.
        raw = getattr(connection, "dbapi_connection", connection)
        held = transactions.pop(id(raw), None)
        if held is _WRITING:
            turn.give_back()
        elif held is _READING:
            raw.execute("PRAGMA query_only = OFF")

    dialect = engine.dialect
    original_commit, original_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection) -> None:
        try:
            original_commit(dbapi_connection)
        finally:
            _end(dbapi_connection)

    def do_rollback(dbapi_connection) -> None:
        try:
            original_rollback(dbapi_connection)
        finally:
            _end(dbapi_connection)

    # After the commit or rollback has happened, not before: the next writer must not find
    # SQLite's lock still held and fall back into the busy handler.
    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def _driver_execute(driver, statement: str) -> None:
    try:
        driver.execute(statement)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


def reader(engine: Engine) -> Engine:
    """The engine for transactions that only read: on SQLite, beside the writer, without the turn;
    ``engine`` itself elsewhere (PostgreSQL readers never wait for writers)."""
    return getattr(engine, "_cape_reader", engine)


def write_turn(engine: Engine) -> WriteTurn | None:
    """The write turn of a SQLite engine; None for PostgreSQL."""
    return getattr(engine, "_cape_write_turn", None)


class WriteTurn:
    """The right to write to a SQLite database: a mutex for this process's threads, then a file
    lock for other processes and engines on the same file.

    Each writing transaction takes it at BEGIN and gives it back at COMMIT or ROLLBACK, which may
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
