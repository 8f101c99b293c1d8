"""Keyset pagination cursors: opaque, URL-safe, and stable under inserts."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from cape.kit.errors import InvalidInput
from cape.kit.validation import MAX_ID


class Page(NamedTuple):
    rows: list
    next_cursor: str | None  # None on the last page


def encode_cursor(at: datetime, row_id: int) -> str:
    raw = json.dumps([at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        at, row_id = datetime.fromisoformat(at), int(row_id)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor returned by this API") from exc
    if at.tzinfo is None or not 0 < row_id <= MAX_ID:
        raise InvalidInput("cursor", "not a cursor returned by this API")
    return at, row_id


def newest_first(session: Session, query: Select, *, at: Any, row_id: Any, limit: int, cursor: str | None) -> Page:
    """One page of ``query``'s rows, newest first by (``at``, ``row_id``) (mapped attributes,
    which an index should serve), starting after ``cursor``; with the cursor of the next page."""
    if cursor:
        last_at, last_id = decode_cursor(cursor)
        query = query.where(or_(at < last_at, and_(at == last_at, row_id < last_id)))
    rows = list(session.scalars(query.order_by(at.desc(), row_id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_cursor(getattr(last, at.key), getattr(last, row_id.key)))
