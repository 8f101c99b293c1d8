"""Admin pages for people: users (invite, role, language, deactivate) and teams (name, members);
and the page where an invited user chooses their password."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape import jobs
from cape.auth import invitations
from cape.auth import service as auth_service
from cape.auth.deps import SESSION_KEY, Admin, CsrfProtected, DbSession
from cape.auth.tasks import send_invitation_task
from cape.channels.email.service import default_outbound_channel
from cape.config import SUPPORTED_LANGUAGES
from cape.i18n.terms import N_
from cape.kit.clock import utcnow
from cape.kit.errors import CapeError, Conflict, InvalidInput
from cape.kit.validation import IdPath
from cape.models import Role, User
from cape.realtime.presence import presence_of
from cape.web.render import render

router = APIRouter(include_in_schema=False)

# The services' refusals, as the pages say them.
MESSAGES = {
    "self_change": N_("You cannot deactivate yourself or change your own role: ask another admin."),
    "last_admin": N_("This is the last active admin: make someone else an admin first."),
    "email_taken": N_("Someone already has this email address."),
    "email_invalid": N_("Enter an email address, such as name@example.com."),
    "name_missing": N_("Enter a name."),
    "team_taken": N_("A team with this name already exists."),
    "already_accepted": N_("This person has already chosen a password."),
    "user_inactive": N_("Reactivate this person first."),
    "not_saved": N_("This change could not be saved: reload the page and try again."),
    "too_short": N_("Choose a password of at least 8 characters."),
    "mismatch": N_("The two passwords differ: type the same one twice."),
    "invitation_invalid": N_("This link is not valid. Ask an admin for a new invitation."),
    "invitation_used": N_("This link has already been used. Sign in, or ask an admin for a new invitation."),
    "invitation_expired": N_("This link has expired. Ask an admin for a new invitation."),
}
PRESENCE = {"online": N_("Online"), "away": N_("Away"), "offline": N_("Offline")}


def _role(value: str) -> Role | None:
    return Role(value) if value in Role.__members__ else None


def _reason(exc: CapeError) -> str:
    """The key of the message that says why a change was refused."""
    return exc.code if exc.code in MESSAGES else "not_saved"


def _users_context(session, **extra) -> dict:
    users = auth_service.list_users(session)
    pending = invitations.pending_invitations(session, user_ids=[u.id for u in users if u.password_hash is None])
    return {"people": users, "pending": pending, "presence": {u.id: PRESENCE[presence_of(u)] for u in users},
            "roles": list(Role), "now": utcnow(), "languages": SUPPORTED_LANGUAGES, "messages": MESSAGES, "values": {},
            "errors": {}, "row_errors": {}, "typed": {}} | extra  # fmt: skip


def _users_page(request: Request, session, user: User, *, status_code: int = 200, **extra):
    return render(request, "people.html", _users_context(session, **extra), user=user, status_code=status_code)


def _base_url(request: Request) -> str:
    return request.app.state.settings.base_url or str(request.base_url)


def _invited(request: Request, session, invitation, token: str) -> dict:
    """What the page shows once after an invitation: the link, and whether it was emailed."""
    emailed = default_outbound_channel(session) is not None
    if emailed:
        jobs.enqueue_after_commit(session, send_invitation_task, invitation.id, _base_url(request))
    return {"link": _base_url(request).rstrip("/") + f"/invitations/{token}", "emailed": emailed,
            "user_id": invitation.user_id}  # fmt: skip


@router.get("/admin/users")
def users_page(request: Request, session: DbSession, user: Admin, saved: bool = False):
    return _users_page(request, session, user, saved=saved)


@router.post("/admin/users")
def invite_user(
    request: Request,
    session: DbSession,
    user: Admin,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "agent",
    language: Annotated[str, Form()] = "en",
):
    """Add a user and show their one-time link (emailed too when a default mailbox exists)."""
    values = {"name": name, "email": email, "role": role, "language": language}
    errors = {}
    if not name.strip():
        errors["name"] = "name_missing"
    if "@" not in email.strip() or " " in email.strip():
        errors["email"] = "email_invalid"
    if errors:
        return _users_page(request, session, user, status_code=422, values=values, errors=errors)
    try:
        with session.begin_nested():
            _, invitation, token = invitations.invite_user(
                session, email=email, name=name, role=_role(role) or Role.agent,
                language=language if language in SUPPORTED_LANGUAGES else "en", actor=user,
                app_secret=request.app.state.settings.resolved_secret_key,
            )  # fmt: skip
    except Conflict:
        return _users_page(request, session, user, status_code=409, values=values, errors={"email": "email_taken"})
    return _users_page(request, session, user, invited=_invited(request, session, invitation, token))


@router.post("/admin/users/{user_id}/invitation")
def reinvite_user(request: Request, session: DbSession, user: Admin, user_id: IdPath):
    """A new link for someone who has not chosen a password yet; the older one stops working."""
    person = auth_service.get_user(session, user_id=user_id)
    try:
        with session.begin_nested():
            invitation, token = invitations.new_invitation(
                session, user=person, actor=user, app_secret=request.app.state.settings.resolved_secret_key
            )
    except Conflict as exc:
        return _users_page(request, session, user, status_code=409, row_errors={person.id: _reason(exc)})
    return _users_page(request, session, user, invited=_invited(request, session, invitation, token))


@router.post("/admin/users/{user_id}")
def update_user(
    request: Request,
    session: DbSession,
    user: Admin,
    user_id: IdPath,
    role: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "",
):
    """Change a user's role and language; a refusal is shown on their row, with the choice kept."""
    person = auth_service.get_user(session, user_id=user_id)
    changes = {"role": _role(role),
               "language": language if language in SUPPORTED_LANGUAGES else None}  # fmt: skip
    return _change_user(request, session, user, person, typed={"role": role, "language": language}, **changes)


@router.post("/admin/users/{user_id}/active")
def set_user_active(
    request: Request, session: DbSession, user: Admin, user_id: IdPath, active: Annotated[str, Form()] = ""
):
    """Deactivate (signed out everywhere, tokens stop working) or reactivate a user."""
    person = auth_service.get_user(session, user_id=user_id)
    return _change_user(request, session, user, person, is_active=active == "true")


def _change_user(request: Request, session, user: User, person: User, *, typed: dict | None = None, **changes):
    try:
        with session.begin_nested():
            auth_service.update_user(session, user=person, actor=user, **changes)
    except (Conflict, InvalidInput) as exc:
        session.refresh(person)
        return _users_page(request, session, user, status_code=409, row_errors={person.id: _reason(exc)},
                           typed={person.id: typed or {}})  # fmt: skip
    return RedirectResponse(f"/admin/users?saved=true#user-{person.id}", status_code=303)


# Teams


def _teams_page(request: Request, session, user: User, *, status_code: int = 200, **extra):
    users = auth_service.list_users(session)
    context = {"teams": auth_service.list_teams(session), "people_by_id": {u.id: u for u in users},
               "active_people": [u for u in users if u.is_active], "messages": MESSAGES, "values": {},
               "errors": {}, "row_errors": {}, "typed": {}} | extra  # fmt: skip
    return render(request, "teams.html", context, user=user, status_code=status_code)


@router.get("/admin/teams")
def teams_page(request: Request, session: DbSession, user: Admin, saved: bool = False):
    return _teams_page(request, session, user, saved=saved)


@router.post("/admin/teams")
def create_team(request: Request, session: DbSession, user: Admin, name: Annotated[str, Form()] = ""):
    if not name.strip():
        return _teams_page(request, session, user, status_code=422, values={"name": name},
                           errors={"name": "name_missing"})  # fmt: skip
    try:
        with session.begin_nested():
            team = auth_service.create_team(session, name=name, member_ids=[], actor=user)
    except Conflict:
        return _teams_page(request, session, user, status_code=409, values={"name": name},
                           errors={"name": "team_taken"})  # fmt: skip
    return RedirectResponse(f"/admin/teams?saved=true#team-{team.id}", status_code=303)


@router.post("/admin/teams/{team_id}")
def rename_team(request: Request, session: DbSession, user: Admin, team_id: IdPath, name: Annotated[str, Form()] = ""):
    team = auth_service.get_team(session, team_id=team_id)
    reason = "name_missing" if not name.strip() else None
    if reason is None:
        reason = _change_team(session, team=team, actor=user, name=name)
    if reason is not None:
        return _teams_page(request, session, user, status_code=409 if reason == "team_taken" else 422,
                           row_errors={team.id: reason}, typed={team.id: name})  # fmt: skip
    return RedirectResponse(f"/admin/teams?saved=true#team-{team.id}", status_code=303)


@router.post("/admin/teams/{team_id}/active")
def set_team_active(
    request: Request, session: DbSession, user: Admin, team_id: IdPath, active: Annotated[str, Form()] = ""
):
    team = auth_service.get_team(session, team_id=team_id)
    _change_team(session, team=team, actor=user, is_active=active == "true")
    return RedirectResponse(f"/admin/teams?saved=true#team-{team.id}", status_code=303)


@router.post("/admin/teams/{team_id}/members")
def change_members(
    request: Request,
    session: DbSession,
    user: Admin,
    team_id: IdPath,
    add: Annotated[str, Form()] = "",
    remove: Annotated[str, Form()] = "",
):
    """Add one person to a team (``add``: their id) or take one off it (``remove``)."""
    team = auth_service.get_team(session, team_id=team_id)
    members = set(auth_service.team_member_ids(session, team=team))
    if add.isdigit():
        members.add(int(add))
    if remove.isdigit():
        members.discard(int(remove))
    if _change_team(session, team=team, actor=user, member_ids=sorted(members)) is not None:
        return _teams_page(request, session, user, status_code=409, row_errors={team.id: "not_saved"})
    return RedirectResponse(f"/admin/teams?saved=true#team-{team.id}", status_code=303)


def _change_team(session, *, team, actor: User, **changes) -> str | None:
    """Apply a change to a team; the reason it was refused, or None."""
    try:
        with session.begin_nested():
            auth_service.update_team(session, team=team, actor=actor, **changes)
    except Conflict:
        session.refresh(team)
        return "team_taken"
    except InvalidInput:
        session.refresh(team)
        return "not_saved"
    return None


# The invited user's side


@router.get("/invitations/{token}")
def invitation_page(request: Request, session: DbSession, token: str):
    try:
        _, invited = invitations.open_invitation(
            session, token=token, app_secret=request.app.state.settings.resolved_secret_key
        )
    except CapeError as exc:
        return render(request, "invitation.html", {"problem": exc.code, "messages": MESSAGES}, status_code=404)
    return render(request, "invitation.html", {"invited": invited, "messages": MESSAGES, "errors": {}},
                  user=None, headers={"Referrer-Policy": "no-referrer"})  # fmt: skip


@router.post("/invitations/{token}", dependencies=[CsrfProtected])
def accept_invitation(
    request: Request,
    session: DbSession,
    token: str,
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
):
    """Choose a password from the link, and be signed in."""
    app_secret = request.app.state.settings.resolved_secret_key
    try:
        _, invited = invitations.open_invitation(session, token=token, app_secret=app_secret)
        if password != password_again:
            raise InvalidInput("password_again", "mismatch")
        with session.begin_nested():
            invited = invitations.accept_invitation(session, token=token, password=password, app_secret=app_secret)
    except InvalidInput as exc:
        field = "password_again" if exc.reason == "mismatch" else "password"
        return render(request, "invitation.html", {"invited": invited, "messages": MESSAGES,
                      "errors": {field: exc.reason}}, status_code=422)  # fmt: skip
    except CapeError as exc:
        return render(request, "invitation.html", {"problem": exc.code, "messages": MESSAGES}, status_code=404)
    key = auth_service.start_web_session(
        session, user=invited, user_agent=request.headers.get("user-agent"),
        keep_for=timedelta(seconds=request.app.state.settings.session_max_age_s),
    )  # fmt: skip
    if isinstance(previous := request.session.get(SESSION_KEY), str):
        auth_service.end_web_session(session, key=previous)  # whoever was signed in on this browser
    request.session.clear()  # a fresh session (and CSRF token) at sign-in
    request.session[SESSION_KEY] = key
    return RedirectResponse("/inbox", status_code=303)
