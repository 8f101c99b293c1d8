"""The inbox: conversations by view (mine, unassigned, all) and status, newest activity first."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cape.auth.deps import CurrentUser, DbSession
from cape.conversations import service
from cape.models import ConversationStatus
from cape.web.render import render

router = APIRouter(include_in_schema=False)

INBOX_VIEWS = ("mine", "unassigned", "all")


def _inbox_context(session, user, view: str, status: str, cursor: str | None):
    view = view if view in INBOX_VIEWS else "all"
    status_filter = ConversationStatus(status) if status in ConversationStatus.__members__ else None
    rows, next_cursor = service.list_conversations(
        session,
        status=status_filter,
        assignee_id=user.id if view == "mine" else None,
        unassigned=view == "unassigned",
        limit=50,
        cursor=cursor,
    )
    return {
        "conversations": rows,
        "next_cursor": next_cursor,
        "view": view,
        "status": status_filter.value if status_filter else "all",
        "statuses": [s.value for s in ConversationStatus],
        "views": INBOX_VIEWS,
    }


@router.get("/inbox")
def inbox(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", cursor: str | None = None,
):  # fmt: skip
    return render(request, "inbox.html", _inbox_context(session, user, view, status, cursor), user=user)


@router.get("/inbox/rows")
def inbox_rows(
    request: Request, session: DbSession, user: CurrentUser,
    view: str = "all", status: str = "open", cursor: str | None = None,
):  # fmt: skip
    """The inbox list alone, polled by the page so new conversations appear without a reload."""
    return render(request, "_inbox_rows.html", _inbox_context(session, user, view, status, cursor), user=user)
