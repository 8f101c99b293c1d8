"""Keyset pagination cursors: opaque, URL-safe, and stable under inserts."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from cape.kit.errors import InvalidInput
from cape.kit.validation import MAX_ID


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
