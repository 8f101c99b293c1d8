"""Connectors carry out executed actions: the built-in ledger (default) or the store's webhook."""

from __future__ import annotations

from cape.actions.connectors.base import Connector, Outcome, action_payload
from cape.actions.connectors.ledger import LedgerConnector
from cape.actions.connectors.webhook import WebhookConnector
from cape.config import Settings

__all__ = ["Connector", "LedgerConnector", "Outcome", "WebhookConnector", "action_payload", "active", "configure"]

_runtime: dict[str, Connector] = {}


def build(settings: Settings) -> Connector:
    if settings.actions_connector == "webhook":
        if not settings.actions_webhook_url:
            raise ValueError("CAPE_ACTIONS_WEBHOOK_URL is required with CAPE_ACTIONS_CONNECTOR=webhook")
        return WebhookConnector(
            settings.actions_webhook_url,
            settings.actions_webhook_secret.get_secret_value(),
            timeout_s=settings.actions_webhook_timeout_s,
            attempts=settings.actions_webhook_attempts,
            backoff_s=settings.actions_webhook_backoff_s,
        )
    return LedgerConnector()


def configure(settings_or_connector: Settings | Connector) -> Connector:
    """Choose the connector for this process (called by the app and the worker)."""
    connector = settings_or_connector if isinstance(settings_or_connector, Connector) else build(settings_or_connector)
    _runtime["connector"] = connector
    return connector


def active() -> Connector:
    if "connector" not in _runtime:
        configure(Settings())
    return _runtime["connector"]
