"""Secrets at rest (channel credentials), encrypted with a key derived from the app secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet, InvalidToken


def _fernet(app_secret: str) -> Fernet:
    digest = hashlib.sha256(b"cape.secrets.v1:" + app_secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secrets(app_secret: str, values: dict[str, str]) -> str:
    """Encrypt a small dict of credentials for storage."""
    return _fernet(app_secret).encrypt(json.dumps(values).encode()).decode()


def decrypt_secrets(app_secret: str, token: str | None) -> dict[str, str]:
    """The credentials stored by ``encrypt_secrets``; ValueError when the app secret changed."""
    if not token:
        return {}
    try:
        return json.loads(_fernet(app_secret).decrypt(token.encode()))
    except InvalidToken as exc:
        raise ValueError("stored credentials cannot be decrypted with this app secret") from exc


def sign(app_secret: str, purpose: str, value: str, length: int = 10) -> str:
    """A short keyed signature of ``value``, safe to put in an address or URL."""
    mac = hmac.new(f"{purpose}:{app_secret}".encode(), value.encode(), hashlib.sha256).digest()
    return base64.b32encode(mac).decode().lower()[:length]
