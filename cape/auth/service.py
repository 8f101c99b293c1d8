"""Users, logins and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from cape.audit.service import change_event, record_audit
from cape.auth.passwords import hash_password, needs_rehash, verify_password
from cape.config import SUPPORTED_LANGUAGES
from cape.kit.clock import utcnow
from cape.kit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from cape.kit.rawsql import RawSql
from cape.kit.unique import flush_or_conflict
from cape.models import ApiToken, Role, Team, TeamMember, User, UserSession

TOKEN_PREFIX = "cape_"  # noqa: S105 - a public prefix, not a secret
_LAST_USED_RESOLUTION = timedelta(minutes=5)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: Role,
    password: str | None = None,
    language: str = "en",
    actor: User | None = None,
    reason: str | None = None,
) -> User:
    """Add a user; the email must be new. Audited (``actor`` None: the command line or Cape itself)."""
    email = normalize_email(email)
    if language not in SUPPORTED_LANGUAGES:
        raise InvalidInput("language", f"must be one of {', '.join(SUPPORTED_LANGUAGES)}")
    if password is not None and len(password) < 8:
        raise InvalidInput("password", "must be at least 8 characters")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with email {email} already exists")
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        language=language,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    flush_or_conflict(session, f"a user with email {email} already exists")
    record_audit(session, actor=actor, event="user.created", subject_type="user", subject_id=user.id,
                 reason=reason, after=user_snapshot(user))  # fmt: skip
    return user


def user_snapshot(user: User) -> dict:
    """What the audit log keeps of a user: never the password or its hash."""
    return {"email": user.email, "name": user.name, "role": user.role.value, "language": user.language,
            "is_active": user.is_active}  # fmt: skip


def list_users(session: Session) -> list[User]:
    """Every user, active first, by name."""
    return list(session.scalars(select(User).order_by(User.is_active.desc(), User.name, User.id)))


def get_user(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def get_user_by_email(session: Session, *, email: str) -> User:
    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFound(f"no user with email {email}")
    return user


def sign_in_candidate(session: Session, *, email: str) -> tuple[int, str | None] | None:
    """(id, password hash) of the active user with this email, or None."""
    row = session.execute(
        select(User.id, User.password_hash, User.is_active).where(User.email == normalize_email(email))
    ).first()
    return (row.id, row.password_hash) if row is not None and row.is_active else None


def check_password(candidate: tuple[int, str | None] | None, password: str) -> int | None:
    """The candidate's user id when the password is right; as slow either way, so that timing
    does not tell whether the email belongs to anyone. Runs outside any transaction."""
    ok = verify_password(candidate[1] if candidate else None, password)
    return candidate[0] if ok and candidate is not None else None


def renewed_hash(candidate: tuple[int, str | None], password: str) -> str | None:
    """A new hash of a proven password when the hashing parameters have changed, else None.
    Runs outside any transaction: hashing takes a while."""
    stored = candidate[1] or ""
    return hash_password(password) if needs_rehash(stored) else None


def signed_in_user(session: Session, *, candidate: tuple[int, str | None], new_hash: str | None) -> User | None:
    """The user who just proved their password; None if deactivated, or their password changed,
    while it was being checked."""
    user = session.get(User, candidate[0])
    if user is None or not user.is_active or user.password_hash != candidate[1]:
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    return user


def start_web_session(session: Session, *, user: User, user_agent: str | None = None, keep_for: timedelta) -> str:
    """A new browser sign-in for ``user``; returns the key for its cookie (only its hash is kept).

    The user's sign-ins that ended, or whose cookies have expired (older than ``keep_for``), go.
    """
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id,
            or_(UserSession.revoked_at.is_not(None), UserSession.created_at < utcnow() - keep_for),
        )
    )
    key = secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user.id, key_hash=_hash_token(key), user_agent=(user_agent or "")[:300] or None))
    session.flush()
    return key


_SESSION_USER = """SELECT users.id FROM user_sessions JOIN users ON users.id = user_sessions.user_id
    WHERE user_sessions.key_hash = :key_hash AND user_sessions.revoked_at IS NULL AND users.is_active"""


def user_id_for_web_session(session: Session, *, key: str) -> int | None:
    """The id of the active user signed in with this browser session's key, or None."""
    return RawSql.of(session).scalar(_SESSION_USER, {"key_hash": _hash_token(key)})


def end_web_session(session: Session, *, key: str) -> None:
    """Sign a browser out: its key, and every copy of its cookie, stop working."""
    _end_web_sessions(session, UserSession.key_hash == _hash_token(key))


def end_all_web_sessions(session: Session, *, user_id: int) -> int:
    """Sign a user out everywhere; how many sign-ins ended."""
    return _end_web_sessions(session, UserSession.user_id == user_id)


def _end_web_sessions(session: Session, which) -> int:
    live = update(UserSession).where(which, UserSession.revoked_at.is_(None))
    return session.execute(live.values(revoked_at=utcnow())).rowcount


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, *, user: User, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for ``user``; the plain token is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_hash_token(plain), prefix=plain[:12])
    session.add(token)
    session.flush()
    return token, plain


# Plain driver statements (see cape.kit.rawsql): every API request runs the first.
_CALLER_BY_HASH = """SELECT api_tokens.id, api_tokens.last_used_at, users.id, users.is_active
    FROM api_tokens JOIN users ON users.id = api_tokens.user_id
    WHERE api_tokens.token_hash = :token_hash AND api_tokens.revoked_at IS NULL"""
# Conditional: of requests that found the same stale time, the first one notes it.
_NOTE_LAST_USE = """UPDATE api_tokens SET last_used_at = :now
    WHERE id = :token_id AND (last_used_at IS NULL OR last_used_at < :stale_before)"""


@dataclass(frozen=True)
class TokenCaller:
    user_id: int
    token_id: int
    use_unnoted: bool  # the token's last use is older than is worth noting (``note_token_use``)


def token_caller(session: Session, *, plain: str) -> TokenCaller | None:
    """Who calls with this bearer token (an active user), or None; only reads."""
    if not plain.startswith(TOKEN_PREFIX):
        return None
    raw = RawSql.of(session)
    row = raw.first(_CALLER_BY_HASH, {"token_hash": _hash_token(plain)})
    if row is None:
        return None
    token_id, last_used_at, user_id, is_active = row
    if not is_active:
        return None
    # Recording every use would turn each API read into a write; minutes are enough.
    last_used_at = raw.read_datetime(last_used_at)
    return TokenCaller(user_id, token_id, last_used_at is None or utcnow() - last_used_at > _LAST_USED_RESOLUTION)


def note_token_use(session: Session, *, token_id: int) -> None:
    """Record that a token was used now (unless a request did within the last few minutes)."""
    raw = RawSql.of(session)
    now = utcnow()
    raw.execute(
        _NOTE_LAST_USE,
        {"now": raw.datetime(now), "token_id": token_id, "stale_before": raw.datetime(now - _LAST_USED_RESOLUTION)},
    )


def user_id_for_token(session: Session, *, plain: str) -> int | None:
    """The id of the active user behind a bearer token, or None; notes the token's use."""
    caller = token_caller(session, plain=plain)
    if caller is None:
        return None
    if caller.use_unnoted:
        note_token_use(session, token_id=caller.token_id)
    return caller.user_id


def active_user_id(session: Session, *, token: str | None = None, session_key: str | None = None) -> int:
    """The caller's user id, from an API token or a browser session's key; else NotAuthenticated."""
    if token is not None:
        found = user_id_for_token(session, plain=token)
        if found is None:
            raise NotAuthenticated("invalid or revoked API token")
        return found
    if session_key is not None and (found := user_id_for_web_session(session, key=session_key)) is not None:
        return found
    raise NotAuthenticated("sign in, or send an API token as 'Authorization: Bearer <token>'")


def list_teams(session: Session) -> list[tuple[Team, list[int]]]:
    """Every team with its members' ids, active first."""
    teams = list(session.scalars(select(Team).order_by(Team.is_active.desc(), Team.name)))
    members: dict[int, list[int]] = {team.id: [] for team in teams}
    for row in session.execute(select(TeamMember.team_id, TeamMember.user_id).order_by(TeamMember.user_id)):
        members[row.team_id].append(row.user_id)
    return [(team, members[team.id]) for team in teams]


def user_teams(session: Session, *, user_id: int) -> list[Team]:
    """The active teams a user belongs to, by name."""
    query = select(Team).join(TeamMember, TeamMember.team_id == Team.id)
    query = query.where(TeamMember.user_id == user_id, Team.is_active)
    return list(session.scalars(query.order_by(Team.name, Team.id)))


def get_team(session: Session, *, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found")
    return team


def team_member_ids(session: Session, *, team: Team) -> list[int]:
    query = select(TeamMember.user_id).where(TeamMember.team_id == team.id).order_by(TeamMember.user_id)
    return list(session.scalars(query))


def create_team(session: Session, *, name: str, member_ids: list[int], actor: User | None = None) -> Team:
    """A new team; the name must be new and members must be existing users. Audited."""
    name = name.strip()
    _check_team_name_free(session, name)
    known = _known_user_ids(session, member_ids)
    team = Team(name=name, is_active=True)
    session.add(team)
    flush_or_conflict(session, f"a team named {name} already exists")
    session.add_all(TeamMember(team_id=team.id, user_id=user_id) for user_id in known)
    session.flush()
    record_audit(session, actor=actor, event="team.created", subject_type="team", subject_id=team.id,
                 after=_team_snapshot(team, known))  # fmt: skip
    return team


def update_team(
    session: Session,
    *,
    team: Team,
    actor: User,
    name: str | None = None,
    member_ids: list[int] | None = None,
    is_active: bool | None = None,
) -> Team:
    """Rename a team, replace its members, deactivate or reactivate it. Audited.

    A deactivated team keeps its conversations; no conversation can be given to it meanwhile.
    """
    members_before = team_member_ids(session, team=team)
    before = _team_snapshot(team, members_before)
    if name is not None and name.strip() != team.name:
        if not name.strip():
            raise InvalidInput("name", "must not be empty")
        _check_team_name_free(session, name.strip())
        team.name = name.strip()
        flush_or_conflict(session, f"a team named {team.name} already exists")
    members = members_before
    if member_ids is not None:
        members = _known_user_ids(session, member_ids)
        session.execute(delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id.not_in(members)))
        session.add_all(TeamMember(team_id=team.id, user_id=m) for m in members if m not in members_before)
        flush_or_conflict(session, "the team's members were changed meanwhile; reload and try again")
    if is_active is not None:
        team.is_active = is_active
    session.flush()
    after = _team_snapshot(team, members)
    if after != before:
        record_audit(session, actor=actor, event=change_event("team", before, after), subject_type="team",
                     subject_id=team.id, before=before, after=after)  # fmt: skip
    return team


def _check_team_name_free(session: Session, name: str) -> None:
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"a team named {name} already exists")


def _known_user_ids(session: Session, user_ids: list[int]) -> list[int]:
    known = set(session.scalars(select(User.id).where(User.id.in_(user_ids))))
    if unknown := sorted(set(user_ids) - known):
        raise InvalidInput("member_ids", f"no users {unknown}")
    return sorted(known)


def _team_snapshot(team: Team, member_ids: list[int]) -> dict:
    return {"name": team.name, "is_active": team.is_active, "member_ids": list(member_ids)}


def update_user(
    session: Session,
    *,
    user: User,
    actor: User,
    name: str | None = None,
    role: Role | None = None,
    language: str | None = None,
    is_active: bool | None = None,
) -> User:
    """Rename, change the role or language of, deactivate or reactivate a user. Audited.

    A deactivated user's API tokens stop working at their next request, and their browsers are
    signed out for good: reactivating them does not bring those sessions back.
    """
    before = user_snapshot(user)
    if user.id == actor.id and (is_active is False or (role is not None and role is not actor.role)):
        raise Conflict("you cannot deactivate yourself or change your own role", code="self_change")
    if user.role is Role.admin and user.is_active and (is_active is False or role not in (None, Role.admin)):
        _keep_an_admin(session, leaving=user)
    if language is not None and language not in SUPPORTED_LANGUAGES:
        raise InvalidInput("language", f"must be one of {', '.join(SUPPORTED_LANGUAGES)}")
    if name is not None:
        user.name = name.strip()
    if role is not None:
        user.role = role
    if language is not None:
        user.language = language
    if is_active is not None:
        user.is_active = is_active
    session.flush()
    if is_active is False:
        end_all_web_sessions(session, user_id=user.id)
    after = user_snapshot(user)
    if after != before:
        record_audit(session, actor=actor, event=change_event("user", before, after), subject_type="user",
                     subject_id=user.id, before=before, after=after)  # fmt: skip
    return user


def _keep_an_admin(session: Session, *, leaving: User) -> None:
    """Refuse to demote or deactivate the last active admin: nobody could manage users after.

    Two admins demoting each other at once would each see the other still there: the other
    admins' rows are locked (PostgreSQL; SQLite has one writer at a time), so the second waits
    for the first to commit and then sees the truth.
    """
    others = select(User.id).where(User.role == Role.admin, User.is_active, User.id != leaving.id)
    if not session.scalars(others.with_for_update()).first():
        raise Conflict("the last active admin cannot be demoted or deactivated", code="last_admin")


def revoke_api_tokens(session: Session, *, user: User) -> int:
    """Revoke every API token of a user; returns how many were live."""
    tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)))
    count = 0
    for token in tokens:
        token.revoked_at = utcnow()
        count += 1
    session.flush()
    return count
