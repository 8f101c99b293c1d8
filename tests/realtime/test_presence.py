"""Presence: online or away as the agent says, offline when their workspace was not seen lately."""

from __future__ import annotations

from cape.kit.clock import clock_set_to, utcnow
from cape.models import PresenceStatus
from cape.realtime import presence
from tests.fixtures.factories import make_user


def test_an_agent_is_offline_until_seen_away_when_they_say_and_offline_again_when_gone(db):
    sam = make_user(db, email="sam@example.org", name="Sam")
    assert presence.presence_of(sam) == "offline" and presence.available_agents(db) == 0
    presence.touch(db, user_id=sam.id)
    db.commit()
    db.refresh(sam)
    assert presence.presence_of(sam) == "online" and presence.available_agents(db) == 1
    presence.touch(db, user_id=sam.id, status=PresenceStatus.away)
    db.commit()
    db.refresh(sam)
    assert presence.presence_of(sam) == "away" and presence.available_agents(db) == 0
    presence.touch(db, user_id=sam.id, status=PresenceStatus.online)
    db.commit()
    with clock_set_to(utcnow() + presence.SEEN_FOR * 2):
        db.refresh(sam)
        assert presence.presence_of(sam) == "offline" and presence.available_agents(db) == 0
