"""The top bar's online/away switch."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.auth.deps import CurrentUser, DbSession
from cape.kit.errors import InvalidInput
from cape.models import PresenceStatus
from cape.realtime import presence
from cape.web.render import render

router = APIRouter(include_in_schema=False)


@router.post("/presence")
def set_presence(request: Request, session: DbSession, user: CurrentUser, status: Annotated[str, Form()] = ""):
    """The agent says they are online or away; colleagues' screens hear it (topic ``presence``)."""
    if status not in ("online", "away"):
        raise InvalidInput("status", "must be online or away")
    presence.change(session, user_id=user.id, status=PresenceStatus(status))
    session.refresh(user)
    if request.headers.get("hx-request"):
        return render(request, "_presence_switch.html", user=user)
    back = urlsplit(request.headers.get("referer", ""))
    same_site = back.netloc == request.headers.get("host") and back.path.startswith("/")
    target = back.path + (f"?{back.query}" if back.query else "")
    return RedirectResponse(target if same_site else "/inbox", status_code=303)
