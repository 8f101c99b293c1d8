"""Invitations: an admin adds a user without a password; a one-time link lets them choose it.

The link's token is ``<id>-<mac>``: a MAC of the invitation's nonce under the app's secret key.
Only the nonce is stored, so a copy of the database makes no working link, while the job that
emails the link can rebuild it. A link works once, for ``VALID_FOR``, and only its newest copy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cape.audit.service import record_audit
from cape.auth.passwords import hash_password
from cape.auth.service import create_user
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, InvalidInput, NotFound
from cape.models import Invitation, Role, User

VALID_FOR = timedelta(days=7)
MIN_PASSWORD = 8
_TOKEN = re.compile(r"([0-9]{1,18})-([A-Za-z0-9_-]{20,64})")


def _mac(invitation: Invitation, app_secret: str) -> str:
    signed = f"cape-invitation:{invitation.id}:{invitation.nonce}".encode()
    digest = hmac.new(app_secret.encode(), signed, hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def invitation_token(invitation: Invitation, *, app_secret: str) -> str:
    """The secret part of the invitation's link (``/invitations/<token>``)."""
    return f"{invitation.id}-{_mac(invitation, app_secret)}"


def invite_user(
    session: Session, *, email: str, name: str, role: Role, language: str, actor: User, app_secret: str
) -> tuple[User, Invitation, str]:
    """Add a user who has no password yet, with a link to choose it. Audited (user.created, user.invited)."""
    if not name.strip():
        raise InvalidInput("name", "must not be empty")
    user = create_user(session, email=email, name=name, role=role, language=language, actor=actor)
    invitation, token = new_invitation(session, user=user, actor=actor, app_secret=app_secret)
    return user, invitation, token


def new_invitation(session: Session, *, user: User, actor: User, app_secret: str) -> tuple[Invitation, str]:
    """A fresh link for a user who has not chosen a password yet; earlier links stop working."""
    if user.password_hash is not None:
        raise Conflict("this user has already chosen a password", code="already_accepted")
    if not user.is_active:
        raise Conflict("this user is deactivated", code="user_inactive")
    now = utcnow()
    session.execute(
        update(Invitation).where(Invitation.user_id == user.id, Invitation.used_at.is_(None)).values(used_at=now)
    )
    invitation = Invitation(
        user_id=user.id, nonce=secrets.token_urlsafe(24), expires_at=now + VALID_FOR, invited_by_id=actor.id
    )
    session.add(invitation)
    session.flush()
    record_audit(session, actor=actor, event="user.invited", subject_type="user", subject_id=user.id,
                 after={"email": user.email, "expires_at": invitation.expires_at.isoformat()})  # fmt: skip
    return invitation, invitation_token(invitation, app_secret=app_secret)


def open_invitation(session: Session, *, token: str, app_secret: str) -> tuple[Invitation, User]:
    """The invitation a link stands for, if it still works; else NotFound (code ``invitation_invalid``)."""
    match = _TOKEN.fullmatch(token)
    invitation = session.get(Invitation, int(match.group(1))) if match else None
    if invitation is None or not hmac.compare_digest(_mac(invitation, app_secret), match.group(2)):
        raise NotFound("this invitation link is not valid", code="invitation_invalid")
    user = session.get_one(User, invitation.user_id)
    if invitation.used_at is not None or not user.is_active or user.password_hash is not None:
        raise NotFound("this invitation link has already been used", code="invitation_used")
    if invitation.expires_at <= utcnow():
        raise NotFound("this invitation link has expired", code="invitation_expired")
    return invitation, user


def accept_invitation(session: Session, *, token: str, password: str, app_secret: str) -> User:
    """Set the invited user's password from their link, once. Audited (user.invitation_accepted)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("password", "too_short")
    password_hash = hash_password(password)  # before any write: hashing takes a while
    invitation, user = open_invitation(session, token=token, app_secret=app_secret)
    # Two tabs posting the same link at once: only the update that finds it unused wins.
    used = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None), Invitation.expires_at > utcnow())
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        raise NotFound("this invitation link has already been used", code="invitation_used")
    user.password_hash = password_hash
    session.flush()
    record_audit(session, actor=user, event="user.invitation_accepted", subject_type="user", subject_id=user.id)
    return user


def pending_invitations(session: Session, *, user_ids: list[int]) -> dict[int, Invitation]:
    """The newest unused invitation of each of these users who has one (expired or not)."""
    query = select(Invitation).where(Invitation.user_id.in_(user_ids), Invitation.used_at.is_(None))
    found: dict[int, Invitation] = {}
    for invitation in session.scalars(query.order_by(Invitation.id)):
        found[invitation.user_id] = invitation
    return found
