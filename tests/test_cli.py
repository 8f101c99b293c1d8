"""The `cape` command, run for real in a subprocess against real databases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from cape.app import create_app
from cape.models import (
    Action,
    ActionStatus,
    Activity,
    Base,
    Channel,
    ChannelKind,
    Conversation,
    ConversationStatus,
    Customer,
    DeliveryStatus,
    HeroMoment,
    MessageDirection,
    Priority,
)
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
    """Rows in every table."""
    with engine.connect() as conn:
        return {
            name: conn.scalar(select(func.count()).select_from(table)) for name, table in Base.metadata.tables.items()
        }


@pytest.mark.slow
def test_demo_seeds_a_month_of_the_shop_once(fresh):
    settings, engine = fresh
    first = cape(settings, "demo", "--no-serve")
    assert first.returncode == 0, first.stderr
    assert "admin@example.com" in first.stdout and "password" in first.stdout
    seeded = counts(engine)
    assert seeded["users"] == 4 and seeded["customers"] >= 25 and seeded["orders"] >= 20
    assert 40 <= seeded["conversations"] <= 60 and seeded["messages"] >= 100
    again = cape(settings, "demo", "--no-serve")
    assert again.returncode == 0, again.stderr
    assert counts(engine) == seeded  # nothing twice: no message, raw source, activity, action or audit entry

    now = datetime.now(UTC)
    with Session(engine) as session:
        customers = session.scalars(select(Customer).options(selectinload(Customer.orders))).all()
        conversations = session.scalars(
            select(Conversation).options(selectinload(Conversation.messages), selectinload(Conversation.channel),
                                         selectinload(Conversation.tags), selectinload(Conversation.assignee))
        ).all()  # fmt: skip
        messages = [m for c in conversations for m in c.messages]
        activities = session.scalars(select(Activity)).all()
        actions = session.scalars(select(Action)).all()
        heroes = session.scalars(select(HeroMoment).options(selectinload(HeroMoment.user))).all()
        mailbox = session.scalar(select(Channel).where(Channel.is_default_outbound.is_(True)))

        # Customers in three languages, most with orders, many writing more than once; email, contact form, chat.
        assert {c.language for c in customers} == {"en", "fr", "da"}
        assert sum(1 for c in customers if c.orders) >= len(customers) * 3 // 4
        assert sum(1 for n in Counter(c.customer_id for c in conversations).values() if n > 1) >= 5
        assert {c.channel.kind for c in conversations} == {ChannelKind.email, ChannelKind.web, ChannelKind.chat}
        assert mailbox.address == "support@example.com"

        # A month of history, never in the future, at many different hours of many different days.
        assert min(c.created_at for c in conversations) < now - timedelta(days=25)
        assert max(c.last_activity_at for c in conversations) > now - timedelta(days=1)
        assert all(m.created_at <= now for m in messages) and all(a.created_at <= now for a in activities)
        inbound = [m for m in messages if m.direction is MessageDirection.inbound]
        assert len({m.created_at.date() for m in inbound}) >= 15 and len({m.created_at.hour for m in inbound}) >= 8

        # Every conversation's times agree with its messages.
        for conversation in conversations:
            thread = [m for m in conversation.messages if m.direction is not MessageDirection.note]
            replies = [m for m in thread if m.direction is MessageDirection.outbound]
            last_reply = max((i for i, m in enumerate(thread) if m.direction is MessageDirection.outbound), default=-1)
            unanswered = [m for m in thread[last_reply + 1 :] if m.direction is MessageDirection.inbound]
            assert conversation.last_activity_at >= max(m.created_at for m in conversation.messages)
            assert conversation.first_response_at == (replies[0].created_at if replies else None)
            assert conversation.waiting_since == (unanswered[0].created_at if unanswered else None)
            assert (conversation.resolved_at is not None) == (conversation.status is ConversationStatus.resolved)
        # Replies of the past went out from the mailbox, threaded; in the chat, the visitor saw them.
        chat = session.scalar(select(Channel).where(Channel.key == "chat:demo"))
        assert chat.name == "Website chat"
        replies = [m for m in messages if m.direction is MessageDirection.outbound and m.channel_id != chat.id]
        assert replies and all(m.delivery_status is DeliveryStatus.sent for m in replies)
        assert all(m.channel_id == mailbox.id and m.external_id for m in replies)
        chatted = [c for c in conversations if c.channel_id == chat.id]
        assert len(chatted) == 2 and all(c.customer_id in {x.customer_id for x in conversations if x.channel_id
                                                          != chat.id} for c in chatted)  # fmt: skip
        chat_replies = [m for c in chatted for m in c.messages if m.direction is MessageDirection.outbound]
        assert chat_replies and all(m.delivery_status is DeliveryStatus.delivered for m in chat_replies)

        # Many resolved, some reopened; open work in the inbox, pending and snoozed ones, an urgent one.
        by_status = Counter(c.status for c in conversations)
        assert by_status[ConversationStatus.resolved] >= 20 and by_status[ConversationStatus.pending] >= 1
        assert sum(1 for c in conversations if c.status is ConversationStatus.open and c.waiting_since) >= 5
        assert any(c.status is ConversationStatus.snoozed and c.snoozed_until > now for c in conversations)
        assert any(c.priority is Priority.urgent and c.status is ConversationStatus.open for c in conversations)
        assert any(a.kind == "status_changed" and a.data.get("old") == "resolved" and a.data.get("new") == "open"
                   for a in activities)  # fmt: skip
        assert {c.assignee.email for c in conversations if c.assignee} >= {
            "amelie@example.com", "mads@example.com", "sam@example.com"}  # fmt: skip
        assert len({t.tag for c in conversations for t in c.tags}) >= 5

        # Actions within authority, and above it: one approved, one declined, requests still waiting.
        assert sum(1 for a in actions if a.within_authority and a.status is ActionStatus.executed) >= 5
        assert any(a.status is ActionStatus.executed and a.decided_by_id and a.over_authority for a in actions)
        assert any(a.status is ActionStatus.declined and a.decided_by_id for a in actions)
        assert any(a.status is ActionStatus.pending_approval for a in actions)

        # Hero moments for each agent the customers thanked, with what was done.
        assert {h.user.name for h in heroes} == {"Amélie Agent", "Mads Agent", "Sam Supervisor"}
        assert any(h.action_ids for h in heroes) and any(h.source == "manual" for h in heroes)

        # The snow tyres, from a customer who never bought anything here, still waiting for someone to decide.
        tyres = next(c for c in conversations if "snow tyres" in (c.subject or "").lower())
        assert tyres.status is ConversationStatus.open and tyres.waiting_since is not None
        assert next(c for c in customers if c.id == tyres.customer_id).orders == []


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


def test_add_chat_prints_the_script_tag_and_a_secret_that_verifies(fresh):
    from cape.channels.chat.service import identity_hash, identity_secret

    settings, engine = fresh
    added = cape(settings, "channels", "add-chat", "--name", "Shop chat", "--slug", "shop")
    assert added.returncode == 0, added.stderr
    assert 'data-channel="chat:shop"' in added.stdout and "/widget.js" in added.stdout
    secret = added.stdout.rsplit(": ", 1)[1].strip()
    with Session(engine) as session:
        channel = session.scalar(select(Channel).where(Channel.key == "chat:shop"))
        assert channel.kind is ChannelKind.chat and channel.name == "Shop chat"
        assert secret not in (channel.secrets_encrypted or "")  # stored encrypted
        stored = identity_secret(channel, settings.resolved_secret_key)
        assert identity_hash(stored, "a@example.org") == identity_hash(secret, "a@example.org")
    twice = cape(settings, "channels", "add-chat", "--name", "Shop chat", "--slug", "shop")
    assert twice.returncode == 1 and "exists already" in twice.stderr
