"""Template rendering with the viewer's language, CSRF token and formatting helpers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from cape.auth.deps import csrf_token
from cape.channels.email.parse import split_quoted
from cape.i18n import negotiate, translations
from cape.kit.html import text_to_html
from cape.models import User
from cape.web.formatting import formatter
from cape.web.labels import label

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.autoescape = True


def _moment(value: str | datetime | None) -> datetime | None:
    """A moment kept as ISO text (in history data) as a datetime for ``when``; None when unreadable."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _with_inline_images(body_html: str, attachments: list) -> Markup:
    """Sanitised email HTML with its cid: images pointing at their stored attachments."""
    for attachment in attachments:
        if attachment.content_id and attachment.is_stored:
            body_html = body_html.replace(
                f'src="cid:{attachment.content_id}"', f'src="/api/v1/attachments/{attachment.id}"'
            )
    return Markup(body_html)  # noqa: S704 - sanitised at ingest; only our own URLs are added


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: User | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
):
    """Render a page or fragment in the viewer's language."""
    language = user.language if user else negotiate(request.headers.get("accept-language"))
    catalog = translations(language)
    fmt = formatter(language, request.app.state.settings.time_zone)
    page = {
        "request": request,
        "user": user,
        "language": language,
        # Error pages for failures outside the session middleware have no session (nor a form to post).
        "csrf_token": csrf_token(request) if "session" in request.scope else "",
        "_": catalog.gettext,
        "ngettext": catalog.ngettext,
        # A label before its value ("Store credit: …"), as the language writes it (« Avoir : … »).
        "colon": lambda text: catalog.gettext("%(label)s:") % {"label": text},
        "since": fmt.since,
        "money": fmt.money,
        "when": fmt.when,
        "moment": _moment,
        "amount_input": fmt.amount_input,
        # text_to_html escapes every line before joining them with <br>.
        "text_html": lambda text: Markup(text_to_html(text or "")),  # noqa: S704
        "split_quoted": split_quoted,
        "label": lambda kind, value: label(catalog.gettext, kind, value, pgettext=catalog.pgettext, language=language),
        "number": fmt.number,
        "with_inline_images": _with_inline_images,
    }
    page.update(context or {})
    return templates.TemplateResponse(request, template, page, status_code=status_code, headers=headers)
