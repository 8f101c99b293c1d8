"""Settings: the one place that reads the environment (prefix ``CAPE_``)."""

from __future__ import annotations

import os
import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import is_currency
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SUPPORTED_LANGUAGES = ("en", "fr", "da")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAPE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""
    secret_key: SecretStr = SecretStr("")
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = ""
    environment: Literal["development", "production", "test"] = "development"
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    redis_url: str = ""
    jobs_backend: Literal["sqlite", "redis", "immediate"] = "sqlite"
    # The job queue's name in its storage: processes that share a name share their jobs, so two
    # installations (or two test runs) on one Redis keep apart by naming their queues apart. Only
    # letters, digits and "_": Huey drops any other character, so "a-b" would be the queue "ab".
    jobs_queue: str = Field(default="cape", pattern=r"^[A-Za-z0-9_]{1,100}$")

    @property
    def realtime_channel(self) -> str:
        """The Redis pub/sub channel of this installation's realtime events (one per queue name)."""
        return f"{self.jobs_queue}.realtime"

    default_language: str = "en"
    # The time zone pages show times in before the browser shows them in the viewer's own.
    time_zone: str = "UTC"
    # The currency an action is offered in when neither the chosen order nor the customer's
    # last order says which (an ISO 4217 code).
    default_currency: str = "USD"
    session_max_age_s: int = 14 * 24 * 3600
    cookie_secure: bool = False
    # Proxies whose X-Forwarded-For gives the client's address (rate limits count by it): a
    # comma-separated list of addresses or networks, "*" for any. Only the local host by default.
    forwarded_allow_ips: str = "127.0.0.1"
    inbound_max_body_chars: int = Field(default=200_000, ge=1)
    smtp_port: int | None = None
    # How resolution actions are carried out: the built-in ledger, or the store's webhook.
    actions_connector: Literal["ledger", "webhook"] = "ledger"
    actions_webhook_url: str = ""
    actions_webhook_secret: SecretStr = SecretStr("")
    actions_webhook_timeout_s: float = Field(default=10.0, gt=0)
    actions_webhook_attempts: int = Field(default=5, ge=1)
    actions_webhook_backoff_s: float = Field(default=1.0, ge=0)
    # A deferred delivery still queued this long after the action was lost with its worker (or got
    # no clear answer): the periodic re-delivery sends it again, with the same idempotency key.
    actions_redeliver_after_s: float = Field(default=600.0, ge=0)
    smtp_host: str = "127.0.0.1"
    # Email: attachments larger than this stay only in the stored raw message.
    email_max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=0)
    email_max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # The relay for outbound mail of channels that configure none of their own.
    smtp_relay_host: str = ""
    smtp_relay_port: int = 587
    smtp_relay_user: str = ""
    smtp_relay_password: SecretStr = SecretStr("")
    smtp_relay_starttls: bool = True  # required: a relay that does not offer it is not sent anything
    smtp_relay_ssl: bool = False  # implicit TLS (port 465) instead of STARTTLS
    # Trust only this CA for the relay (a private server); empty: the system's CAs.
    smtp_relay_ca_file: str = ""
    # Turning this off lets anyone in the middle read the mail; it is logged as a warning at start.
    smtp_relay_verify_tls: bool = True
    email_poll_interval_s: int = Field(default=60, ge=5)
    # The wait before retrying a reply after a temporary failure, doubled at each further attempt.
    email_retry_backoff_s: float = Field(default=30.0, ge=0)

    @cached_property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL, defaulting to a SQLite file in the data directory."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'cape.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @cached_property
    def resolved_secret_key(self) -> str:
        """The app secret; a random one is created once and kept in the data directory."""
        if self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Created exclusively, readable by the owner only: several processes starting at
            # once must all end up with the one key that won.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # another process may be between creating and writing it
                key = path.read_text().strip()
                if key:
                    return key
                time.sleep(0.05)
            raise RuntimeError(f"{path} is empty") from None
        key = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)") from exc
        return value

    @field_validator("default_currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.strip().upper()
        if len(code) != 3 or not is_currency(code):
            raise ValueError(f"unknown currency {value!r} (use an ISO 4217 code such as EUR)")
        return code

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
