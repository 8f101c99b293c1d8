"""The `cape` command, run for real in a subprocess against real databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cape.app import create_app
from cape.models import Conversation, Customer, Message, Order, User
from tests.fixtures.databases import fresh_database

CAPE = shutil.which("cape") or str(Path(sys.executable).parent / "cape")


def cape(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CAPE_DATABASE_URL": settings.database_url, "CAPE_DATA_DIR": str(settings.data_dir),
           "CAPE_SECRET_KEY": settings.secret_key.get_secret_value()}  # fmt: skip
    return subprocess.run([CAPE, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request, tmp_path):
    with fresh_database(request.param, tmp_path) as pair:
        yield pair


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            model.__tablename__: conn.scalar(select(func.count()).select_from(model))
            for model in (User, Customer, Conversation, Message, Order)
        }


@pytest.mark.slow
def test_demo_seeds_once_and_is_idempotent(fresh):
    settings, engine = fresh
    first = cape(settings, "demo", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert "admin@example.com" in first.stdout and "password" in first.stdout
    seeded = counts(engine)
    assert seeded["users"] == 4 and seeded["customers"] >= 5 and seeded["orders"] >= 4
    again = cape(settings, "demo", "--no-serve")
    assert again.returncode == 0, again.stderr
    assert counts(engine) == seeded


def test_users_and_tokens_from_the_command_line(fresh):
    settings, _ = fresh
    created = cape(settings, "users", "create", "--email", "Ops@Example.com", "--name", "Ops", "--role", "admin",
                   "--password", "a-long-password")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "ops@example.com" in created.stdout
    duplicate = cape(settings, "users", "create", "--email", "ops@example.com", "--name", "Ops")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    bad_role = cape(settings, "users", "create", "--email", "x@example.com", "--name", "X", "--role", "boss")
    assert bad_role.returncode == 2

    token = cape(settings, "token", "create", "--email", "ops@example.com")
    assert token.returncode == 0, token.stderr
    plain = token.stdout.strip()
    assert plain.startswith("cape_")
    with TestClient(create_app(settings)) as client:
        me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {plain}"})
    assert me.status_code == 200 and me.json()["role"] == "admin"

    unknown = cape(settings, "token", "create", "--email", "nobody@example.com")
    assert unknown.returncode == 1 and "no user" in unknown.stderr


def test_token_revoke_stops_a_leaked_token(fresh):
    settings, _ = fresh
    assert cape(settings, "users", "create", "--email", "ops@example.com", "--name", "Ops").returncode == 0
    plain = cape(settings, "token", "create", "--email", "ops@example.com").stdout.strip()
    revoked = cape(settings, "token", "revoke", "--email", "ops@example.com")
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 401
