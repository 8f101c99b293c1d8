"""Users API."""

from __future__ import annotations

from fastapi import APIRouter

from cape.auth import service
from cape.auth.deps import Admin, CurrentUser, DbSession
from cape.auth.schemas import UserCreate, UserOut

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/users", response_model=list[UserOut])
def list_users(session: DbSession, user: CurrentUser):
    return service.list_users(session)


@router.get("/users/me", response_model=UserOut)
def me(user: CurrentUser):
    return user


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, session: DbSession, admin: Admin):
    return service.create_user(session, **body.model_dump())
