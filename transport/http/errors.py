"""Errors of the HTTP API: every one is answered as ``{"error": "<one line>"}``.

How it works: routes raise :class:`ApiError` (status, one-line message, headers such as
``WWW-Authenticate``); :func:`store_error` turns a store's ``{"error": ...}`` result into one
(404 for a job that does not exist, 409 for a step the job's state refuses, 400 for a value the
store refused, 503 when the store cannot be reached). :func:`install_error_handlers` makes
FastAPI answer in the same shape for everything else: a request that fails validation gets 400
naming the field (``priority: must be 1-10 or high/normal/low``) instead of FastAPI's 422 list,
Starlette's own 404/405 keep their status, and an unexpected exception is answered 500 and
reported as one ``http.error`` event (a bug to fix: nothing a client sends is meant to reach it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors.jobs.protocol import UNAVAILABLE

from ..events import EventLog
from .api_error import ApiError as ApiError
from .api_error import one_line as one_line


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON answer ``{"error": message}`` with ``status``."""
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=dict(headers or {}))


def store_error(result: Mapping[str, Any], op: str) -> ApiError:
    """The :class:`ApiError` for a store result ``{"error": ...}`` of command ``op``.

    The machine words its refusals ``"<op>: <why>"`` (see :mod:`actors.jobs.machine`): a missing
    job is 404, a state that refuses the step 409, another refusal 400; anything else (store
    unavailable, no answer in time, a gateway that is busy) is 503.
    """
    text = one_line(result.get("error", "unknown error"))
    if UNAVAILABLE in text or not text.startswith(f"{op}: "):
        return ApiError(503, text if UNAVAILABLE in text else f"{UNAVAILABLE}: {text}")
    why = text[len(op) + 2 :]
    if why.startswith("no job "):
        return ApiError(404, why)
    if "cannot be" in why:
        return ApiError(409, why)
    return ApiError(400, why)


def validation_message(errors: Sequence[Any]) -> str:
    """One line naming the first invalid field of a FastAPI validation error."""
    if not errors:
        return "invalid request"
    first = errors[0] if isinstance(errors[0], Mapping) else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    msg = str(first.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    kind = first.get("type", "")
    if kind == "missing":
        msg = "is required"
    elif kind == "extra_forbidden":
        msg = "is not a known field"
    elif kind == "json_invalid":
        return f"body: not valid JSON ({msg})"
    field = ".".join(loc)
    if not field:
        named = re.match(r"^[A-Za-z_][\w.\[\]]*: ", msg)
        return msg if named else f"body: {msg[:1].lower()}{msg[1:]}"
    if msg.startswith(f"{field}:"):
        return msg
    return f"{field}: {msg[:1].lower()}{msg[1:]}"


def install_error_handlers(app: FastAPI, events: EventLog, node_id: str) -> None:
    """Answer every error as ``{"error": ...}`` (see the module docstring)."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, validation_message(exc.errors()))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"not found: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: not valid JSON"
        return error_response(exc.status_code, detail, exc.headers)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        events.emit(
            node_id,
            "http",
            "http.error",
            {
                "level": "error",
                "method": request.method,
                "path": request.url.path,
                "error": one_line(f"{type(exc).__name__}: {exc}"),
            },
        )
        return error_response(500, f"internal error ({type(exc).__name__}); see the node's log")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
