"""The widget's endpoints: ``/widget.js``, the demo page, ``/widget/api/*`` (JSON, CORS) and ``/widget/ws``.

Handlers look up, call the chat service and format. Visitors are authenticated by their signed
visitor token (``Authorization: Bearer``, or ``?token=`` on the socket); the host page's Origin
must be one the channel allows (any when it lists none).
"""

from __future__ import annotations

import hashlib
import pathlib
import re
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile, WebSocket
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cape.auth.deps import DbSession
from cape.channels.chat import service
from cape.channels.chat.socket import VisitorConnection, origin_allowed
from cape.channels.email.api import attachment_response
from cape.channels.email.service import attachment_file, save_attachment
from cape.db import mark_read_only
from cape.kit.errors import Forbidden, NotAuthenticated, NotFound, TooLarge, UnsupportedType
from cape.kit.validation import Text
from cape.models import Channel, ChatVisitor, Message
from cape.web.render import render

router = APIRouter(include_in_schema=False)

WIDGET_JS = pathlib.Path(__file__).resolve().parents[2] / "web" / "static" / "widget.js"
# Multipart overhead on top of the largest file a channel may take.
MAX_UPLOAD_BODY = 51 * 1024 * 1024


class IdentityIn(BaseModel):
    email: Text | None = Field(default=None, max_length=320)
    id: Text | None = Field(default=None, max_length=200)
    name: Text | None = Field(default=None, max_length=200)
    hash: Text = Field(max_length=128)


class SessionIn(BaseModel):
    channel: Text = Field(max_length=320)
    token: str | None = Field(default=None, max_length=2000)
    identity: IdentityIn | None = None
    name: Text | None = Field(default=None, max_length=200)
    email: Text | None = Field(default=None, max_length=320)
    language: str | None = Field(default=None, max_length=8)


class EmailIn(BaseModel):
    email: Text = Field(max_length=320)


# -- the script and the demo page -------------------------------------------------------------


@router.get("/widget.js")
def widget_script():
    """The widget; cached briefly, so a new version reaches sites within minutes."""
    if not WIDGET_JS.exists():
        raise NotFound("the widget is not built")
    return FileResponse(
        WIDGET_JS,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/widget/demo")
def widget_demo(request: Request):
    """A plain shop page with the demo chat on it."""
    return render(request, "widget_demo.html", {"channel_key": "chat:demo"})


# -- the visitor's HTTP API -------------------------------------------------------------------


def _visitor(request: Request, session: Session, *, create: bool = False) -> tuple[ChatVisitor, Channel]:
    """The visitor of the bearer token, with the Origin checked against its channel."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    visitor = service.visitor_for_token(session, token=token, app_secret=_secret(request), create=create)
    channel = session.get_one(Channel, visitor.channel_id)
    if not channel.is_active:
        raise NotAuthenticated("this chat is closed")
    _check_origin(request, channel)
    return visitor, channel


def _visitor_in_request_session(request: Request, session: DbSession) -> tuple[ChatVisitor, Channel]:
    # A write (continue by email) makes the visitor's row; a read finds it, or a visitor with none.
    return _visitor(request, session, create=request.method not in ("GET", "HEAD"))


def _visitor_read_apart(request: Request) -> tuple[ChatVisitor, Channel]:
    """The visitor, read in a short session of its own (for a handler that files through the inbound
    queue, which must not wait behind a transaction the request holds)."""
    with request.app.state.session_factory() as session:
        mark_read_only(session)
        visitor, channel = _visitor(request, session)
        session.expunge_all()
        return visitor, channel


# Dependencies, so a request without a valid visitor token is refused (401) before its body is read.
CurrentVisitor = Annotated[tuple[ChatVisitor, Channel], Depends(_visitor_in_request_session)]
CurrentVisitorApart = Annotated[tuple[ChatVisitor, Channel], Depends(_visitor_read_apart)]


def _check_origin(request: Request, channel: Channel) -> None:
    if not origin_allowed(channel, request.headers.get("origin")):
        raise Forbidden("this site may not use this chat", code="origin_not_allowed")


def _secret(request: Request) -> str:
    return request.app.state.settings.resolved_secret_key


@router.get("/widget/api/config")
def get_config(
    request: Request, session: DbSession, channel: Annotated[str, Query(max_length=320)] = "", lang: str = ""
):
    found = service.chat_channel(session, key=channel)
    _check_origin(request, found)
    time_zone = request.app.state.settings.time_zone
    return service.widget_config(session, channel=found, language=lang or None, time_zone=time_zone)


@router.post("/widget/api/session")
def post_session(body: SessionIn, request: Request, session: DbSession):
    """Start or resume the visitor's chat: a token, the history, who answers, whether anyone is there."""
    channel = service.chat_channel(session, key=body.channel)
    _check_origin(request, channel)
    claim = service.IdentityClaim(**body.identity.model_dump()) if body.identity else None
    started = service.start_session(
        session, channel=channel, token=body.token, app_secret=_secret(request),
        time_zone=request.app.state.settings.time_zone, identity=claim, name=body.name, email=body.email,
        language=body.language,
    )  # fmt: skip
    visitor = started.visitor
    messages = service.visitor_messages(session, visitor=visitor)
    return {
        "token": started.token,
        "conversation_id": visitor.conversation_id,
        "messages": service.public_messages(session, messages=messages, app_secret=_secret(request)),
        "agent": service.conversation_agent(session, conversation_id=visitor.conversation_id),
        "online": started.online,
    }


@router.get("/widget/api/messages")
def get_messages(request: Request, session: DbSession, current: CurrentVisitor, after: Annotated[int, Query(ge=0)] = 0):
    """What the visitor missed (after a reconnect): their conversation's messages after ``after``."""
    visitor, _ = current
    messages = service.visitor_messages(session, visitor=visitor, after=after)
    return {"messages": service.public_messages(session, messages=messages, app_secret=_secret(request))}


@router.post("/widget/api/upload", max_body_size=MAX_UPLOAD_BODY)
async def post_upload(
    request: Request,
    current: CurrentVisitorApart,
    file: Annotated[UploadFile, File()],
    client_id: Annotated[str, Form(max_length=64)] = "",
):
    """A file from the visitor, as a message of its own; 413/415 past the channel's limits."""
    visitor, channel = current
    content_type = (file.content_type or "application/octet-stream").split(";")[0].strip().lower()
    limit = int(service.widget_settings(channel)["upload"]["max_bytes"])
    content = await file.read(limit + 1)
    problem = service.check_upload(channel, content_type=content_type, size=len(content))
    if problem == "too_large":
        raise TooLarge(f"the file is larger than {limit} bytes")
    if problem == "unsupported_type":
        raise UnsupportedType(f"files of type {content_type} are not taken")
    client_id = service.valid_client_id(client_id or hashlib.sha256(content).hexdigest()[:32])
    filename = re.split(r"[\\/]", file.filename or "")[-1].strip()[:255] or "file"  # a path from Windows too
    data_dir = request.app.state.settings.data_dir
    sha256 = await run_in_threadpool(save_attachment, data_dir, content)
    connection = VisitorConnection.for_request(request.app, visitor=visitor, channel=channel)

    def build(session: Session, visitor: ChatVisitor, conversation_id: int | None):
        return service.inbound_upload(
            channel=channel, visitor=visitor, client_id=client_id, filename=filename, content_type=content_type,
            content=content, sha256=sha256, conversation_id=conversation_id,
        )  # fmt: skip

    payload = await connection.file_inbound(build)
    return {"message": payload}


@router.post("/widget/api/email")
def post_email(current: CurrentVisitor, body: EmailIn, session: DbSession):
    """Continue by email: replies in this chat go to the address from now on."""
    visitor, _ = current
    service.continue_by_email(session, visitor=visitor, email=body.email)
    return {"email": visitor.email, "conversation_id": visitor.conversation_id}


@router.get("/widget/api/files/{signed}")
def get_file(signed: Annotated[str, Path(max_length=200)], request: Request, session: DbSession):
    """A file of a chat, by the signed link the visitor was given; a download, never run in our origin."""
    attachment = service.attachment_for_url(session, signed=signed, app_secret=_secret(request))
    message = session.get_one(Message, attachment.message_id)
    if message.direction.value == "note":
        raise NotFound("no such file")
    attachment, path = attachment_file(
        session, attachment_id=attachment.id, data_dir=request.app.state.settings.data_dir
    )
    return attachment_response(attachment, path)


@router.websocket("/widget/ws")
async def widget_socket(websocket: WebSocket, token: str = ""):
    """The visitor's live chat (frames in docs/chat.md)."""
    connection = await VisitorConnection.open(websocket, token=token)
    if connection is not None:
        await connection.run()


class WidgetCors:
    """CORS for ``/widget/api/*``: the widget runs on other sites' pages. No cookies are involved.

    A preflight is answered for any origin (it names no channel); each request then checks its
    Origin against its channel's allowed origins and is refused with 403 when not allowed.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/widget/api/"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is None:
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            response = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin.decode("latin-1"),
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
            return await response(scope, receive, send)

        async def with_cors(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"], (b"access-control-allow-origin", origin), (b"vary", b"Origin")
                ]  # fmt: skip
            await send(message)

        await self.app(scope, receive, with_cors)
