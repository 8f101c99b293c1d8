"""Admin pages for channels: the email mailboxes and addresses Cape receives mail for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from cape.auth.deps import Admin, DbSession
from cape.channels.email import service as email_service
from cape.kit.errors import CapeError
from cape.kit.validation import IdPath
from cape.models import MailboxState
from cape.web.render import render

router = APIRouter(include_in_schema=False)


def _context(session, values: dict | None = None, error: str | None = None) -> dict:
    channels = email_service.list_email_channels(session, include_inactive=True)
    states = {s.channel_id: s for s in session.scalars(select(MailboxState))}
    return {"channels": channels, "states": states, "values": values or {}, "error": error}


@router.get("/admin/channels")
def channels_page(request: Request, session: DbSession, user: Admin):
    return render(request, "channels.html", _context(session), user=user)


@router.post("/admin/channels/email")
def add_email_channel(
    request: Request,
    session: DbSession,
    user: Admin,
    address: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    imap_host: Annotated[str, Form()] = "",
    imap_port: Annotated[int, Form()] = 993,
    imap_user: Annotated[str, Form()] = "",
    imap_password: Annotated[str, Form()] = "",
    imap_ssl: Annotated[bool, Form()] = False,
    imap_processed_folder: Annotated[str, Form()] = "",
    smtp_host: Annotated[str, Form()] = "",
    smtp_port: Annotated[int, Form()] = 587,
    smtp_user: Annotated[str, Form()] = "",
    smtp_password: Annotated[str, Form()] = "",
    smtp_starttls: Annotated[bool, Form()] = False,
):
    """Add an email channel from the form; passwords are encrypted and never shown again."""
    imap = smtp = None
    if imap_host.strip():
        imap = email_service.ImapConfig(
            host=imap_host.strip(), port=imap_port, user=imap_user.strip(), password=imap_password,
            ssl=imap_ssl, processed_folder=imap_processed_folder.strip(),
        )  # fmt: skip
    if smtp_host.strip():
        smtp = email_service.SmtpConfig(host=smtp_host.strip(), port=smtp_port, user=smtp_user.strip(),
                                        password=smtp_password, starttls=smtp_starttls)  # fmt: skip
    try:
        email_service.create_email_channel(
            session, address=address, name=name.strip() or None, imap=imap, smtp=smtp,
            app_secret=request.app.state.settings.resolved_secret_key, actor=user,
        )  # fmt: skip
    except CapeError as exc:
        values = {"address": address, "name": name, "imap_host": imap_host, "imap_user": imap_user,
                  "smtp_host": smtp_host, "smtp_user": smtp_user}  # fmt: skip
        return render(request, "channels.html", _context(session, values, exc.message), user=user, status_code=422)
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/{channel_id}/active")
def set_channel_active(channel_id: IdPath, session: DbSession, user: Admin, active: Annotated[bool, Form()] = False):
    """Stop taking mail in through a channel, or start again."""
    channel = email_service.get_email_channel(session, channel_id)
    email_service.update_email_channel(session, channel=channel, actor=user, is_active=active)
    return RedirectResponse("/admin/channels", status_code=303)
