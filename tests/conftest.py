"""Shared fixtures: real SQLite and PostgreSQL, one rolled-back transaction per test, named users."""

from __future__ import annotations

import os

# Jobs run inline in tests unless a test starts a real worker; set before cape is imported.
os.environ.setdefault("CAPE_JOBS_BACKEND", "immediate")

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from cape.app import create_app
from cape.models import Role, User
from tests.fixtures.databases import fresh_database
from tests.fixtures.factories import make_token, make_user

DATABASES = ["sqlite", "postgresql"]

# Fixtures shared across folders.
pytest_plugins = ["tests.fixtures.stores"]


def pytest_sessionstart(session):
    # Fail fast and clearly when the PostgreSQL server is not there.
    import psycopg

    from tests.fixtures.databases import POSTGRES_ADMIN_DSN

    try:
        psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        raise pytest.UsageError(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN} ({exc}); start it, or run `make test`"
        ) from exc


@pytest.fixture(scope="session", params=DATABASES)
def database(request, tmp_path_factory):
    """(settings, engine) for a fresh migrated database; every database test runs on both."""
    with fresh_database(request.param, tmp_path_factory.mktemp(request.param)) as pair:
        yield pair


@pytest.fixture
def settings(database):
    return database[0]


@pytest.fixture
def connection(database):
    engine = database[1]
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def session_factory(connection) -> sessionmaker[Session]:
    # Sessions join the test's outer transaction; their commits become savepoints.
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def db(session_factory) -> Iterator[Session]:
    session = session_factory()
    yield session
    session.close()


@pytest.fixture
def app(settings, session_factory):
    application = create_app(settings)
    application.state.session_factory = session_factory
    return application


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@dataclass
class Actor:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _actor(db: Session, role: Role, name: str, *, active: bool = True) -> Actor:
    user = make_user(db, role=role, name=name, email=f"{name.lower().replace(' ', '.')}@example.test")
    token = make_token(db, user)
    user.is_active = active
    db.commit()
    return Actor(user, token)


@pytest.fixture
def alice_agent(db) -> Actor:
    return _actor(db, Role.agent, "Alice Agent")


@pytest.fixture
def bob_supervisor(db) -> Actor:
    return _actor(db, Role.supervisor, "Bob Supervisor")


@pytest.fixture
def carol_admin(db) -> Actor:
    return _actor(db, Role.admin, "Carol Admin")


@pytest.fixture
def dave_outsider(db) -> Actor:
    """A former colleague: the account is deactivated, the old token must no longer work."""
    return _actor(db, Role.agent, "Dave Outsider", active=False)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
