"""The inbox: conversations by view (mine, unassigned, a team's, all) and status, newest activity first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cape.auth import service as auth_service
from cape.auth.deps import CurrentUser, DbSession
from cape.conversations import service
from cape.kit.clock import utcnow
from cape.models import ConversationStatus
from cape.web.render import render
from cape.web.settings import duration
from cape.workspace.service import get_workspace_settings

router = APIRouter(include_in_schema=False)

INBOX_VIEWS = ("mine", "unassigned", "team", "all")


def _inbox_context(session, user, view: str, status: str, team: str | None, cursor: str | None, *, page: bool):
    """What the inbox shows; ``page`` for the whole page (with the toolbar), else only its rows."""
    view = view if view in INBOX_VIEWS else "all"
    status_filter = ConversationStatus(status) if status in ConversationStatus.__members__ else None
    team_id = int(team) if view == "team" and team and team.isdigit() and len(team) <= 18 else None
    teams = auth_service.user_teams(session, user_id=user.id) if page or (view == "team" and team_id is None) else []
    if view == "team" and team_id is None:  # the user's first team, if any
        team_id = teams[0].id if teams else None
        view = "team" if team_id is not None else "all"
    rows, next_cursor = service.list_conversations(
        session,
        status=status_filter,
        assignee_id=user.id if view == "mine" else None,
        unassigned=view == "unassigned",
        team_id=team_id,
        limit=50,
        cursor=cursor,
        preview=True,
    )
    thresholds, now = get_workspace_settings(session), utcnow()
    return {
        "conversations": rows,
        "next_cursor": next_cursor,
        "view": view,
        "status": status_filter.value if status_filter else "all",
        "statuses": [s.value for s in ConversationStatus],
        "views": INBOX_VIEWS,
        "teams": teams,
        "team_id": team_id,
        # How long each customer has waited, against the thresholds an admin sets (/admin/settings).
        "waiting_level": lambda since: thresholds.waiting_level(since, now=now),
        "warn_after": duration(thresholds.waiting_warn_minutes, user.language),
        "late_after": duration(thresholds.waiting_late_minutes, user.language),
    }


@router.get("/inbox")
def inbox(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", team: str | None = None, cursor: str | None = None,
):  # fmt: skip
    context = _inbox_context(session, user, view, status, team, cursor, page=True)
    return render(request, "inbox.html", context, user=user)


@router.get("/inbox/rows")
def inbox_rows(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", team: str | None = None, cursor: str | None = None,
):  # fmt: skip
    """The inbox list alone, fetched again by the page when the ``inbox`` topic says something changed."""
    context = _inbox_context(session, user, view, status, team, cursor, page=False)
    return render(request, "_inbox_rows.html", context, user=user)
