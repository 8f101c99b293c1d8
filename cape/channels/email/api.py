"""Attachments API: list a message's files and download them."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict

from cape.auth.deps import CurrentUser, DbSession
from cape.channels.email import service
from cape.kit.validation import IdPath

router = APIRouter(prefix="/api/v1", tags=["attachments"])

_INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: int
    filename: str
    content_type: str
    size: int
    content_id: str | None
    is_inline: bool
    is_stored: bool


@router.get("/messages/{message_id}/attachments", response_model=list[AttachmentOut])
def list_attachments(message_id: IdPath, session: DbSession, user: CurrentUser):
    return service.message_attachments(session, message_id=message_id)


@router.get("/attachments/{attachment_id}", response_class=FileResponse)
def download_attachment(attachment_id: IdPath, request: Request, session: DbSession, user: CurrentUser):
    """The file; served as a download, never rendered by the browser in our origin."""
    attachment, path = service.attachment_file(
        session, attachment_id=attachment_id, data_dir=request.app.state.settings.data_dir
    )
    return attachment_response(attachment, path)


def attachment_response(attachment, path) -> FileResponse:
    """A stored file as a response: never rendered by the browser in our origin."""
    # Raster images may be shown inline (cid: images in messages); anything else, SVG included,
    # is only ever a download, so it cannot run in our origin.
    inline = attachment.content_type in _INLINE_IMAGE_TYPES
    disposition = "inline" if inline else "attachment"
    return FileResponse(
        path,
        media_type=attachment.content_type if inline else "application/octet-stream",
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(attachment.filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )
