from __future__ import annotations

import pytest

from cape.channels.email.service import create_email_channel


@pytest.fixture
def email_channel(db, settings):
    channel = create_email_channel(db, address="support@example.com", app_secret=settings.resolved_secret_key)
    db.commit()
    return channel
