"""A corpus of real-world and malformed messages, built in code so every byte is deliberate."""

from __future__ import annotations

import base64
from email.message import EmailMessage

CRLF = b"\r\n"


def _raw(*lines: bytes | str) -> bytes:
    return CRLF.join(line.encode() if isinstance(line, str) else line for line in lines) + CRLF


def plain(n: int = 1, *, sender: str = "ann@example.org", to: str = "support@example.com") -> bytes:
    return _raw(
        f"From: Ann Example <{sender}>",
        f"To: {to}",
        f"Subject: Plain message {n}",
        f"Message-ID: <plain-{n}@example.org>",
        "Date: Tue, 24 Nov 2026 08:00:00 +0000",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Hello, this is message {n}.",
    )


def alternative() -> bytes:
    message = EmailMessage()
    message["From"] = "Bea <bea@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = "Alternative"
    message["Message-ID"] = "<alt@example.org>"
    message.set_content("Plain version")
    message.add_alternative(
        '<p>HTML <b>version</b><script>alert(1)</script><img src="https://tracker.example/x.png"></p>', subtype="html"
    )
    return message.as_bytes()


def nested_with_inline_image_and_attachment() -> bytes:
    message = EmailMessage()
    message["From"] = "cid@example.org"
    message["To"] = "support@example.com"
    message["Subject"] = "Nested"
    message["Message-ID"] = "<nested@example.org>"
    message.set_content("See the picture")
    message.add_alternative('<p>See <img src="cid:pic1@example.org"></p>', subtype="html")
    message.get_payload()[1].add_related(b"\x89PNG fake", "image", "png", cid="<pic1@example.org>")
    message.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf")
    return message.as_bytes()


def latin1() -> bytes:
    return _raw(
        "From: =?iso-8859-1?q?J=F8rgen_M=FCller?= <jorgen@example.dk>",
        "To: support@example.com",
        "Subject: =?iso-8859-1?q?Forsinket_levering_=E6=F8=E5?=",
        "Message-ID: <latin1@example.dk>",
        "Content-Type: text/plain; charset=iso-8859-1",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Hej, min pakke er forsinket. Hilsen J\xf8rgen \xe6\xf8\xe5".encode("latin-1"),
    )


def windows1252() -> bytes:
    return _raw(
        "From: win@example.org",
        "To: support@example.com",
        "Subject: Smart quotes",
        "Message-ID: <cp1252@example.org>",
        "Content-Type: text/plain; charset=windows-1252",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "It=92s =93quoted=94 =80100",
    )


def iso2022jp() -> bytes:
    body = "お問い合わせありがとうございます".encode("iso-2022-jp")
    subject = base64.b64encode("注文について".encode("iso-2022-jp")).decode()
    return _raw(
        "From: =?ISO-2022-JP?B?GyRCRURDZhsoQg==?= <tanaka@example.jp>",
        "To: support@example.com",
        f"Subject: =?ISO-2022-JP?B?{subject}?=",
        "Message-ID: <jp@example.jp>",
        "Content-Type: text/plain; charset=ISO-2022-JP",
        "Content-Transfer-Encoding: 7bit",
        "",
        body,
    )


def rfc2047_utf8_headers() -> bytes:
    return _raw(
        "From: =?utf-8?b?w4lsb2RpZSBDaGFydHJhbmQ=?= <elodie@example.fr>",
        "To: support@example.com",
        "Subject: =?utf-8?q?Commande_=C3=A0_rembourser?= =?utf-8?q?_vite?=",
        "Message-ID: <rfc2047@example.fr>",
        "",
        "Bonjour",
    )


def missing_date_and_message_id() -> bytes:
    return _raw("From: nodate@example.org", "To: support@example.com", "Subject: No date", "", "No date, no id.")


def broken_boundary() -> bytes:
    return _raw(
        "From: broken@example.org",
        "To: support@example.com",
        "Subject: Broken boundary",
        "Message-ID: <broken-boundary@example.org>",
        'Content-Type: multipart/mixed; boundary="abc"',
        "",
        "--xyz",
        "Content-Type: text/plain",
        "",
        "The boundary never matches.",
        "--xyz--",
    )


def missing_closing_boundary() -> bytes:
    return _raw(
        "From: unclosed@example.org",
        "To: support@example.com",
        "Subject: Unclosed",
        "Message-ID: <unclosed@example.org>",
        'Content-Type: multipart/alternative; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain",
        "",
        "Text part with no end",
    )


def eight_bit_headers() -> bytes:
    return _raw(
        b"From: M\xfcller <mueller@example.de>",
        b"To: support@example.com",
        b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xf6ln",
        b"Message-ID: <8bit@example.de>",
        b"Content-Type: text/plain",
        b"",
        b"Body with raw 8-bit \xe9\xe8 and a NUL \x00 byte",
    )


def bad_base64() -> bytes:
    return _raw(
        "From: b64@example.org",
        "To: support@example.com",
        "Subject: Bad base64",
        "Message-ID: <bad-b64@example.org>",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "SGVsbG8gd29ybGQ!!!*not base64 at all",
    )


def unknown_charset() -> bytes:
    return _raw(
        "From: charset@example.org",
        "To: support@example.com",
        "Subject: Unknown charset",
        "Message-ID: <unknown-charset@example.org>",
        "Content-Type: text/plain; charset=x-no-such-charset",
        "",
        b"caf\xe9",
    )


def huge_attachment(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = "huge@example.org"
    message["To"] = "support@example.com"
    message["Subject"] = "Huge attachment"
    message["Message-ID"] = "<huge@example.org>"
    message.set_content("See attached")
    message.add_attachment(b"x" * size, maintype="application", subtype="octet-stream", filename="huge.bin")
    return message.as_bytes()


def dsn(original_message_id: str = "<outbound-1@example.com>", recipient: str = "gone@example.org") -> bytes:
    return _raw(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>",
        "To: support@example.com",
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <dsn-1@mx.example.com>",
        "Auto-Submitted: auto-replied",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"',
        "",
        "--dsn",
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        "--dsn",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.com",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
        "",
        "--dsn",
        "Content-Type: text/rfc822-headers",
        "",
        "From: support@example.com",
        f"To: {recipient}",
        f"Message-ID: {original_message_id}",
        "Subject: Re: Help",
        "",
        "--dsn--",
    )


def auto_reply() -> bytes:
    return _raw(
        "From: away@example.org",
        "To: support@example.com",
        "Subject: Out of office",
        "Message-ID: <ooo@example.org>",
        "Auto-Submitted: auto-replied",
        "Precedence: auto_reply",
        "",
        "I am away until Monday.",
    )


def bulk() -> bytes:
    return _raw(
        "From: news@example.org",
        "To: support@example.com",
        "Subject: Newsletter",
        "Message-ID: <bulk@example.org>",
        "Precedence: bulk",
        "",
        "News.",
    )


def html_only() -> bytes:
    return _raw(
        "From: html@example.org",
        "To: support@example.com",
        "Subject: HTML only",
        "Message-ID: <html-only@example.org>",
        "Content-Type: text/html; charset=utf-8",
        "",
        "<html><head><style>p{}</style></head><body><p>Only <b>HTML</b></p><p>second</p></body></html>",
    )


def no_from() -> bytes:
    return _raw("To: support@example.com", "Subject: Who sent this", "Message-ID: <nofrom@example.org>", "", "?")


def garbage() -> bytes:
    return b"\x00\xff\xfe this is not an email at all \x80\x81\r\n\r\n\x00"


def empty() -> bytes:
    return b""


def headers_only_broken() -> bytes:
    return _raw(
        "From: <<<>>>@@@",
        "Message-ID: <<<<>>>",
        "Subject: =?utf-8?b?!!!invalid?=",
        "Content-Type: multipart/mixed",
        "",
    )


def forwarded_message() -> bytes:
    inner = plain(99, sender="original@example.org")
    return _raw(
        "From: fwd@example.org",
        "To: support@example.com",
        "Subject: Fwd: something",
        "Message-ID: <fwd@example.org>",
        'Content-Type: multipart/mixed; boundary="f"',
        "",
        "--f",
        "Content-Type: text/plain",
        "",
        "See below",
        "--f",
        "Content-Type: message/rfc822",
        "",
        inner,
        "--f--",
    )


def long_message_id() -> bytes:
    return _raw(
        "From: long@example.org",
        "To: support@example.com",
        "Subject: Long id",
        f"Message-ID: <{'a' * 2000}@example.org>",
        "",
        "Long id",
    )


def reply_with_quote() -> bytes:
    return _raw(
        "From: ann@example.org",
        "To: support@example.com",
        "Subject: Re: Plain message 1",
        "Message-ID: <quoted@example.org>",
        "In-Reply-To: <plain-1@example.org>",
        "",
        "Thanks, that works.",
        "",
        "On Tue, 24 Nov 2026 at 09:00, Support <support@example.com> wrote:",
        "> Try turning it off and on.",
    )


def hostile_headers() -> bytes:
    return _raw(
        f"From: {'x' * 400}@example.org",
        "To: support@example.com",
        "Subject: Hostile",
        "Message-ID: <hostile@example.org>",
        b'Content-Type: multipart/mixed; boundary="h"',
        "",
        "--h",
        b'Content-Type: appl\xe9cation/\xff\x00weird; name="f\xe9.bin"',
        "",
        "data",
        "--h--",
    )


CORPUS = {
    "plain": plain,
    "alternative": alternative,
    "nested": nested_with_inline_image_and_attachment,
    "latin1": latin1,
    "windows1252": windows1252,
    "iso2022jp": iso2022jp,
    "rfc2047": rfc2047_utf8_headers,
    "missing_date_and_id": missing_date_and_message_id,
    "broken_boundary": broken_boundary,
    "missing_closing_boundary": missing_closing_boundary,
    "eight_bit_headers": eight_bit_headers,
    "bad_base64": bad_base64,
    "unknown_charset": unknown_charset,
    "huge_attachment": lambda: huge_attachment(300_000),
    "dsn": dsn,
    "auto_reply": auto_reply,
    "bulk": bulk,
    "html_only": html_only,
    "no_from": no_from,
    "garbage": garbage,
    "empty": empty,
    "headers_only_broken": headers_only_broken,
    "forwarded": forwarded_message,
    "long_message_id": long_message_id,
    "reply_with_quote": reply_with_quote,
    "hostile_headers": hostile_headers,
}
