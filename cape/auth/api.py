"""Users API."""

from __future__ import annotations

from fastapi import APIRouter

from cape.auth import service
from cape.auth.deps import Admin, CurrentUser, DbSession
from cape.auth.schemas import TeamCreate, TeamOut, TeamPatch, UserCreate, UserOut, UserPatch
from cape.kit.validation import IdPath

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/users", response_model=list[UserOut])
def list_users(session: DbSession, user: CurrentUser):
    return service.list_users(session)


@router.get("/users/me", response_model=UserOut)
def me(user: CurrentUser):
    return user


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, session: DbSession, admin: Admin):
    return service.create_user(session, **body.model_dump(), actor=admin)


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(user_id: IdPath, body: UserPatch, session: DbSession, admin: Admin):
    """Rename, change role or language, deactivate (sessions and tokens stop working) or reactivate."""
    user = service.get_user(session, user_id=user_id)
    return service.update_user(session, user=user, actor=admin, **body.model_dump(exclude_unset=True))


@router.get("/teams", response_model=list[TeamOut], tags=["teams"])
def list_teams(session: DbSession, user: CurrentUser):
    return [TeamOut(id=t.id, name=t.name, is_active=t.is_active, member_ids=m) for t, m in service.list_teams(session)]


@router.post("/teams", response_model=TeamOut, status_code=201, tags=["teams"])
def create_team(body: TeamCreate, session: DbSession, admin: Admin):
    team = service.create_team(session, name=body.name, member_ids=body.member_ids, actor=admin)
    return TeamOut(id=team.id, name=team.name, is_active=team.is_active, member_ids=sorted(set(body.member_ids)))


@router.patch("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
def update_team(team_id: IdPath, body: TeamPatch, session: DbSession, admin: Admin):
    """Rename, replace the members (the whole list), deactivate or reactivate a team."""
    team = service.get_team(session, team_id=team_id)
    team = service.update_team(session, team=team, actor=admin, **body.model_dump(exclude_unset=True))
    return TeamOut(id=team.id, name=team.name, is_active=team.is_active,
                   member_ids=service.team_member_ids(session, team=team))  # fmt: skip
