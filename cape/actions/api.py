"""Actions API: take actions, decide requests, reverse, audit and ledger exports, authority, review."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from cape.actions import authority, exports, reporting, service
from cape.actions.policy import Authority
from cape.actions.schemas import (
    ActionIn,
    ActionOut,
    AuthorityIn,
    AuthorityOut,
    DecisionIn,
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
    conversation = conversations_service.get_conversation(session, conversation_id=conversation_id, with_messages=False)
    action = service.take_action(
        session, conversation=conversation, actor=user, action_type=ActionType(body.type), amount=body.amount,
        currency=body.currency, reason=body.reason, note=body.note, order_id=body.order_id,
        items=[i.model_dump(exclude_none=True) for i in body.items], details=body.details,
    )  # fmt: skip
    return service.get_action(session, action_id=action.id)


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
    result = reporting.review(session, since=utcnow() - timedelta(days=days))
    return ReviewOut(
        **{k: getattr(result, k) for k in ("since", "resolved_conversations", "actions_on_resolved")},
        by_agent=[vars(r) for r in result.by_agent],
        by_type=[vars(r) for r in result.by_type],
        by_reason=[vars(r) for r in result.by_reason],
        actions_per_resolved_conversation=result.actions_per_resolved_conversation,
    )


@router.get("/actions/{action_id}", response_model=ActionOut)
def get_action(action_id: IdPath, session: DbSession, user: CurrentUser):
    return service.get_action(session, action_id=action_id)


@router.post("/actions/{action_id}/approve", response_model=ActionOut)
def approve(action_id: IdPath, session: DbSession, user: Supervisor, body: DecisionIn | None = None):
    action = service.get_action(session, action_id=action_id)
    service.approve_action(session, action=action, actor=user, note=body.note if body else None)
    return service.get_action(session, action_id=action_id)


@router.post("/actions/{action_id}/decline", response_model=ActionOut)
def decline(action_id: IdPath, session: DbSession, user: Supervisor, body: DecisionIn | None = None):
    action = service.get_action(session, action_id=action_id)
    service.decline_action(session, action=action, actor=user, note=body.note if body else None)
    return service.get_action(session, action_id=action_id)


@router.post("/actions/{action_id}/reverse", response_model=ActionOut, status_code=201)
def reverse(action_id: IdPath, body: ReverseIn, session: DbSession, user: CurrentUser):
    """A counter-action that undoes an executed one; the original is kept."""
    action = service.get_action(session, action_id=action_id)
    counter_action = service.reverse_action(session, action=action, actor=user, reason=body.reason)
    return service.get_action(session, action_id=counter_action.id)


@router.get("/audit.csv")
def audit_csv(request: Request, user: Supervisor):
    """The append-only audit log: actions, decisions, authority, users, teams, channels, merges."""
    return _csv_response(request, exports.audit_csv, "cape-audit.csv")


@router.get("/ledger.csv")
def ledger_csv(request: Request, user: Supervisor):
    """The built-in connector's ledger (refunds, credits, codes, gestures) for finance."""
    return _csv_response(request, exports.ledger_csv, "cape-ledger.csv")


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


def _authority_out(limits: Authority, **who) -> AuthorityOut:
    return AuthorityOut(
        **who, source=limits.source, currency=limits.currency,
        per_action={t.value: limits.per_action_limit(t) for t in ActionType},
        per_customer_30d=limits.per_customer_30d, daily_budget=limits.daily_budget,
    )  # fmt: skip


@router.get("/authority/me", response_model=AuthorityOut)
def my_authority(session: DbSession, user: CurrentUser):
    return _authority_out(authority.authority_for(session, user=user), user_id=user.id)


@router.get("/users/{user_id}/authority", response_model=AuthorityOut)
def get_user_authority(user_id: IdPath, session: DbSession, admin: Admin):
    user = auth_service.get_user(session, user_id=user_id)
    return _authority_out(authority.authority_for(session, user=user), user_id=user.id)


@router.put("/users/{user_id}/authority", response_model=AuthorityOut)
def put_user_authority(user_id: IdPath, body: AuthorityIn, session: DbSession, admin: Admin):
    user = auth_service.get_user(session, user_id=user_id)
    authority.set_authority(session, actor=admin, user=user, **body.model_dump())
    return _authority_out(authority.authority_for(session, user=user), user_id=user.id)


@router.get("/roles/{role}/authority", response_model=AuthorityOut)
def get_role_authority(role: Role, session: DbSession, admin: Admin):
    return _authority_out(authority.role_authority(session, role=role), role=role)


@router.put("/roles/{role}/authority", response_model=AuthorityOut)
def put_role_authority(role: Role, body: AuthorityIn, session: DbSession, admin: Admin):
    authority.set_authority(session, actor=admin, role=role, **body.model_dump())
    return _authority_out(authority.role_authority(session, role=role), role=role)
