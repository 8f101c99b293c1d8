"""Structured request logs that never carry secrets."""

from __future__ import annotations

import logging
import re

from cape.logs import _redact


def test_requests_are_logged_without_credentials(client, alice_agent, caplog):
    caplog.set_level(logging.INFO)
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"email": alice_agent.user.email, "password": "correct horse battery",
                                "csrf_token": token})  # fmt: skip
    client.get("/api/v1/users", headers=alice_agent.headers)
    lines = [r for r in caplog.records if r.name == "cape.http"]
    assert {(r.method, r.path, r.status) for r in lines} >= {("POST", "/login", 303), ("GET", "/api/v1/users", 200)}
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "correct horse battery" not in everything
    assert alice_agent.token not in everything
    assert token not in everything


def test_secret_looking_fields_are_redacted():
    event = _redact(None, "info", {"event": "x", "imap_password": "hunter2", "api_token": "cape_x", "user": "u"})
    assert event == {"event": "x", "imap_password": "[redacted]", "api_token": "[redacted]", "user": "u"}


def test_tracebacks_never_print_local_variables(alice_agent):
    import io

    import pytest

    from cape.logs import configure_logging

    for fmt in ("console", "json"):
        out = io.StringIO()
        configure_logging("INFO", fmt, stream=out)
        try:

            def handler(authorization=f"Bearer {alice_agent.token}"):
                raise RuntimeError("boom")

            with pytest.raises(RuntimeError):
                try:
                    handler()
                except RuntimeError:
                    logging.getLogger("cape.http").exception("unhandled error")
                    raise
        finally:
            logging.getLogger().handlers.clear()
        text = out.getvalue()
        assert "RuntimeError: boom" in text or "RuntimeError" in text
        assert alice_agent.token not in text, fmt
