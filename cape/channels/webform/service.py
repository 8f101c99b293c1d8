"""The contact form's rules: the per-address limit, the fields, and ingestion on the web-form channel."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from cape.auth import throttle
from cape.channels.base import InboundMessage, Sender, builtin_channel
from cape.config import SUPPORTED_LANGUAGES
from cape.conversations.service import IngestResult, ingest
from cape.kit.errors import CapeError, InvalidInput, TooManyAttempts
from cape.models import ChannelKind

MESSAGE_MAX_CHARS = 20_000


@dataclass(frozen=True)
class ContactForm:
    name: str = ""
    email: str = ""
    subject: str = ""
    message: str = ""
    # The language of the page the customer filled in (en, fr, da).
    language: str | None = None


def form_errors(form: ContactForm) -> dict[str, str]:
    """What is wrong with the form, by field: "required", "too_long"."""
    errors = {}
    if not form.email.strip():
        errors["email"] = "required"
    if not form.message.strip():
        errors["message"] = "required"
    elif len(form.message) > MESSAGE_MAX_CHARS:
        errors["message"] = "too_long"
    return errors


def submit_contact_form(session: Session, *, form: ContactForm, client_host: str | None) -> IngestResult:
    """File a contact-form message as a conversation; commits, like ``ingest``.

    Raises ``TooManyAttempts`` past the per-address limit, ``InvalidInput`` (field: "email",
    "message") for a form that cannot be filed.
    """
    address = throttle.address_key(client_host)
    throttle.serialize(session, keys=[address])
    if wait := throttle.retry_after(session, limit=throttle.CONTACT_BY_ADDRESS, key=address):
        raise TooManyAttempts("too many messages from this address; try again later", retry_after_s=wait)
    if errors := form_errors(form):
        field, reason = next(iter(errors.items()))
        raise InvalidInput(field, reason)
    values = {"name": form.name, "email": form.email, "subject": form.subject, "message": form.message,
              "language": form.language or ""}  # fmt: skip
    inbound = InboundMessage(
        channel=builtin_channel(session, kind=ChannelKind.web),
        sender=Sender(email=form.email.strip(), name=form.name.strip() or None),
        subject=form.subject.strip() or None,
        body_text=form.message.strip(),
        raw=urlencode(values).encode(),
        raw_content_type="application/x-www-form-urlencoded",
        language=form.language if form.language in SUPPORTED_LANGUAGES else None,
    )
    # Counted in the transaction that checked the limit (ingest commits): parallel posts count too.
    throttle.hit(session, limit=throttle.CONTACT_BY_ADDRESS, key=address)
    try:
        return ingest(session, inbound=inbound)
    except InvalidInput as exc:
        raise InvalidInput(exc.field.removeprefix("from."), "invalid") from exc
    except CapeError as exc:
        raise InvalidInput("email", "invalid") from exc
