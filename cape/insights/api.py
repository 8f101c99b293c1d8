"""Insights API: record a hero moment on a conversation, read the team's hero feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cape.actions.schemas import ActionOut
from cape.auth import service as auth_service
from cape.auth.deps import CurrentUser, DbSession
from cape.conversations import service as conversations_service
from cape.insights import heroes
from cape.insights.schemas import HeroMomentIn, HeroMomentOut
from cape.kit.validation import IdPath

router = APIRouter(prefix="/api/v1", tags=["insights"])


@router.post("/conversations/{conversation_id}/hero-moments", response_model=HeroMomentOut, status_code=201)
def record_hero_moment(conversation_id: IdPath, body: HeroMomentIn, session: DbSession, user: CurrentUser):
    conversation = conversations_service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    hero = auth_service.get_user(session, user_id=body.user_id)
    moment = heroes.record_hero_moment(
        session, conversation=conversation, user=hero, quote=body.quote, source=body.source,
        message_id=body.message_id, recorded_by=user,
    )  # fmt: skip
    [(saved, actions)] = heroes.hero_feed(session, moment_id=moment.id)
    return _hero_out(saved, actions)


@router.get("/hero-moments", response_model=list[HeroMomentOut])
def hero_moments(session: DbSession, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50):
    return [_hero_out(m, a) for m, a in heroes.hero_feed(session, limit=limit)]


def _hero_out(moment, actions) -> HeroMomentOut:
    return HeroMomentOut(
        id=moment.id, user=moment.user, customer=moment.customer, conversation_id=moment.conversation_id,
        message_id=moment.message_id, source=moment.source, quote=moment.quote, created_at=moment.created_at,
        actions=[ActionOut.model_validate(a) for a in actions],
    )  # fmt: skip
