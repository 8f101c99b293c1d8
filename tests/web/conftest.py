from tests.fixtures.browser import browser, live_server, page  # noqa: F401 - fixtures
