"""Admin pages for channels: the email mailboxes and addresses Cape receives mail for."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from cape.auth.deps import Admin, DbSession
from cape.channels.chat import service as chat_service
from cape.channels.email import service as email_service
from cape.channels.email.service import Security
from cape.channels.integrations.service import set_reply_webhook as set_api_reply_webhook
from cape.kit.errors import CapeError, Conflict, InvalidInput, NotFound
from cape.kit.validation import IdPath
from cape.models import Channel, ChannelKind, MailboxState
from cape.web.render import render

router = APIRouter(include_in_schema=False)


def _context(request: Request, session, values: dict | None = None, error: str | None = None, **extra) -> dict:
    settings = request.app.state.settings
    channels = email_service.list_email_channels(session, include_inactive=True)
    states = {s.channel_id: s for s in session.scalars(select(MailboxState))}
    servers = {c.id: email_service.stored_servers(c) for c in channels}
    warnings = {c.id: email_service.transport_warnings(c, settings=settings) for c in channels}
    context = {"channels": channels, "states": states, "servers": servers, "warnings": warnings,
               "values": values or {}, "error": error}  # fmt: skip
    return context | _outbound_context(session) | _chat_context(request, session) | extra


def _chat_context(request: Request, session) -> dict:
    chats = chat_service.list_chat_channels(session)
    return {
        "chat_channels": chats,
        "chat_settings": {c.id: _chat_form_values(chat_service.widget_settings(c)) for c in chats},
        "chat_values": {},
        "chat_errors": {},
        "new_chat": {},
        "new_chat_errors": {},
        "base_url": str(request.base_url).rstrip("/"),
        "time_zone": request.app.state.settings.time_zone,
    }


def _chat_form_values(values: dict) -> dict:
    """A widget's settings as its form shows them."""
    return {
        **values,
        "allowed_origins_text": "\n".join(values["allowed_origins"]),
        "business_hours_text": chat_service.format_business_hours(values["business_hours"]),
        "upload_max_mb": max(1, int(values["upload"]["max_bytes"]) // (1024 * 1024)),
    }


def _outbound_context(session) -> dict:
    api = session.scalar(select(Channel).where(Channel.key == ChannelKind.api.value))
    return {
        "default_outbound": email_service.default_outbound_channel(session),
        "reply_webhook_url": (api.settings or {}).get("reply_webhook_url") if api is not None else None,
    }


@router.get("/admin/channels")
def channels_page(request: Request, session: DbSession, user: Admin):
    return render(request, "channels.html", _context(request, session), user=user)


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
    imap_security: Annotated[Security, Form()] = Security.tls,
    imap_ca_file: Annotated[str, Form()] = "",
    imap_processed_folder: Annotated[str, Form()] = "",
    smtp_host: Annotated[str, Form()] = "",
    smtp_port: Annotated[int, Form()] = 587,
    smtp_user: Annotated[str, Form()] = "",
    smtp_password: Annotated[str, Form()] = "",
    smtp_security: Annotated[Security, Form()] = Security.starttls,
    smtp_ca_file: Annotated[str, Form()] = "",
    no_tls_verify: Annotated[bool, Form()] = False,
):
    """Add an email channel from the form; passwords are encrypted and never shown again."""
    imap = smtp = None
    if imap_host.strip():
        imap = email_service.ImapConfig(
            host=imap_host.strip(), port=imap_port, user=imap_user.strip(), password=imap_password,
            **email_service.security_flags(imap_security), ca_file=imap_ca_file.strip(), verify_tls=not no_tls_verify,
            processed_folder=imap_processed_folder.strip(),
        )  # fmt: skip
    if smtp_host.strip():
        smtp = email_service.SmtpConfig(
            host=smtp_host.strip(), port=smtp_port, user=smtp_user.strip(), password=smtp_password,
            **email_service.security_flags(smtp_security), ca_file=smtp_ca_file.strip(), verify_tls=not no_tls_verify,
        )  # fmt: skip
    try:
        email_service.create_email_channel(
            session, address=address, name=name.strip() or None, imap=imap, smtp=smtp,
            app_secret=request.app.state.settings.resolved_secret_key, actor=user,
        )  # fmt: skip
    except CapeError as exc:
        values = {"address": address, "name": name, "imap_host": imap_host, "imap_user": imap_user,
                  "imap_port": imap_port, "imap_security": imap_security, "imap_ca_file": imap_ca_file,
                  "smtp_host": smtp_host, "smtp_user": smtp_user, "smtp_port": smtp_port,
                  "smtp_security": smtp_security, "smtp_ca_file": smtp_ca_file,
                  "no_tls_verify": no_tls_verify}  # fmt: skip
        context = _context(request, session, values, exc.message)
        return render(request, "channels.html", context, user=user, status_code=422)
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/default-outbound")
def set_default_outbound(request: Request, session: DbSession, user: Admin, address: Annotated[str, Form()] = ""):
    """Choose the mailbox that answers contact-form and API conversations by email."""
    try:
        with session.begin_nested():
            email_service.set_default_outbound(session, address=address, actor=user)
    except CapeError as exc:
        return render(
            request, "channels.html", _context(request, session, outbound_error=exc.message), user=user, status_code=422
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
        context = _context(request, session, webhook_error=exc.message, webhook_url=url)
        return render(request, "channels.html", context, user=user, status_code=422)
    # The signing secret is shown once, on this answer, never again.
    return render(request, "channels.html", _context(request, session, new_webhook_secret=signing), user=user)


@router.post("/admin/channels/{channel_id}/active")
def set_channel_active(channel_id: IdPath, session: DbSession, user: Admin, active: Annotated[bool, Form()] = False):
    """Stop taking mail in through a channel, or start again."""
    channel = email_service.get_email_channel(session, channel_id=channel_id)
    email_service.update_email_channel(session, channel=channel, actor=user, is_active=active)
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/chat")
def add_chat_channel(
    request: Request, session: DbSession, user: Admin, name: Annotated[str, Form()] = "",
    slug: Annotated[str, Form()] = "",
):  # fmt: skip
    """Add a chat widget; its identity secret is shown on this answer only."""
    try:
        with session.begin_nested():
            _, secret = chat_service.create_chat_channel(
                session, name=name, slug=slug, app_secret=request.app.state.settings.resolved_secret_key, actor=user
            )
    except (InvalidInput, Conflict) as exc:
        field = exc.field if isinstance(exc, InvalidInput) else "slug"
        code = field if isinstance(exc, InvalidInput) else "conflict"
        context = _context(request, session, new_chat={"name": name, "slug": slug}, new_chat_errors={field: code})
        return render(request, "channels.html", context, user=user, status_code=422)
    return render(request, "channels.html", _context(request, session, new_chat_secret=secret), user=user)


@router.post("/admin/channels/chat/{channel_id}")
def save_chat_settings(
    channel_id: IdPath,
    request: Request,
    session: DbSession,
    user: Admin,
    colour: Annotated[str, Form()] = "",
    greeting_en: Annotated[str, Form()] = "",
    greeting_fr: Annotated[str, Form()] = "",
    greeting_da: Annotated[str, Form()] = "",
    position: Annotated[str, Form()] = "right",
    allowed_origins: Annotated[str, Form()] = "",
    business_hours: Annotated[str, Form()] = "",
    ask_name: Annotated[bool, Form()] = False,
    ask_email: Annotated[bool, Form()] = False,
    upload_max_mb: Annotated[str, Form()] = "10",
):
    """Save a chat widget's settings; a form with mistakes comes back as typed, each beside its field."""
    channel = _chat(session, channel_id)
    form = chat_service.SettingsForm(
        colour=colour, greeting_en=greeting_en, greeting_fr=greeting_fr, greeting_da=greeting_da, position=position,
        allowed_origins=allowed_origins, business_hours=business_hours, ask_name=ask_name, ask_email=ask_email,
        upload_max_mb=int(upload_max_mb) if upload_max_mb.strip().isdigit() else 0,
    )  # fmt: skip
    values, errors = chat_service.settings_errors(form)
    if errors:
        typed = {
            "colour": colour, "position": position,
            "greeting": {"en": greeting_en, "fr": greeting_fr, "da": greeting_da},
            "allowed_origins_text": allowed_origins, "business_hours_text": business_hours,
            "prechat": {"ask_name": ask_name, "ask_email": ask_email}, "upload_max_mb": upload_max_mb,
        }  # fmt: skip
        context = _context(request, session)
        context["chat_values"], context["chat_errors"] = {channel.id: typed}, {channel.id: errors}
        return render(request, "channels.html", context, user=user, status_code=422)
    chat_service.update_widget_settings(session, channel=channel, values=values, actor=user)
    return RedirectResponse("/admin/channels", status_code=303)


@router.post("/admin/channels/chat/{channel_id}/secret")
def regenerate_chat_secret(channel_id: IdPath, request: Request, session: DbSession, user: Admin):
    """A new identity secret; the old one stops verifying at once. Shown on this answer only."""
    channel = _chat(session, channel_id)
    secret = chat_service.regenerate_identity_secret(
        session, channel=channel, app_secret=request.app.state.settings.resolved_secret_key, actor=user
    )
    return render(request, "channels.html", _context(request, session, new_chat_secret=secret), user=user)


def _chat(session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None or channel.kind is not ChannelKind.chat:
        raise NotFound(f"no chat channel {channel_id}")
    return channel
