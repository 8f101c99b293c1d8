"""Admin pages for channels: the email mailboxes and addresses Cape receives mail for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from cape.auth.deps import Admin, DbSession
from cape.channels.email import service as email_service
from cape.channels.integrations.service import set_reply_webhook as set_api_reply_webhook
from cape.kit.errors import CapeError
from cape.models import Channel, ChannelKind, MailboxState
from cape.web.render import render

router = APIRouter(include_in_schema=False)


def _context(session, values: dict | None = None, error: str | None = None, **extra) -> dict:
    channels = email_service.list_email_channels(session)
    states = {s.channel_id: s for s in session.scalars(select(MailboxState))}
    return {
        "channels": channels,
        "states": states,
        "values": values or {},
        "error": error,
        **_outbound_context(session),
        **extra,
    }


def _outbound_context(session) -> dict:
    api = session.scalar(select(Channel).where(Channel.key == ChannelKind.api.value))
    return {
        "default_outbound": email_service.default_outbound_channel(session),
        "reply_webhook_url": (api.settings or {}).get("reply_webhook_url") if api is not None else None,
    }


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
            app_secret=request.app.state.settings.resolved_secret_key,
        )  # fmt: skip
    except CapeError as exc:
        values = {"address": address, "name": name, "imap_host": imap_host, "imap_user": imap_user,
                  "smtp_host": smtp_host, "smtp_user": smtp_user}  # fmt: skip
        return render(request, "channels.html", _context(session, values, exc.message), user=user, status_code=422)
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/default-outbound")
def set_default_outbound(request: Request, session: DbSession, user: Admin, address: Annotated[str, Form()] = ""):
    """Choose the mailbox that answers contact-form and API conversations by email."""
    try:
        with session.begin_nested():
            email_service.set_default_outbound(session, address=address, actor=user)
    except CapeError as exc:
        return render(
            request, "channels.html", _context(session, outbound_error=exc.message), user=user, status_code=422
        )
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/reply-webhook")
def set_reply_webhook(
    request: Request,
    session: DbSession,
    user: Admin,
    url: Annotated[str, Form()] = "",
    secret: Annotated[str, Form()] = "",
):
    """Register (or, left empty, remove) the integration's webhook for replies in API conversations."""
    try:
        with session.begin_nested():
            signing = set_api_reply_webhook(
                session, url=url.strip() or None, secret=secret.strip() or None, actor=user,
                app_secret=request.app.state.settings.resolved_secret_key,
            )  # fmt: skip
    except CapeError as exc:
        context = _context(session, webhook_error=exc.message, webhook_url=url)
        return render(request, "channels.html", context, user=user, status_code=422)
    # The signing secret is shown once, on this answer, never again.
    return render(request, "channels.html", _context(session, new_webhook_secret=signing), user=user)
