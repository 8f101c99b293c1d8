"""Signed webhooks out: a JSON POST with an HMAC signature, retried with backoff.

Every webhook Cape sends (the store connector, the API channel's replies) signs and retries
the same way, so a receiver verifies them all with one function. Headers of every attempt (the
same body and key, a fresh timestamp):

    Content-Type: application/json
    Idempotency-Key: <key>
    Cape-Timestamp: <unix seconds>
    Cape-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

A 2xx is an answer. A 4xx other than 408/429 is a final refusal. A 5xx, 408, 429, timeout or
connection error is retried with exponential backoff; after the last attempt there is no clear
answer (the receiver may have acted), which the caller decides how to treat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

SIGNATURE_HEADER = "Cape-Signature"
TIMESTAMP_HEADER = "Cape-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRYABLE_STATUS = {408, 429}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, *, timestamp: str, body: bytes, signature: str, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the signature and refuse stale timestamps (replays)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature)


@dataclass(frozen=True)
class Answer:
    """How a signed POST ended: answered (2xx, with its JSON object), refused, or no clear answer."""

    answered: bool
    refused: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class SignedWebhook:
    url: str
    secret: str
    timeout_s: float = 10.0
    attempts: int = 5
    backoff_s: float = 1.0
    user_agent: str = "Cape/1"

    def post(self, payload: dict[str, Any], *, idempotency_key: str) -> Answer:
        """POST ``payload``, retrying what may be passing; never raises for HTTP trouble."""
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        error = "not attempted"
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            for attempt in range(1, self.attempts + 1):
                if attempt > 1:
                    time.sleep(self.backoff_s * 2 ** (attempt - 2))
                timestamp = int(time.time())
                headers = {
                    "Content-Type": "application/json",
                    IDEMPOTENCY_HEADER: idempotency_key,
                    TIMESTAMP_HEADER: str(timestamp),
                    SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                    "User-Agent": self.user_agent,
                }
                try:
                    response = client.post(self.url, content=body, headers=headers)
                except httpx.TimeoutException:
                    error = f"timed out after {self.timeout_s:g} s"
                    continue
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    continue
                if response.is_success:
                    return Answer(answered=True, body=_json_object(response), attempts=attempt)
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE_STATUS:
                    return Answer(answered=False, refused=True, error=error, attempts=attempt)
        return Answer(
            answered=False, error=f"gave up after {self.attempts} attempts; last: {error}", attempts=self.attempts
        )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
