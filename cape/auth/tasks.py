"""Background jobs of auth: forgetting rate-limit counts that have left their window, emailing invitations."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from huey import crontab

from cape import jobs
from cape.auth import throttle
from cape.auth.invitations import VALID_FOR, invitation_token
from cape.channels.email.send import Outgoing, PermanentFailure, deliver, new_message_id
from cape.channels.email.service import default_outbound_channel, default_relay, smtp_config
from cape.config import Settings
from cape.db import unit_of_work
from cape.i18n import translations
from cape.kit.clock import utcnow
from cape.models import Invitation, User

log = logging.getLogger(__name__)


@jobs.huey.periodic_task(crontab(minute="*/15"))
def prune_rate_limits() -> int:
    with jobs.job_session() as session:
        return throttle.prune(session)


def invitation_email(session, *, invitation_id: int, base_url: str, settings: Settings) -> Outgoing | None:
    """The email that brings an invitation's link, in the invited user's language, from the
    default outbound mailbox; None when there is no mailbox or relay, or the link is spent."""
    invitation = session.get(Invitation, invitation_id)
    channel = default_outbound_channel(session)
    if invitation is None or invitation.used_at is not None or channel is None:
        return None
    relay = smtp_config(channel, settings.resolved_secret_key) or default_relay(settings)
    if relay is None:
        return None
    user = session.get_one(User, invitation.user_id)
    gettext = translations(user.language).gettext
    token = invitation_token(invitation, app_secret=settings.resolved_secret_key)
    link = f"{base_url.rstrip('/')}/invitations/{token}"
    days = VALID_FOR.days
    email = EmailMessage()
    email["From"] = formataddr((channel.name if channel.name != channel.address else "", channel.address or ""))
    email["To"] = formataddr((user.name, user.email))
    email["Subject"] = gettext("You are invited to Cape")
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = new_message_id(channel)
    greeting = gettext("Hello %(name)s,") % {"name": user.name}
    body = gettext(
        "You have been given an account in Cape, the customer service workspace. Open this link to choose your "
        "password and sign in. It works once, for %(days)s days:"
    ) % {"days": days}
    email.set_content(f"{greeting}\n\n{body}\n\n{link}\n")
    return Outgoing(0, email, channel.address or "", [user.email], relay)


@jobs.huey.task()
def send_invitation_task(invitation_id: int, base_url: str) -> None:
    """Email an invitation's link; a failure is logged (the admin also has the link on screen)."""
    with unit_of_work(jobs.session_factory(), read_only=True) as session:
        outgoing = invitation_email(session, invitation_id=invitation_id, base_url=base_url,
                                    settings=jobs.runtime_settings())  # fmt: skip
    if outgoing is None:
        return
    try:
        deliver(outgoing)
    except (PermanentFailure, OSError, smtplib.SMTPException) as exc:
        log.warning("the invitation email was not sent", extra={"invitation_id": invitation_id, "error": str(exc)})
