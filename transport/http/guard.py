"""Who may call a route: FastAPI dependencies over :mod:`transport.http.auth`.

A route declares the permission it needs with a parameter such as ``_: CanWriteJobs`` (see
:data:`~transport.http.auth.PERMISSIONS`). The dependency reads the bearer token
(``Authorization: Bearer <token>``): none, or a malformed, forged, foreign or expired one, is 401
with ``WWW-Authenticate: Bearer``; a role without the permission is 403. With ``AUTH_ENABLED``
off every caller is let through as an admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .api_error import ApiError
from .auth import PERMISSIONS, Authenticator, Principal, unauthorized

bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/login")
ANONYMOUS = Principal("anonymous", "admin")


def require(permission: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's :class:`Principal` if it holds ``permission``.

    Raises (in the request):
        ApiError: 401 without a valid token, 403 for a role without ``permission``.
    """
    roles = PERMISSIONS[permission]

    async def check(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        auth: Authenticator = request.app.state.auth
        if not auth.enabled:
            return ANONYMOUS
        if credentials is None:
            header = request.headers.get("authorization")
            raise unauthorized("missing bearer token" if header is None else "malformed Authorization header")
        principal = auth.verify(credentials.credentials)
        if principal.role not in roles:
            raise ApiError(403, f"role {principal.role!r} may not do this (needs {permission})")
        return principal

    return check


CanReadJobs = Annotated[Principal, Depends(require("jobs:read"))]
CanWriteJobs = Annotated[Principal, Depends(require("jobs:write"))]
CanDeleteJobs = Annotated[Principal, Depends(require("jobs:delete"))]
CanReadDlq = Annotated[Principal, Depends(require("dlq:read"))]
CanRequeueDlq = Annotated[Principal, Depends(require("dlq:requeue"))]
CanPurgeDlq = Annotated[Principal, Depends(require("dlq:purge"))]
CanReadStats = Annotated[Principal, Depends(require("stats"))]
CanReadCluster = Annotated[Principal, Depends(require("cluster:read"))]
CanAdminCluster = Annotated[Principal, Depends(require("cluster:admin"))]
CanPull = Annotated[Principal, Depends(require("pull"))]
"""Route parameters that require a permission (see :data:`PERMISSIONS`)."""
