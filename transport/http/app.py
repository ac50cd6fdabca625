"""The FastAPI app of a node's HTTP API: routes, the body guard, error answers and OpenAPI.

:func:`create_app` assembles the routers (:mod:`.routes_jobs`, :mod:`.routes_cluster`,
:mod:`.routes_pull`, :mod:`.routes_auth`) around one :class:`~transport.http.state.Api`,
puts the :class:`~transport.http.limits.BodyGuard` in front (413 over ``HTTP_MAX_BODY``, 400
for JSON the store could not keep) and makes every error ``{"error": "..."}``
(:mod:`.errors`). ``/openapi.json`` describes every route with its request and response
models and its error answers: FastAPI's generated 422 is replaced by the 400 this API gives,
and 401/403 (routes behind a token, documented as optional when ``AUTH_ENABLED`` is off), 413
(routes with a body) and 503 (routes that need the store or the leader) are declared where
they can happen. ``/docs`` serves Swagger UI.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from . import routes_auth, routes_cluster, routes_jobs, routes_pull
from .errors import install_error_handlers
from .limits import BodyGuard
from .models import ErrorOut
from .state import Api

VERSION = "1.0.0"

DESCRIPTION = """Troupe's HTTP API: every node serves every route; job commands reach the job
store from any node. Errors are `{"error": "<one line>"}`. With `AUTH_ENABLED=true`, send
`Authorization: Bearer <token>` (from `POST /auth/login`); roles: admin (everything), user
(jobs, dead-letter queue except purge, stats, leader), worker (pull API, reading jobs)."""

_ERRORS = {
    "400": "Bad request: the one line names the field",
    "401": "Missing, invalid or expired bearer token",
    "403": "The token's role may not do this",
    "413": "Request body larger than HTTP_MAX_BODY",
    "503": "The job store or the leader cannot be reached now; try again",
}
_NO_STORE = frozenset(
    {"/health", "/auth/login", "/api/v1/leader", "/api/v1/nodes", "/api/v1/election/algorithms/{algorithm}"}
)
"""Paths whose answer never waits for the store or the leader's balancer (no 503)."""


def _error_response(code: str) -> dict[str, Any]:
    return {
        "description": _ERRORS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


def openapi_schema(app: FastAPI, auth_enabled: bool = True) -> dict[str, Any]:
    """The app's OpenAPI document with this API's error answers (see the module docstring);
    with ``auth_enabled`` False, the bearer token is documented as optional."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.setdefault("ErrorOut", ErrorOut.model_json_schema())
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            codes = []
            if operation.get("parameters") or "requestBody" in operation:
                codes.append("400")
            if "requestBody" in operation:
                codes.append("413")
            if operation.get("security"):
                codes += ["401", "403"]
                if not auth_enabled:
                    operation["security"].append({})  # anonymous access is allowed
            if path not in _NO_STORE:
                codes.append("503")
            for code in codes:
                responses.setdefault(code, _error_response(code))
    return schema


def create_app(api: Api) -> FastAPI:
    """The node's API app (serve it with :func:`transport.http.server.serve_http`)."""
    app = FastAPI(
        title="Troupe",
        version=VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.api = api
    app.state.auth = api.auth
    for module in (routes_jobs, routes_cluster, routes_pull, routes_auth):
        app.include_router(module.router)
    install_error_handlers(app, api.handle.events, api.node_id)
    app.add_middleware(BodyGuard, max_body=api.handle.settings.service.http.max_body)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_schema(app, api.auth.enabled)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
