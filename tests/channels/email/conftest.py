from __future__ import annotations

import pytest

from cape import jobs
from cape.channels.email.service import create_email_channel


@pytest.fixture
def email_channel(db, settings):
    channel = create_email_channel(db, address="support@example.com", app_secret=settings.resolved_secret_key)
    db.commit()
    return channel


@pytest.fixture
def job_sessions(session_factory, settings):
    """Background jobs run inline on the test's own connection, so they see its data."""
    jobs.configure(session_factory, settings)
    yield
    jobs._runtime.clear()
