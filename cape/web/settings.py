"""The admins' settings page: deployment-wide settings such as when a waiting customer is late."""

from __future__ import annotations

import re
from typing import Annotated

from babel.units import format_unit
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from cape.auth.deps import Admin, DbSession
from cape.i18n.terms import N_
from cape.kit.errors import InvalidInput
from cape.web.render import render
from cape.workspace import service
from cape.workspace.service import MAX_MINUTES

router = APIRouter(include_in_schema=False)

FIELDS = ("waiting_warn_minutes", "waiting_late_minutes")
# The service's reasons, as the page says them beside their field.
MESSAGES = {
    service.OUT_OF_RANGE: N_("Enter a whole number of minutes from 1 to %(max)s (30 days)."),
    service.NOT_AFTER_WARNING: N_("Late must come after the warning: enter more minutes than above."),
}


def duration(minutes: int, language: str) -> str:
    """A number of minutes as people say it, in short units: "1 hr", "1 hr 30 min", "2 days 4 hr"."""
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        format_unit(value, unit, length="short", locale=language)
        for value, unit in ((days, "duration-day"), (hours, "duration-hour"), (minutes, "duration-minute"))
        if value
    ]
    return " ".join(parts)


@router.get("/admin/settings")
def settings_page(request: Request, session: DbSession, user: Admin, saved: bool = False):
    current = service.get_workspace_settings(session)
    context = {"values": {name: getattr(current, name) for name in FIELDS}, "current": current, "saved": saved}
    return render(request, "settings.html", context | _words(user), user=user)


@router.post("/admin/settings")
def save_settings(
    request: Request,
    session: DbSession,
    user: Admin,
    waiting_warn_minutes: Annotated[str, Form()] = "",
    waiting_late_minutes: Annotated[str, Form()] = "",
):
    """Save the waiting thresholds; an error is shown beside its field, with what was typed kept."""
    typed = {"waiting_warn_minutes": waiting_warn_minutes.strip(), "waiting_late_minutes": waiting_late_minutes.strip()}
    try:
        numbers = {}
        for name, text in typed.items():
            if not re.fullmatch(r"[0-9]{1,9}", text):
                raise InvalidInput(name, service.OUT_OF_RANGE)
            numbers[name] = int(text)
        with session.begin_nested():
            service.update_workspace_settings(session, actor=user, **numbers)
    except InvalidInput as exc:
        context = {"values": typed, "current": service.get_workspace_settings(session),
                   "errors": {exc.field: MESSAGES.get(exc.reason, MESSAGES[service.OUT_OF_RANGE])}}  # fmt: skip
        return render(request, "settings.html", context | _words(user), user=user, status_code=422)
    return RedirectResponse("/admin/settings?saved=true", status_code=303)


def _words(user) -> dict:
    return {"max_minutes": MAX_MINUTES, "duration": lambda minutes: duration(minutes, user.language)}
