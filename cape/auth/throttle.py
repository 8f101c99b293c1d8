"""Rate limits against abuse: password guessing, contact-form floods.

Each counted attempt is a row, kept as long as its limit's window (a periodic job prunes the
rest), so every web worker and every process sees the same counts. Past a limit's count within
its window, the caller is told how many seconds to wait (HTTP 429 with Retry-After) before the
work, and its cost, is done.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from cape.kit.clock import utcnow
from cape.models import RateLimitHit


@dataclass(frozen=True)
class Limit:
    scope: str
    max_hits: int
    window: timedelta


# One address guessing one account is stopped soon; many addresses guessing one account, later
# (a lower limit per account alone would let anyone lock anyone out); one address guessing many
# accounts, in between.
SIGN_IN_BY_EMAIL_AND_ADDRESS = Limit("sign_in_email_address", 10, timedelta(minutes=15))
SIGN_IN_BY_EMAIL = Limit("sign_in_email", 100, timedelta(minutes=15))
SIGN_IN_BY_ADDRESS = Limit("sign_in_address", 50, timedelta(minutes=15))
CONTACT_BY_ADDRESS = Limit("contact_address", 10, timedelta(minutes=10))
LIMITS = (SIGN_IN_BY_EMAIL_AND_ADDRESS, SIGN_IN_BY_EMAIL, SIGN_IN_BY_ADDRESS, CONTACT_BY_ADDRESS)


def address_key(host: str | None) -> str:
    """The key for a client's address: an IPv6 client is its /64, as one host usually has one."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def serialize(session: Session, *, keys: list[str]) -> None:
    """Let one transaction at a time count attempts for each of ``keys`` (check, then count, is a
    race otherwise); always take them in the same order. On SQLite every writing transaction is
    alone already."""
    if session.get_bind().dialect.name == "postgresql":
        for key in keys:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def _stored(key: str) -> str:
    """The key as stored: a long one by its hash, so that no part of it is cut off."""
    return key if len(key) <= 320 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def retry_after(session: Session, *, limit: Limit, key: str) -> int | None:
    """Seconds until ``key`` is under ``limit`` again; None when it is now."""
    now = utcnow()
    recent = (
        select(RateLimitHit.created_at)
        .where(RateLimitHit.scope == limit.scope, RateLimitHit.key == _stored(key),
               RateLimitHit.created_at > now - limit.window)
        .order_by(RateLimitHit.created_at.desc())
        .limit(limit.max_hits)
    )  # fmt: skip
    times = list(session.scalars(recent))
    if len(times) < limit.max_hits:
        return None
    # Free again once the oldest of the last max_hits leaves the window.
    return max(1, int((times[-1] + limit.window - now).total_seconds()) + 1)


def hit(session: Session, *, limit: Limit, key: str) -> int:
    """Count an attempt; returns its id, for ``uncount``."""
    row = RateLimitHit(scope=limit.scope, key=_stored(key))
    session.add(row)
    session.flush()
    return row.id


def uncount(session: Session, *, hit_ids: list[int]) -> None:
    """Take back attempts counted ahead of time that turned out fine (a right password)."""
    session.execute(delete(RateLimitHit).where(RateLimitHit.id.in_(hit_ids)))


def forget(session: Session, *, limit: Limit, key: str) -> None:
    """Clear ``key``'s count (a sign-in that succeeded)."""
    session.execute(delete(RateLimitHit).where(RateLimitHit.scope == limit.scope, RateLimitHit.key == _stored(key)))


def prune(session: Session) -> int:
    """Forget what has left its window; how many rows went."""
    now, gone = utcnow(), 0
    for limit in LIMITS:
        expired = RateLimitHit.created_at <= now - limit.window
        gone += session.execute(delete(RateLimitHit).where(RateLimitHit.scope == limit.scope, expired)).rowcount
    return gone
