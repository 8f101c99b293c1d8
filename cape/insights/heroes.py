"""Hero moments: a customer thanked an agent (or a survey praised them), kept with what was done."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cape import events
from cape.actions import service as actions_service
from cape.kit.errors import Forbidden, InvalidInput
from cape.models import Action, ActionStatus, Activity, Conversation, HeroMoment, Message, User

SOURCES = ("customer_message", "survey", "manual")


def record_hero_moment(
    session: Session,
    *,
    conversation: Conversation,
    user: User,
    quote: str,
    source: str = "customer_message",
    message_id: int | None = None,
    recorded_by: User | None = None,
) -> HeroMoment:
    """A customer thanked ``user`` (or a survey praised them): keep the moment with what was done."""
    quote = (quote or "").strip()
    if not quote:
        raise InvalidInput("quote", "what did the customer say?")
    if source not in SOURCES:
        raise InvalidInput("source", "customer_message, survey or manual")
    if message_id is not None:
        message = session.get(Message, message_id)
        if message is None or message.conversation_id != conversation.id:
            raise InvalidInput("message_id", f"message {message_id} is not in conversation {conversation.id}")
    if recorded_by is not None and recorded_by.id == user.id:
        raise Forbidden("praise is recorded by a colleague, not by the person praised")
    action_ids = session.scalars(
        select(Action.id)
        .where(Action.conversation_id == conversation.id, Action.status == ActionStatus.executed)
        .order_by(Action.id)
    ).all()
    moment = HeroMoment(
        user_id=user.id,
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        message_id=message_id,
        source=source,
        quote=quote[:5000],
        action_ids=list(action_ids),
        recorded_by_id=recorded_by.id if recorded_by else None,
    )
    session.add(moment)
    session.flush()
    session.add(
        Activity(
            customer_id=conversation.customer_id, conversation_id=conversation.id,
            actor_user_id=recorded_by.id if recorded_by else None, kind="hero_moment",
            data={"hero_moment_id": moment.id, "user_id": user.id, "user_name": user.name},
        )
    )  # fmt: skip
    events.emit(session, "hero_moment.recorded", hero_moment_id=moment.id, user_id=user.id)
    return moment


def hero_feed(
    session: Session, *, limit: int = 50, moment_id: int | None = None
) -> list[tuple[HeroMoment, list[Action]]]:
    """The team feed: newest hero moments with the actions that made them."""
    query = select(HeroMoment).options(selectinload(HeroMoment.user), selectinload(HeroMoment.customer))
    if moment_id is not None:
        query = query.where(HeroMoment.id == moment_id)
    moments = session.scalars(query.order_by(HeroMoment.created_at.desc(), HeroMoment.id.desc()).limit(limit)).all()
    actions = actions_service.get_actions(session, action_ids=(i for m in moments for i in m.action_ids))
    return [(m, [actions[i] for i in m.action_ids if i in actions]) for m in moments]
