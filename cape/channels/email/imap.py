"""Importing mail from IMAP mailboxes: each message is committed before it is marked seen or moved.

A crash at any point loses nothing: what was not committed is still unseen on the server and
is fetched again; what was committed but not yet marked is fetched again and recognised by
its Message-ID. UIDs (with UIDVALIDITY) are tracked for the record and for diagnosis.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import select
import ssl
import threading
import time
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from cape.channels.email.service import ImapConfig, Security, imap_config, list_email_channels, receive_email
from cape.config import Settings
from cape.kit.clock import utcnow
from cape.kit.tls import client_context, describe_tls_error
from cape.models import Channel, MailboxState

log = logging.getLogger(__name__)

FETCH_BATCH = 100
_UID = re.compile(rb"UID (\d+)")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")


class ImapError(Exception):
    """The IMAP server refused a command or could not be reached."""


def connect(config: ImapConfig, *, timeout: float = 60) -> imaplib.IMAP4:
    """A logged-in connection, protected as the mailbox is configured.

    With TLS (implicit or STARTTLS) the server's certificate and host name are verified unless
    the channel explicitly turns that off; the password is sent only once TLS is up.
    """
    client = _open(config, timeout=timeout)
    try:
        if config.security is Security.starttls:
            _starttls(client, config)
        client.login(config.user, config.password)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            client.shutdown()
        if isinstance(exc, imaplib.IMAP4.error):
            raise ImapError(f"login to {config.host} failed: {exc}") from None
        raise
    # Servers announce more (MOVE, IDLE...) once logged in than before; imaplib keeps the first list.
    typ, data = client.capability()
    if typ == "OK" and data and data[0]:
        client.capabilities = tuple(data[0].decode("ascii", "replace").upper().split())
    return client


def _open(config: ImapConfig, *, timeout: float) -> imaplib.IMAP4:
    if config.security is not Security.tls:
        return imaplib.IMAP4(config.host, config.port, timeout=timeout)
    context = client_context(ca_file=config.ca_file, verify=config.verify_tls)
    try:
        return imaplib.IMAP4_SSL(config.host, config.port, ssl_context=context, timeout=timeout)
    except ssl.SSLError as exc:
        raise ImapError(f"TLS with {_where(config)} failed, not logging in: {describe_tls_error(exc)}") from None


def _starttls(client: imaplib.IMAP4, config: ImapConfig) -> None:
    """Upgrade to TLS, or refuse to go on: without it the password would cross in clear."""
    if "STARTTLS" not in client.capabilities:
        raise ImapError(f"{_where(config)} does not offer STARTTLS, which this mailbox requires; not logging in")
    context = client_context(ca_file=config.ca_file, verify=config.verify_tls)
    try:
        client.starttls(ssl_context=context)
    except (ssl.SSLError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"STARTTLS with {_where(config)} failed, not logging in: {describe_tls_error(exc)}") from None


def _where(config: ImapConfig) -> str:
    return f"{config.host}:{config.port}"


def poll_mailboxes(
    session_factory: sessionmaker[Session], settings: Settings, *, address: str | None = None
) -> Iterator[tuple[str, int]]:
    """Poll every IMAP-backed email channel once; yields (address, new messages)."""
    with session_factory() as session:
        channels = [
            (c.id, c.address or "")
            for c in list_email_channels(session, polled_only=True)
            if address is None or c.address == address.lower()
        ]
    for channel_id, channel_address in channels:
        try:
            yield channel_address, poll_mailbox(session_factory, settings, channel_id=channel_id)
        except (OSError, imaplib.IMAP4.error, ImapError) as exc:
            log.warning("IMAP poll of %s failed: %s", channel_address, exc)
            _record_error(session_factory, channel_id, str(exc))


def poll_mailbox(
    session_factory: sessionmaker[Session], settings: Settings, *, channel_id: int, idle_s: float = 0
) -> int:
    """Import the new mail of one mailbox; with ``idle_s``, keep waiting (IDLE) and importing.

    Returns how many new messages were filed.
    """
    with session_factory() as session:
        channel = session.get_one(Channel, channel_id)
        config = imap_config(channel, settings.resolved_secret_key)
    client = connect(config)
    imported = 0
    try:
        imported += _import_new(client, session_factory, settings, channel_id=channel_id, config=config)
        deadline = time.monotonic() + idle_s
        while time.monotonic() < deadline:
            if _news_announced(client):
                pass  # mail arrived while we were importing: import again at once
            elif "IDLE" in client.capabilities:
                _idle(client, timeout=min(deadline - time.monotonic(), 29 * 60))
            else:
                time.sleep(max(0.0, min(deadline - time.monotonic(), settings.email_poll_interval_s)))
            imported += _import_new(client, session_factory, settings, channel_id=channel_id, config=config)
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
    return imported


def _import_new(
    client: imaplib.IMAP4,
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    channel_id: int,
    config: ImapConfig,
) -> int:
    typ, _ = client.select(_quote(config.folder))
    if typ != "OK":
        raise ImapError(f"cannot open folder {config.folder}")
    uidvalidity = _uidvalidity(client)
    _news_announced(client)  # SELECT's own counts are not news
    # With a processed folder, whatever is still in the folder is unprocessed; else, what is unseen.
    criterion = "ALL" if config.processed_folder else "UNSEEN"
    typ, data = client.uid("SEARCH", None, criterion)
    if typ != "OK":
        raise ImapError(f"search failed: {data!r}")
    uids = sorted(int(u) for u in (data[0] or b"").split())
    imported = 0
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        committed: list[int] = []
        for uid, raw in _fetch(client, batch):
            with session_factory() as session:
                channel = session.get_one(Channel, channel_id)
                try:
                    result = receive_email(session, settings=settings, channel=channel, raw=raw)
                except Exception:
                    # Left unseen on the server: the next poll tries again; the raw copy is kept.
                    log.exception("could not file a message from IMAP", extra={"uid": uid})
                    continue
            committed.append(uid)
            imported += int(result.created)
        if committed:
            _mark_processed(client, committed, config)
            _record_progress(session_factory, channel_id, uidvalidity, max(committed))
    return imported


def _fetch(client: imaplib.IMAP4, uids: list[int]) -> list[tuple[int, bytes]]:
    typ, data = client.uid("FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
    if typ != "OK":
        raise ImapError(f"fetch failed: {data!r}")
    messages: list[tuple[int, bytes]] = []
    for index, item in enumerate(data):
        if not isinstance(item, tuple):
            continue
        match = _UID.search(item[0])
        if match is None and index + 1 < len(data) and isinstance(data[index + 1], bytes):
            match = _UID.search(data[index + 1])  # UID given after the literal
        if match is not None:
            messages.append((int(match.group(1)), item[1]))
    return sorted(messages)


def _mark_processed(client: imaplib.IMAP4, uids: list[int], config: ImapConfig) -> None:
    uid_set = ",".join(map(str, uids))
    if not config.processed_folder:
        client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)")
        return
    if "MOVE" in client.capabilities:
        typ, data = client.uid("MOVE", uid_set, _quote(config.processed_folder))
    else:
        typ, data = client.uid("COPY", uid_set, _quote(config.processed_folder))
        if typ == "OK":
            client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen \Deleted)")
            client.expunge()
    if typ != "OK":
        # Not fatal: the messages stay and are recognised by Message-ID next time.
        log.warning("could not move imported mail", extra={"folder": config.processed_folder, "error": str(data)})
        client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Seen)")


def _news_announced(client: imaplib.IMAP4) -> bool:
    """Whether the server announced new mail (EXISTS/RECENT) since we last looked; forgets it."""
    exists = client.untagged_responses.pop("EXISTS", None)
    recent = client.untagged_responses.pop("RECENT", None)
    return bool(exists or recent)


def _idle(client: imaplib.IMAP4, *, timeout: float) -> None:
    """Wait (RFC 2177 IDLE) until the server announces new mail, or ``timeout`` passes."""
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    if not client.readline().startswith(b"+"):
        _read_until_tagged(client, tag)
        return
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if not _readable(client) and not select.select([client.sock], [], [], remaining)[0]:
            break
        line = client.readline()
        if not line:
            raise ImapError("connection closed while idling")
        if b"EXISTS" in line or b"RECENT" in line:
            break
    client.send(b"DONE\r\n")
    _read_until_tagged(client, tag)


def _readable(client: imaplib.IMAP4) -> bool:
    """Whether a line can be read without waiting: data already read into imaplib's buffer
    (or TLS's) is invisible to select(), e.g. an EXISTS that came in one packet with '+ idling'."""
    if getattr(client.sock, "pending", lambda: 0)():
        return True
    timeout = client.sock.gettimeout()
    client.sock.setblocking(False)
    try:
        return bool(client.file.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        client.sock.settimeout(timeout)


def _read_until_tagged(client: imaplib.IMAP4, tag: bytes) -> None:
    while True:
        line = client.readline()
        if not line:
            raise ImapError("connection closed")
        if line.startswith(tag):
            return


def _uidvalidity(client: imaplib.IMAP4) -> int | None:
    _, data = client.response("UIDVALIDITY")
    for item in data or []:
        if item:
            try:
                return int(item)
            except (TypeError, ValueError):
                match = _UIDVALIDITY.search(item if isinstance(item, bytes) else str(item).encode())
                if match:
                    return int(match.group(1))
    return None


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _state(session: Session, channel_id: int) -> MailboxState:
    state = session.get(MailboxState, channel_id)
    if state is None:
        state = MailboxState(channel_id=channel_id, last_uid=0)
        session.add(state)
    return state


def _record_progress(
    session_factory: sessionmaker[Session], channel_id: int, uidvalidity: int | None, last_uid: int
) -> None:
    with session_factory() as session:
        state = _state(session, channel_id)
        if state.uidvalidity != uidvalidity:  # the server renumbered the folder
            state.uidvalidity, state.last_uid = uidvalidity, 0
        state.last_uid = max(state.last_uid or 0, last_uid)
        state.last_polled_at = utcnow()
        state.last_error = None
        session.commit()


def _record_error(session_factory: sessionmaker[Session], channel_id: int, error: str) -> None:
    with session_factory() as session:
        state = _state(session, channel_id)
        state.last_polled_at = utcnow()
        state.last_error = error[:2000]
        session.commit()


def watch_mailboxes(
    session_factory: sessionmaker[Session],
    settings: Settings,
    *,
    address: str | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Keep every mailbox imported, one thread each, using IDLE where the server has it."""
    stop = stop or threading.Event()
    with session_factory() as session:
        channel_ids = [
            c.id
            for c in list_email_channels(session, polled_only=True)
            if address is None or c.address == address.lower()
        ]
    threads = [
        threading.Thread(target=_watch, args=(session_factory, settings, cid, stop), daemon=True, name=f"imap-{cid}")
        for cid in channel_ids
    ]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads) and not stop.wait(1):
            continue
    except KeyboardInterrupt:
        stop.set()


def _watch(session_factory: sessionmaker[Session], settings: Settings, channel_id: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            poll_mailbox(session_factory, settings, channel_id=channel_id, idle_s=settings.email_poll_interval_s * 10)
        except Exception as exc:
            log.warning("IMAP watch failed; retrying", extra={"channel_id": channel_id, "error": str(exc)})
            _record_error(session_factory, channel_id, str(exc))
            stop.wait(settings.email_poll_interval_s)
