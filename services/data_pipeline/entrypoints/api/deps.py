"""Dependencies for the routers: the wired container and service-to-service authentication."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from data_pipeline.bootstrap import Container

bearer = HTTPBearer(auto_error=False, description="PIPELINE_API_KEY")


async def get_container(request: Request) -> Container:
    # async on purpose: FastAPI runs sync dependencies in a thread pool, a real cost per request.
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def require_api_key(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    check_api_key(container, credentials)


def check_api_key(container: Container, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Compared in constant time; 401 with a Bearer challenge otherwise."""
    expected = container.settings.pipeline_api_key.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid service API key",
            headers={"WWW-Authenticate": "Bearer"},
        )


ServiceAuth = Depends(require_api_key)
