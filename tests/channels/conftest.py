from __future__ import annotations

import pytest

from cape import jobs


@pytest.fixture
def job_sessions(session_factory, settings):
    """Background jobs run inline on the test's own connection, so they see its data."""
    jobs.configure(session_factory, settings)
    yield
    jobs._runtime.clear()
