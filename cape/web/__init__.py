"""Server-rendered pages (Jinja2 + HTMX)."""

from __future__ import annotations

from fastapi import FastAPI


def install_web(app: FastAPI) -> None:
    from cape.web import actions, channels, pages

    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(channels.router)
