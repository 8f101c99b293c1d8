"""Actions API: take actions, decide requests, reverse, audit export, authority, review, hero moments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from cape.actions import service
from cape.actions.policy import Authority
from cape.actions.schemas import (
    ActionIn,
    ActionOut,
    AuthorityIn,
    AuthorityOut,
    DecisionIn,
    HeroMomentIn,
    HeroMomentOut,
    ReverseIn,
    ReviewOut,
)
from cape.auth import service as auth_service
from cape.auth.deps import Admin, CurrentUser, DbSession, Supervisor
from cape.conversations import service as conversations_service
from cape.db import unit_of_work
from cape.kit.clock import utcnow
from cape.kit.validation import MAX_ID, IdPath
from cape.models import ActionStatus, ActionType, Role

router = APIRouter(prefix="/api/v1", tags=["actions"])


@router.post("/conversations/{conversation_id}/actions", response_model=ActionOut, status_code=201)
def take_action(conversation_id: IdPath, body: ActionIn, session: DbSession, user: CurrentUser):
    """Executed at once within the agent's authority ("executed"), else a request ("pending_approval")."""
    conversation = conversations_service.get_conversation(session, conversation_id, with_messages=False)
    action = service.take_action(
        session, conversation=conversation, actor=user, action_type=ActionType(body.type), amount=body.amount,
        currency=body.currency, reason=body.reason, note=body.note, order_id=body.order_id,
        items=[i.model_dump(exclude_none=True) for i in body.items], details=body.details,
    )  # fmt: skip
    return service.get_action(session, action.id)


@router.get("/actions", response_model=list[ActionOut])
def list_actions(
    session: DbSession,
    user: CurrentUser,
    status: ActionStatus | None = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    conversation_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
):
    return service.list_actions(
        session, status=status, customer_id=customer_id, conversation_id=conversation_id, limit=limit
    )


@router.get("/actions/review", response_model=ReviewOut)
def review(session: DbSession, user: Supervisor, days: Annotated[int, Query(ge=1, le=366)] = 30):
    result = service.review(session, since=utcnow() - timedelta(days=days))
    return ReviewOut(
        **{k: getattr(result, k) for k in ("since", "resolved_conversations", "actions_on_resolved")},
        by_agent=[vars(r) for r in result.by_agent],
        by_type=[vars(r) for r in result.by_type],
        by_reason=[vars(r) for r in result.by_reason],
        actions_per_resolved_conversation=result.actions_per_resolved_conversation,
    )


@router.get("/actions/{action_id}", response_model=ActionOut)
def get_action(action_id: IdPath, session: DbSession, user: CurrentUser):
    return service.get_action(session, action_id)


@router.post("/actions/{action_id}/approve", response_model=ActionOut)
def approve(action_id: IdPath, session: DbSession, user: Supervisor, body: DecisionIn | None = None):
    action = service.get_action(session, action_id)
    service.approve_action(session, action=action, actor=user, note=body.note if body else None)
    return service.get_action(session, action_id)


@router.post("/actions/{action_id}/decline", response_model=ActionOut)
def decline(action_id: IdPath, session: DbSession, user: Supervisor, body: DecisionIn | None = None):
    action = service.get_action(session, action_id)
    service.decline_action(session, action=action, actor=user, note=body.note if body else None)
    return service.get_action(session, action_id)


@router.post("/actions/{action_id}/reverse", response_model=ActionOut, status_code=201)
def reverse(action_id: IdPath, body: ReverseIn, session: DbSession, user: CurrentUser):
    """A counter-action that undoes an executed one; the original is kept."""
    action = service.get_action(session, action_id)
    counter_action = service.reverse_action(session, action=action, actor=user, reason=body.reason)
    return service.get_action(session, counter_action.id)


@router.get("/audit.csv")
def audit_csv(request: Request, user: Supervisor):
    """The append-only audit log of actions, decisions, failures and authority changes."""
    return _csv_response(request, service.audit_csv, "cape-audit.csv")


@router.get("/ledger.csv")
def ledger_csv(request: Request, user: Supervisor):
    """The built-in connector's ledger (refunds, credits, codes, gestures) for finance."""
    return _csv_response(request, service.ledger_csv, "cape-ledger.csv")


def _csv_response(request: Request, export: Callable[[Session], Iterator[str]], filename: str) -> StreamingResponse:
    """Stream an export as it is read, in a read-only session of its own (the request's closes before
    the body is sent), one short transaction per chunk: a slow download keeps none open."""
    session_factory = request.app.state.session_factory

    def chunks() -> Iterator[str]:
        with unit_of_work(session_factory, read_only=True) as session:
            for chunk in export(session):
                session.commit()
                yield chunk

    return StreamingResponse(
        chunks(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )  # fmt: skip


def _authority_out(authority: Authority, **who) -> AuthorityOut:
    return AuthorityOut(
        **who, source=authority.source, currency=authority.currency,
        per_action={t.value: authority.per_action_limit(t) for t in ActionType},
        per_customer_30d=authority.per_customer_30d, daily_budget=authority.daily_budget,
    )  # fmt: skip


@router.get("/authority/me", response_model=AuthorityOut)
def my_authority(session: DbSession, user: CurrentUser):
    return _authority_out(service.authority_for(session, user), user_id=user.id)


@router.get("/users/{user_id}/authority", response_model=AuthorityOut)
def get_user_authority(user_id: IdPath, session: DbSession, admin: Admin):
    user = auth_service.get_user(session, user_id)
    return _authority_out(service.authority_for(session, user), user_id=user.id)


@router.put("/users/{user_id}/authority", response_model=AuthorityOut)
def put_user_authority(user_id: IdPath, body: AuthorityIn, session: DbSession, admin: Admin):
    user = auth_service.get_user(session, user_id)
    service.set_authority(session, actor=admin, user=user, **body.model_dump())
    return _authority_out(service.authority_for(session, user), user_id=user.id)


@router.get("/roles/{role}/authority", response_model=AuthorityOut)
def get_role_authority(role: Role, session: DbSession, admin: Admin):
    return _authority_out(service.role_authority(session, role), role=role)


@router.put("/roles/{role}/authority", response_model=AuthorityOut)
def put_role_authority(role: Role, body: AuthorityIn, session: DbSession, admin: Admin):
    service.set_authority(session, actor=admin, role=role, **body.model_dump())
    return _authority_out(service.role_authority(session, role), role=role)


@router.post("/conversations/{conversation_id}/hero-moments", response_model=HeroMomentOut, status_code=201)
def record_hero_moment(conversation_id: IdPath, body: HeroMomentIn, session: DbSession, user: CurrentUser):
    conversation = conversations_service.get_conversation(session, conversation_id, with_messages=False)
    hero = auth_service.get_user(session, body.user_id)
    moment = service.record_hero_moment(
        session, conversation=conversation, user=hero, quote=body.quote, source=body.source,
        message_id=body.message_id, recorded_by=user,
    )  # fmt: skip
    [(saved, actions)] = service.hero_feed(session, moment_id=moment.id)
    return _hero_out(saved, actions)


@router.get("/hero-moments", response_model=list[HeroMomentOut])
def hero_moments(session: DbSession, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50):
    return [_hero_out(m, a) for m, a in service.hero_feed(session, limit=limit)]


def _hero_out(moment, actions) -> HeroMomentOut:
    return HeroMomentOut(
        id=moment.id, user=moment.user, customer=moment.customer, conversation_id=moment.conversation_id,
        message_id=moment.message_id, source=moment.source, quote=moment.quote, created_at=moment.created_at,
        actions=[ActionOut.model_validate(a) for a in actions],
    )  # fmt: skip
