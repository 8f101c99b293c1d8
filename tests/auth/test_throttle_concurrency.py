"""Parallel password guesses against a real server cannot outrun the sign-in limit."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from cape.auth.throttle import SIGN_IN_BY_EMAIL_AND_ADDRESS
from cape.db import create_session_factory
from tests.fixtures.browser import start_server
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_user


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_parallel_guesses_are_each_counted_before_any_password_is_checked(database, tmp_path):
    with fresh_database(database, tmp_path) as (settings, engine):
        with create_session_factory(engine)() as session:
            make_user(session, email="target@example.test")
            session.commit()
        server, thread, url = start_server(settings)
        try:

            def guess(n: int) -> int:
                with httpx.Client(base_url=url, timeout=30) as client:
                    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
                    data = {"email": "target@example.test", "password": f"guess-{n}", "csrf_token": token}
                    return client.post("/login", data=data).status_code

            with ThreadPoolExecutor(max_workers=16) as pool:
                statuses = list(pool.map(guess, range(24)))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert statuses.count(401) == SIGN_IN_BY_EMAIL_AND_ADDRESS.max_hits  # passwords checked: no more
    assert statuses.count(429) == 24 - SIGN_IN_BY_EMAIL_AND_ADDRESS.max_hits
