"""Typed dependency aliases for the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.gateway.runtime import GatewayRuntime


def get_runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


def get_settings_dep(runtime: Annotated[GatewayRuntime, Depends(get_runtime)]) -> Settings:
    return runtime.settings


def get_session(runtime: Annotated[GatewayRuntime, Depends(get_runtime)]) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


RuntimeDep = Annotated[GatewayRuntime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]
# A row id in a URL: the ledger's ids are INTEGER (PostgreSQL's goes to 2**31 - 1); anything
# else is a 422, not a database error.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
