"""``POST /auth/login``: a username and password for a bearer token (see :mod:`.auth`).

The password check (scrypt, tens of milliseconds by design) runs in a worker thread so the
node's other tasks keep running. Bad credentials are 401, whoever the username names.
"""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter

from .auth import unauthorized
from .models import ErrorOut, LoginIn, TokenOut
from .state import ApiDep

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/login",
    response_model=TokenOut,
    summary="Log in: a bearer token for the API",
    responses={401: {"model": ErrorOut, "description": "Wrong username or password"}},
)
async def login(body: LoginIn, api: ApiDep) -> TokenOut:
    user = await anyio.to_thread.run_sync(partial(api.auth.login, body.username, body.password))
    if user is None:
        raise unauthorized("wrong username or password")
    token, ttl = api.auth.issue(user.username, user.role)
    return TokenOut(access_token=token, token_type="bearer", expires_in=ttl, role=user.role)
