"""Turning raw RFC 5322 bytes into what Cape needs, without ever raising.

Mail from the wild is often broken: wrong charsets, 8-bit bytes in headers, missing
boundaries, bad encodings. Every step here falls back to something readable, and what
cannot be understood is reported in ``ParsedEmail.problems`` rather than raised, because
the caller must still file the message (its raw source is kept byte for byte anyway).
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, message_from_string, policy
from email.header import decode_header, make_header
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

import nh3

_MSGID = re.compile(r"<([^<>\s]+)>")
_FALLBACK_CHARSETS = ("utf-8", "cp1252", "latin-1")
_CHARSET_ALIASES = {"unknown-8bit": "cp1252", "x-unknown": "cp1252", "iso-8859-1": "cp1252", "us-ascii": "cp1252"}
_AUTO_PRECEDENCE = {"bulk", "auto_reply", "junk", "list"}
_MAX_ID = 900
_LINE_BREAKS = re.compile(r"[\r\n]")


class _ModernPolicy(EmailPolicy):
    """The standard library's modern policy, remembering parsed header values.

    The modern policy parses a header anew on every access (a message's Content-Type is read
    half a dozen times while walking it); parsed headers are immutable, so reuse them.
    """

    def header_fetch_parse(self, name, value):
        if hasattr(value, "name"):
            return value
        return _parsed_header(self, name, value)


@functools.lru_cache(maxsize=4096)
def _parsed_header(policy_: _ModernPolicy, name: str, value: str):
    return policy_.header_factory(name, _LINE_BREAKS.sub("", value))


POLICY = _ModernPolicy()


@dataclass
class ParsedAttachment:
    filename: str
    content_type: str
    size: int
    content: bytes | None  # None when over the size limit
    content_id: str | None = None
    is_inline: bool = False


@dataclass
class Bounce:
    """A delivery status notification: which of our recipients failed, and why."""

    recipients: list[str]
    reason: str
    original_message_id: str | None = None


@dataclass
class ParsedEmail:
    message_id: str
    has_message_id: bool
    from_address: str | None = None
    from_name: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    body_text: str = ""
    body_html: str | None = None
    attachments: list[ParsedAttachment] = field(default_factory=list)
    auto_submitted: bool = False
    bounce: Bounce | None = None
    problems: list[str] = field(default_factory=list)
    unparseable: bool = False

    @property
    def thread_refs(self) -> list[str]:
        """Ids this message answers, most recent first (In-Reply-To, then References backwards)."""
        refs: list[str] = []
        for ref in [*self.in_reply_to, *reversed(self.references)]:
            if ref not in refs and ref != self.message_id:
                refs.append(ref)
        return refs


def parse_email(raw: bytes, *, max_attachment_bytes: int) -> ParsedEmail:
    """Everything Cape reads from a message; never raises, reports what went wrong instead."""
    fallback_id = content_message_id(raw)
    try:
        message = message_from_bytes(raw, policy=POLICY)
    except Exception as exc:  # the email package rarely gives up, but it can
        return ParsedEmail(
            message_id=fallback_id, has_message_id=False, unparseable=True,
            problems=[f"message: {exc!r}"], body_text=_clean(raw.decode("utf-8", "replace")),
        )  # fmt: skip
    parsed = ParsedEmail(message_id=fallback_id, has_message_id=False)
    for step in (_read_headers, _read_body, _read_bounce):
        try:
            step(message, parsed, max_attachment_bytes)
        except Exception as exc:
            parsed.problems.append(f"{step.__name__.strip('_')}: {exc!r}")
    parsed.problems += [f"defect: {type(d).__name__}" for d in _defects(message)]
    if not (parsed.from_address or parsed.subject or parsed.has_message_id or parsed.date):
        parsed.unparseable = True  # nothing recognisable as an email header
    return parsed


def content_message_id(raw: bytes) -> str:
    """A stable stand-in for a missing Message-ID, so a re-delivered copy is still recognised."""
    return f"<sha256-{hashlib.sha256(raw).hexdigest()}@message-id.invalid>"


def _read_headers(message: Message, parsed: ParsedEmail, _limit: int) -> None:
    ids = message_ids(raw_header(message, "Message-ID"))
    if ids:
        parsed.message_id, parsed.has_message_id = ids[0], True
    # Addresses are split on the raw value, then display names decoded: an encoded name may
    # decode to text with commas or brackets that must not split the address list.
    name, address = parseaddr(raw_header(message, "From"))
    if "@" not in address:
        name, address = parseaddr(raw_header(message, "Reply-To") or raw_header(message, "Sender"))
    parsed.from_address = address.strip().lower() if "@" in address else None
    parsed.from_name = decode_words(name).strip() or None
    parsed.to = [
        addr.lower()
        for _, addr in getaddresses([raw_header(message, n) for n in ("To", "Cc", "Delivered-To", "X-Original-To")])
        if "@" in addr
    ]
    parsed.cc = [addr.lower() for _, addr in getaddresses([raw_header(message, "Cc")]) if "@" in addr]
    parsed.subject = header(message, "Subject") or None
    parsed.in_reply_to = message_ids(raw_header(message, "In-Reply-To"))
    parsed.references = message_ids(raw_header(message, "References"))
    date = raw_header(message, "Date")
    if date:
        try:
            parsed.date = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            parsed.problems.append("date: unreadable")
    auto = raw_header(message, "Auto-Submitted").lower()
    precedence = raw_header(message, "Precedence").lower()
    parsed.auto_submitted = (
        (bool(auto) and auto != "no")
        or precedence in _AUTO_PRECEDENCE
        or bool(raw_header(message, "X-Autoreply") or raw_header(message, "X-Autorespond"))
    )


def _read_body(message: Message, parsed: ParsedEmail, max_attachment_bytes: int) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    for part in _leaf_parts(message):
        content_type = _clean(part.get_content_type())[:255]
        disposition = _disposition(part)
        filename = _filename(part)
        if content_type.startswith("multipart/"):  # a broken multipart, left as text by the parser
            texts.append(decode_part_text(part))
            continue
        if content_type in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            text = decode_part_text(part)
            (texts if content_type == "text/plain" else htmls).append(text)
            continue
        if content_type in ("message/delivery-status", "text/rfc822-headers") and parsed.bounce is None:
            texts.append(decode_part_text(part))
            continue
        payload = _payload_bytes(part)
        content_id = "".join(message_ids(raw_header(part, "Content-ID"))).strip("<>") or None
        parsed.attachments.append(
            ParsedAttachment(
                filename=filename or _default_filename(content_type, len(parsed.attachments) + 1),
                content_type=content_type,
                size=len(payload),
                content=payload if len(payload) <= max_attachment_bytes else None,
                content_id=content_id,
                is_inline=disposition == "inline" or (content_id is not None and content_type.startswith("image/")),
            )
        )
    parsed.body_text = _clean("\n\n".join(t.strip("\n") for t in texts if t.strip()))
    if htmls:
        parsed.body_html = _clean("\n".join(htmls))
        if not parsed.body_text:
            parsed.body_text = html_to_text(parsed.body_html)


def _read_bounce(message: Message, parsed: ParsedEmail, _limit: int) -> None:
    is_report = message.get_content_type() == "multipart/report" and (
        (message.get_param("report-type") or "").lower() == "delivery-status"
    )
    if not is_report:
        return
    recipients: list[str] = []
    reasons: list[str] = []
    original_id: str | None = None
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in _status_blocks(part):
                action = str(block.get("Action", "")).strip().lower()
                recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                if action == "failed" and recipient:
                    recipients.append(recipient.rpartition(";")[2].strip().strip("<>").lower())
                    reasons.append(str(block.get("Diagnostic-Code") or block.get("Status") or "failed").strip())
        elif content_type in ("message/rfc822", "text/rfc822-headers") and original_id is None:
            original = part.get_payload(0) if part.is_multipart() else message_from_string(decode_part_text(part))
            ids = message_ids(raw_header(original, "Message-ID"))
            original_id = ids[0] if ids else None
    parsed.auto_submitted = True
    parsed.bounce = Bounce(
        recipients=[r for r in recipients if "@" in r],
        reason=_clean("; ".join(reasons))[:500] or "delivery failed",
        original_message_id=original_id,
    )
    if original_id and original_id not in parsed.in_reply_to:
        parsed.in_reply_to.append(original_id)


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    # Not split into blocks by the parser: split the text on blank lines ourselves.
    text = decode_part_text(part)
    return [message_from_string(block) for block in re.split(r"\r?\n\r?\n", text) if block.strip()]


def _leaf_parts(message: Message):
    """Every non-multipart part, in order; an attached message counts as one attachment."""
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            stack[0:0] = [c for c in children if isinstance(c, Message)] if isinstance(children, list) else []
        else:
            yield part


def decode_part_text(part: Message) -> str:
    """A text part's content in any charset; falls back through UTF-8, Windows-1252, Latin-1."""
    payload = _payload_bytes(part)
    charset = (part.get_content_charset() or "").strip().lower()
    candidates = [_CHARSET_ALIASES.get(charset, charset)] if charset else []
    for candidate in [*candidates, *_FALLBACK_CHARSETS]:
        try:
            codecs.lookup(candidate)
            return _clean(payload.decode(candidate)).replace("\r\n", "\n")
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return _clean(payload.decode("latin-1")).replace("\r\n", "\n")


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, list):  # an attached message: keep it as bytes
        try:
            return raw[0].as_bytes(policy=policy.compat32) if raw else b""
        except Exception:
            return str(raw[0]).encode("utf-8", "replace")
    return str(raw or "").encode("utf-8", "surrogateescape")


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = part.get_param("name", header="content-type")
        name = name if isinstance(name, str) else None
    if not name:
        return None
    name = _clean(str(name)).replace("/", "_").replace("\\", "_").strip()
    return name[:255] or None


def _default_filename(content_type: str, n: int) -> str:
    extension = {"message/rfc822": "eml", "text/plain": "txt", "text/html": "html"}.get(
        content_type, content_type.rpartition("/")[2][:10] or "bin"
    )
    return f"attachment-{n}.{extension}"


def raw_header(message: Message, name: str) -> str:
    """A structured header (ids, addresses, dates, flags) as sent, unfolded; '' when absent."""
    name = name.lower()
    value = next((v for k, v in getattr(message, "_headers", []) if k.lower() == name), None)
    if value is None:
        return ""
    return _clean(re.sub(r"\r?\n[ \t]+", " ", str(value))).strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words (=?charset?q?...?=) in a piece of header text."""
    if "=?" not in value:
        return value
    try:
        return _clean(str(make_header(decode_header(value))))
    except Exception:
        return value


def header(message: Message, name: str) -> str:
    """A header as readable text ('' when absent), decoding RFC 2047 and stray 8-bit bytes."""
    raw = next((v for k, v in getattr(message, "_headers", []) if k.lower() == name.lower()), None)
    if isinstance(raw, str) and any("\udc80" <= c <= "\udcff" for c in raw):
        # Undeclared 8-bit bytes: read them as UTF-8, else Windows-1252, not as replacement marks.
        return re.sub(r"\r?\n[ \t]+", " ", _clean(raw)).strip()
    with contextlib.suppress(Exception):  # the fallback below reads the raw value
        value = message.get(name)
        return _clean(str(value)) if value is not None else ""
    # The modern policy could not parse it: decode the raw value the old way.
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            try:
                return _clean(str(make_header(decode_header(str(value)))))
            except Exception:
                return _clean(str(value))
    return ""


def message_ids(value: str) -> list[str]:
    """Message-IDs in a header, as ``<id>``; over-long ones are replaced by a hash of themselves."""
    ids = []
    for found in _MSGID.findall(value or ""):
        if len(found) > _MAX_ID:
            found = f"sha256-{hashlib.sha256(found.encode()).hexdigest()}@message-id.invalid"
        ids.append(f"<{found}>")
    if not ids and value and value.strip() and " " not in value.strip():  # an id without brackets
        ids.append(f"<{value.strip()[:_MAX_ID]}>")
    return ids


def html_to_text(value: str) -> str:
    """Readable plain text from an HTML body (for previews, search and quoting)."""
    value = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", "", value)
    value = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d|blockquote)\s*>", "\n", value)
    text = html.unescape(nh3.clean(value, tags=set()))
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def _clean(value: str) -> str:
    """Text safe to store anywhere: stray undecodable bytes re-read as Windows-1252, no NULs."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "cape-cp1252")
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _cp1252_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 are read as Windows-1252 (the usual culprit), run by run."""
    chunk = error.object[error.start : error.end]
    return chunk.decode("cp1252", "replace"), error.end


codecs.register_error("cape-cp1252", _cp1252_fallback)


def _defects(message: Message) -> list:
    found = []
    with contextlib.suppress(Exception):  # defects are only a report
        for part in message.walk():
            found += list(getattr(part, "defects", []))
    return found[:20]


_QUOTE_STARTS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^on\b.{0,200}\bwrote:\s*$",
        r"^le\b.{0,200}\ba écrit\s*:\s*$",
        r"^den\b.{0,200}\bskrev.{0,100}:\s*$",
        r"^am\b.{0,200}\bschrieb.{0,100}:\s*$",
        r"^-{2,}\s*original message\s*-{2,}\s*$",
        r"^-{2,}\s*forwarded message\s*-{2,}\s*$",
        r"^_{10,}\s*$",
        r"^from:\s.+",
        r"^-- $",
        r"^--$",
        r"^>",
    )
]


def split_quoted(text: str) -> tuple[str, str]:
    """The new part of a reply, and what follows it: quoted history and the signature."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if index == 0:
            continue
        if any(pattern.match(line) for pattern in _QUOTE_STARTS):
            visible = "\n".join(lines[:index]).rstrip()
            if visible:
                return visible, "\n".join(lines[index:])
    return text, ""
