"""Registry HTTP routes."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.common.auth import Subject, require
from services.common.db import DbSession
from services.common.permissions import Action
from services.registry import service
from services.registry.schemas import ChildCreate, ChildRead

router = APIRouter(prefix="/v1", tags=["children"])
ChildCreator = Annotated[Subject, Depends(require(Action.CHILD_CREATE))]
ChildReader = Annotated[Subject, Depends(require(Action.CHILD_READ))]


@router.post("/children", response_model=ChildRead, status_code=201)
async def create_child(session: DbSession, subject: ChildCreator, body: ChildCreate) -> ChildRead:
    return ChildRead.model_validate(await service.create_child(session, subject, body), from_attributes=True)


@router.get("/children/{child_id}", response_model=ChildRead)
async def get_child(session: DbSession, subject: ChildReader, child_id: uuid.UUID) -> ChildRead:
    return ChildRead.model_validate(await service.get_child(session, subject, child_id), from_attributes=True)
