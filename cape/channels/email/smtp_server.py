"""The SMTP listener: receives mail for configured addresses and answers 250 only once it is committed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session, sessionmaker

from cape.channels.email.service import channel_for_recipient, receive_email
from cape.config import Settings
from cape.db import mark_read_only
from cape.models import Channel

log = logging.getLogger(__name__)

_RECIPIENT_CACHE_S = 5.0
_RECIPIENT_CACHE_SIZE = 1024


class RecipientCache:
    """Which channel takes mail for an address (None: no channel), remembered for ``ttl_s``
    seconds. At most ``size`` addresses are kept, the least recently used forgotten first: a
    sender trying made-up addresses must not make it grow without end."""

    def __init__(self, *, size: int = _RECIPIENT_CACHE_SIZE, ttl_s: float = _RECIPIENT_CACHE_S):
        self._size = size
        self._ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, Channel | None]] = OrderedDict()
        self._lock = threading.Lock()  # used from the event loop and from the lookup threads

    def get(self, address: str) -> tuple[bool, Channel | None]:
        """(whether the address is remembered, its channel)."""
        with self._lock:
            entry = self._entries.get(address)
            if entry is None:
                return False, None
            if entry[0] <= time.monotonic():
                del self._entries[address]
                return False, None
            self._entries.move_to_end(address)
            return True, entry[1]

    def put(self, address: str, channel: Channel | None) -> None:
        with self._lock:
            self._entries[address] = (time.monotonic() + self._ttl_s, channel)
            self._entries.move_to_end(address)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class InboundMailHandler:
    """aiosmtpd handler: 550 for unknown recipients; 250 after commit, 451 on any failure."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, *, threads: int = 8):
        self.session_factory = session_factory
        self.settings = settings
        # The database work is synchronous: it runs on these threads, off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cape-smtp")
        self.recipients = RecipientCache()

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str, rcpt_options):
        known, channel = self.recipients.get(address.lower())
        if known:
            return self._rcpt_answer(envelope, address, channel.id if channel else None)
        loop = asyncio.get_running_loop()
        try:
            channel_id = await loop.run_in_executor(self.executor, self._channel_id, address)
        except Exception:
            log.exception("recipient lookup failed")
            return "451 4.3.0 Temporary failure, please try again later"
        return self._rcpt_answer(envelope, address, channel_id)

    @staticmethod
    def _rcpt_answer(envelope: Envelope, address: str, channel_id: int | None) -> str:
        if channel_id is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope):
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self._receive, envelope.mail_from, list(envelope.rcpt_tos), raw)
        except Exception:
            # Nothing acknowledged: the sending server keeps the message and retries.
            log.exception("could not store an inbound message")
            return "451 4.3.0 Temporary failure, please try again later"
        return "250 2.0.0 Message accepted"

    def _channel_id(self, address: str) -> int | None:
        channel = self._channel(address)
        return channel.id if channel is not None else None

    def _channel(self, address: str) -> Channel | None:
        """Which channel takes mail for this address; remembered (detached) for a few seconds."""
        key = address.lower()
        known, channel = self.recipients.get(key)
        if known:
            return channel
        with mark_read_only(self.session_factory()) as session:
            channel = channel_for_recipient(session, recipient=address)
            if channel is not None:
                session.expunge(channel)
        self.recipients.put(key, channel)
        return channel

    def _receive(self, mail_from: str | None, recipients: list[str], raw: bytes) -> None:
        channels = {c.id: c for c in map(self._channel, recipients) if c is not None}
        # SQLite writers take turns on the write turn (cape.kit.sqlite_turn), not in SQLite's busy handler.
        with self.session_factory() as session:
            for channel_id in sorted(channels):
                # receive_email commits before returning, so 250 is said only after commit.
                receive_email(
                    session, settings=self.settings, channel=channels[channel_id], raw=raw, envelope_from=mail_from
                )

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class SmtpListener:
    """The running listener; ``stop()`` closes the port and waits for messages in flight."""

    def __init__(self, controller: Controller, handler: InboundMailHandler):
        self.controller = controller
        self.handler = handler

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()
        self.handler.close()


def start_smtp_listener(
    settings: Settings, session_factory: sessionmaker[Session], *, port: int | None = None
) -> SmtpListener:
    """Start listening on ``settings.smtp_host`` and ``port`` (default ``settings.smtp_port``)."""
    # aiosmtpd logs every SMTP command at INFO, addresses included; keep only its problems.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = InboundMailHandler(session_factory, settings)
    controller = Controller(
        handler,
        hostname=settings.smtp_host,
        port=port if port is not None else settings.smtp_port,
        decode_data=False,
        enable_SMTPUTF8=True,
        data_size_limit=settings.email_max_message_bytes,
        server_hostname="cape",
        ready_timeout=10,
    )
    controller.start()
    log.info("SMTP listener started", extra={"host": settings.smtp_host, "port": controller.port})
    return SmtpListener(controller, handler)
