"""Server-rendered pages (Jinja2 + HTMX)."""

from __future__ import annotations

from fastapi import FastAPI


def install_web(app: FastAPI) -> None:
    from cape.web import (
        actions,
        channels,
        contact,
        conversations,
        customers,
        inbox,
        people,
        presence,
        settings,
        sign_in,
    )

    for area in (sign_in, inbox, conversations, customers, contact, actions, channels, settings, presence, people):
        app.include_router(area.router)
