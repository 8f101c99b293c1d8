"""The store webhook: a signed JSON POST to the store, retried, idempotent on the action id.

Headers sent with every attempt (the same body, key and a fresh timestamp):
    Content-Type: application/json
    Idempotency-Key: <action id>
    Cape-Timestamp: <unix seconds>
    Cape-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The store answers 2xx with an optional JSON body ``{"status": "done"|"failed", "reference": ...,
"error": ...}`` (no status means done). A 4xx other than 408/429, or ``"status": "failed"``, is
a final refusal. A 5xx, 408, 429, timeout or connection error is retried with exponential
backoff; after the last attempt the outcome is not final (the store may have done it), so the
action stays queued and is delivered again later with the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from cape.actions.connectors.base import Connector, Outcome

SIGNATURE_HEADER = "Cape-Signature"
TIMESTAMP_HEADER = "Cape-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRYABLE_STATUS = {408, 429}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, *, timestamp: str, body: bytes, signature: str, tolerance_s: int = 300) -> bool:
    """What a receiving store does: check the signature and refuse stale timestamps (replays)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), signature)


class WebhookConnector(Connector):
    name = "webhook"
    deferred = True

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0, attempts: int = 5, backoff_s: float = 1.0):
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s

    def deliver(self, payload: dict[str, Any], *, idempotency_key: str) -> Outcome:
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
                    "User-Agent": "Cape-Actions/1",
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
                    return _outcome_from(response, attempt)
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE_STATUS:
                    return Outcome(done=False, error=error, attempts=attempt)
        # No clear answer: the store may have carried it out, so this is not a refusal.
        return Outcome(
            done=False,
            error=f"gave up after {self.attempts} attempts; last: {error}",
            attempts=self.attempts,
            final=False,
        )


def _outcome_from(response: httpx.Response, attempt: int) -> Outcome:
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    reference = answer.get("reference")
    reference = str(reference)[:200] if reference is not None else None
    if answer.get("status", "done") == "failed":
        return Outcome(
            done=False, reference=reference, error=str(answer.get("error") or "refused by the store"), attempts=attempt
        )
    return Outcome(done=True, reference=reference, attempts=attempt)
