"""The store webhook: a signed JSON POST to the store (``cape.kit.webhooks``), retried,
idempotent on the action id (the ``Idempotency-Key``).

The store answers 2xx with an optional JSON body ``{"status": "done"|"failed", "reference": ...,
"error": ...}`` (no status means done). A 4xx other than 408/429, or ``"status": "failed"``, is
a final refusal. A 5xx, 408, 429, timeout or connection error is retried with exponential
backoff; after the last attempt the outcome is not final (the store may have done it), so the
action stays queued and is delivered again later with the same key.
"""

from __future__ import annotations

from typing import Any

from cape.actions.connectors.base import Connector, Outcome
from cape.kit.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Answer,
    SignedWebhook,
    sign,
    verify,
)

__all__ = ["IDEMPOTENCY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookConnector", "sign", "verify"]


class WebhookConnector(Connector):
    name = "webhook"
    deferred = True

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0, attempts: int = 5, backoff_s: float = 1.0):
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._webhook = SignedWebhook(
            url, secret, timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s, user_agent="Cape-Actions/1"
        )

    def deliver(self, payload: dict[str, Any], *, idempotency_key: str) -> Outcome:
        return _outcome_from(self._webhook.post(payload, idempotency_key=idempotency_key))


def _outcome_from(answer: Answer) -> Outcome:
    if not answer.answered:
        # A refusal is final; no clear answer is not (the store may have carried it out).
        return Outcome(done=False, error=answer.error, attempts=answer.attempts, final=answer.refused)
    reference = answer.body.get("reference")
    reference = str(reference)[:200] if reference is not None else None
    if answer.body.get("status", "done") == "failed":
        error = str(answer.body.get("error") or "refused by the store")
        return Outcome(done=False, reference=reference, error=error, attempts=answer.attempts)
    return Outcome(done=True, reference=reference, attempts=answer.attempts)
