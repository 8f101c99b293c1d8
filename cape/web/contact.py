"""The public contact form, in the visitor's language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request

from cape.auth.deps import CsrfProtected, DbSession
from cape.channels.webform.service import ContactForm, form_errors, submit_contact_form
from cape.config import SUPPORTED_LANGUAGES
from cape.i18n import negotiate
from cape.kit.errors import InvalidInput, TooManyAttempts
from cape.web.render import render
from cape.web.sign_in import client_host

router = APIRouter(include_in_schema=False)


@router.get("/contact")
def contact_page(request: Request):
    return render(request, "contact.html", {"values": {}, "errors": {}})


@router.post("/contact", dependencies=[CsrfProtected])
def contact_submit(
    request: Request,
    session: DbSession,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
    website: Annotated[str, Form()] = "",  # honeypot: people leave it empty, bots fill it
    language: Annotated[str, Form()] = "",
):
    # The page's language, which the form carries; else what the browser asks for.
    language = language if language in SUPPORTED_LANGUAGES else negotiate(request.headers.get("accept-language"))
    form = ContactForm(name=name, email=email, subject=subject, message=message, language=language)
    values = {"name": name, "email": email, "subject": subject, "message": message}
    if website:
        return render(request, "contact_thanks.html", {})
    try:
        submit_contact_form(session, form=form, client_host=client_host(request))
    except TooManyAttempts as exc:
        context = {"values": values, "errors": {}, "throttled": True}
        headers = {"Retry-After": str(exc.retry_after_s)}
        return render(request, "contact.html", context, status_code=429, headers=headers)
    except InvalidInput as exc:
        errors = form_errors(form) or {exc.field: exc.reason}
        return render(request, "contact.html", {"values": values, "errors": errors}, status_code=422)
    return render(request, "contact_thanks.html", {})
