"""Group commit for inbound messages: concurrent ingests share a few transactions.

A request hands its message over and awaits the result without holding a thread of its own.
Whatever has queued up (up to a limit) is ingested as one batch through ``ingest_many``: every
raw source stored, every message filed, one commit. Under load that is one commit for a whole
batch instead of one per message. A lone message is simply ``ingest`` with a batch of one, and no
request is answered before its message is committed.

Where batches run:
- On SQLite, on the event loop itself, holding the database's write turn. SQLite is a local file
  and a batch takes under a millisecond; a writer thread beside the loop would instead spend most
  of its time waiting for the GIL between statements (measured: 2.6 times the CPU and 5 ms a
  batch). The loop never waits for the turn: when it is free the loop takes it at once
  (``WriteTurn.try_reserve``); when another process or thread has it, a thread waits for it in
  the kernel (``_TurnWaiter``) and hands it to the loop the moment it is free, while the loop
  serves requests whose messages join the batch. With two web workers this is what lets both
  cores work (measured: 930 msg/s when busy batches went to a writer thread, 1,350 to 1,600 now).
- In a writer thread on PostgreSQL (network round trips must not block the loop) and with
  sessions bound to a connection (tests).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cape.channels.base import InboundMessage
from cape.conversations.service import IngestResult, ingest_many, is_transient
from cape.kit.errors import CapeError, DatabaseBusy
from cape.kit.sqlite_turn import WriteTurn, write_turn

log = logging.getLogger(__name__)

# Runs in the batch's first transaction, before anything is stored: authenticates the caller and
# builds the message. A CapeError it raises answers that request alone.
Prepare = Callable[[Session], InboundMessage]

# How long messages wait for a write turn that another process keeps, before a 503.
_TURN_TIMEOUT_S = 30.0
# Tries of one message when the database answers "try again" (PostgreSQL deadlocks).
_TRANSIENT_ATTEMPTS = 3

_STOP = object()
_UNKNOWN = object()


@dataclass(eq=False)
class _Pending:
    prepare: Prepare
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    outcome: IngestResult | BaseException | None = field(default=None)


class _BatchIngester:
    """Ingests batches with one session kept between them, so that what it looks up once (the
    built-in channels) stays known. Each batch ends its transactions; a failure starts afresh."""

    def __init__(self, new_session: Callable[[], Session]):
        self._new_session = new_session
        self._session: Session | None = None

    def ingest(self, batch: list[_Pending]) -> None:
        """Give every pending message of ``batch`` its outcome."""
        try:
            self._ingest_together(batch)
            return
        except Exception as exc:
            self.close()
            if len(batch) > 1:
                log.warning("a batch of inbound messages failed together; ingesting each alone", exc_info=True)
            elif not is_transient(exc):
                batch[0].outcome = batch[0].outcome or exc
                return
        # Nothing of this batch was committed (filing failures are answered per message inside
        # ingest_many): each is tried on its own, so that one cannot fail the others, and tried
        # again in a fresh transaction when the database said "try again" (a deadlock).
        for pending in batch:
            for _ in range(_TRANSIENT_ATTEMPTS):
                pending.outcome = None
                try:
                    self._ingest_together([pending])
                    break
                except Exception as exc:
                    self.close()
                    pending.outcome = pending.outcome or exc
                    if not is_transient(exc):
                        break

    def close(self) -> None:
        """Forget the session; after a failure its connection may be broken, so closing may fail."""
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:
                log.warning("closing the inbound queue's session failed", exc_info=True)

    def end_transaction(self) -> None:
        if self._session is not None and self._session.in_transaction():
            self._session.rollback()

    def _ingest_together(self, batch: list[_Pending]) -> None:
        if self._session is None:
            self._session = self._new_session()
        session = self._session
        ready: list[tuple[_Pending, InboundMessage]] = []
        for pending in batch:
            try:
                ready.append((pending, pending.prepare(session)))
            except CapeError as exc:
                pending.outcome = exc
        if not ready:
            session.commit()
            return
        outcomes = ingest_many(session, inbounds=[inbound for _, inbound in ready])
        for (pending, _), outcome in zip(ready, outcomes, strict=True):
            pending.outcome = outcome


class _TurnWaiter:
    """A thread that waits for the SQLite write turn and hands it to an event loop."""

    def __init__(self, turn: WriteTurn):
        self._turn = turn
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="cape-write-turn-waiter", daemon=True)
        self._thread.start()

    def wait_for(self, loop: asyncio.AbstractEventLoop, then: Callable[[asyncio.AbstractEventLoop, bool], Any]) -> None:
        """Call ``then(loop, True)`` on ``loop`` once the turn is taken for it, which must give it
        back; ``then(loop, False)`` when this process's own threads kept it too long."""
        self._requests.put((loop, then))

    def close(self) -> None:
        self._requests.put(_STOP)  # not joined: it may be waiting for another process

    def _run(self) -> None:
        while (request := self._requests.get()) is not _STOP:
            loop, then = request
            try:
                self._turn.wait(_TURN_TIMEOUT_S)
            except Exception:  # DatabaseBusy, or worse: the loop must hear of it either way
                log.warning("could not take the write turn for the inbound queue", exc_info=True)
                taken = False
            else:
                taken = True
            try:
                loop.call_soon_threadsafe(then, loop, taken)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                if taken:
                    self._turn.give_back()


class InboundQueue:
    """Batches concurrent inbound messages, on the event loop or in a writer thread."""

    def __init__(self, new_session: Callable[[], Session], *, max_batch: int = 64):
        self._new_session = new_session
        self._max_batch = max_batch
        self._turn: WriteTurn | object | None = _UNKNOWN
        # On the loop: messages waiting for the next flush.
        self._waiting: list[_Pending] = []
        self._flush_scheduled = False  # a flush is due, or the turn waiter is waiting for the turn
        self._turn_timer: asyncio.TimerHandle | None = None
        self._turn_waiter: _TurnWaiter | None = None
        self._on_loop = _BatchIngester(new_session)
        # In the writer thread.
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._in_thread = _BatchIngester(new_session)
        self._lock = threading.Lock()

    async def ingest(self, prepare: Prepare) -> IngestResult:
        """Ingest the message ``prepare`` builds; returns once it is committed, or raises its error."""
        loop = asyncio.get_running_loop()
        pending = _Pending(prepare, loop, loop.create_future())
        if self._loop_turn() is None:
            self._to_writer([pending])
        else:
            self._waiting.append(pending)
            if not self._flush_scheduled:
                # After the callbacks already due: requests read in the same turn of the loop
                # join the batch.
                self._flush_scheduled = True
                loop.call_soon(self._flush, loop)
        # A client that hangs up does not undo the message: it is filed, and a retry finds it.
        return await pending.future

    def close(self) -> None:
        """Finish what is queued, then stop the writer (a later ``ingest`` starts it again)."""
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(_STOP)
            writer.join()
        if self._turn_waiter is not None:
            self._turn_waiter.close()
            self._turn_waiter = None
        if self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None
        self._answer_busy()  # none of these was stored: their callers may retry
        self._flush_scheduled = False
        self._on_loop.close()

    def _loop_turn(self) -> WriteTurn | None:
        """The SQLite write turn batches may take on the loop; None where they must not."""
        if self._turn is _UNKNOWN:
            session = self._new_session()
            try:
                bind = session.get_bind()
            finally:
                session.close()
            self._turn = write_turn(bind) if isinstance(bind, Engine) else None
        return self._turn  # type: ignore[return-value]

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        turn = self._loop_turn()
        assert turn is not None
        batch: list[_Pending] = []
        with turn.try_reserve() as reserved:
            if reserved:
                try:
                    batch = self._ingest_next_batch()
                finally:
                    self._after_batch(loop, batch)
        if not reserved:
            # Another writer has the turn: another worker process, usually, for a fraction of
            # a millisecond. A thread waits for it in the kernel and hands it to the loop, which
            # serves requests meanwhile; what they bring joins the batch.
            if self._turn_waiter is None:
                self._turn_waiter = _TurnWaiter(turn)
            self._turn_waiter.wait_for(loop, self._flush_in_turn)
            self._turn_timer = loop.call_later(_TURN_TIMEOUT_S, self._turn_timed_out, loop)

    def _flush_in_turn(self, loop: asyncio.AbstractEventLoop, taken: bool) -> None:
        """On the loop, with the write turn the waiter took for it (unless ``taken`` is False)."""
        if self._turn_timer is not None:
            self._turn_timer.cancel()
            self._turn_timer = None
        if not taken:
            self._answer_busy()
            self._flush_scheduled = False
            return
        turn = self._loop_turn()
        assert turn is not None
        batch: list[_Pending] = []
        with turn.held():
            try:
                batch = self._ingest_next_batch()
            finally:
                self._after_batch(loop, batch)

    def _ingest_next_batch(self) -> list[_Pending]:
        batch = [pending for pending in self._waiting[: self._max_batch] if not pending.future.done()]
        del self._waiting[: self._max_batch]
        if batch:
            try:
                self._on_loop.ingest(batch)
                self._on_loop.end_transaction()  # none may outlive the turn
            except Exception as exc:  # ingest answers per message; this is the session itself failing
                log.exception("the inbound queue's session failed")
                self._on_loop.close()
                for pending in batch:
                    pending.outcome = pending.outcome or exc
        return batch

    def _after_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        _settle(batch)
        self._flush_scheduled = bool(self._waiting)
        if self._waiting:
            loop.call_soon(self._flush, loop)

    def _turn_timed_out(self, loop: asyncio.AbstractEventLoop) -> None:
        """Another process kept the turn: what waits is answered with a 503; the waiter waits on."""
        self._answer_busy()
        self._turn_timer = loop.call_later(_TURN_TIMEOUT_S, self._turn_timed_out, loop)

    def _answer_busy(self) -> None:
        busy = DatabaseBusy("the database stayed busy; try again")
        for pending in self._waiting:
            pending.outcome = busy
        _settle(self._waiting)
        self._waiting = []

    def _to_writer(self, batch: list[_Pending]) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write, name="cape-inbound-writer", daemon=True)
                    self._writer.start()
        for pending in batch:
            self._queue.put(pending)

    def _write(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._in_thread.close()
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._in_thread.ingest(batch)
            _answer(batch)
            if stop:
                self._in_thread.close()
                return


def _answer(batch: list[_Pending]) -> None:
    """From the writer thread: settle each request on its own loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for pending in batch:
        by_loop.setdefault(pending.loop, []).append(pending)
    for loop, answered in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, answered)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            continue


def _settle(answered: list[_Pending]) -> None:
    for pending in answered:
        if pending.future.done():  # the request was cancelled
            continue
        if isinstance(pending.outcome, BaseException):
            pending.future.set_exception(pending.outcome)
        elif pending.outcome is None:
            pending.future.set_exception(RuntimeError("the inbound message was not processed"))
        else:
            pending.future.set_result(pending.outcome)
