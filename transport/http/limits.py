"""The body guard: request bodies are bounded in size and held to plain, storable JSON.

How it works: :class:`BodyGuard` is an ASGI middleware in front of the app. It refuses a
``Content-Length`` over ``max_body`` with 413 before reading anything; otherwise it reads the
body itself (chunked bodies with no length included), answering 413 as soon as the bytes read
pass ``max_body``, and hands the app the body it read. A body FastAPI would parse as JSON (no
content type, ``application/json`` or ``+json``) is checked first by :func:`json_problem`:
it must parse, and everything in it must survive the trip to the job store and back
(msgpack, the Raft log, SQLite, JSON answers), so the guard answers 400 naming the place
(``payload.items[3]: ...``) for

- ``NaN``/``Infinity`` and numbers too large for a double (``1e400``),
- integers outside the 64-bit range msgpack carries,
- strings that are not valid Unicode text (lone surrogates such as ``"\\ud800"``),
- nesting deeper than :data:`MAX_DEPTH`.

Nothing a client sends gets past the guard to cause a 500 further in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body."""
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
"""The integers msgpack carries."""
DRAIN_LIMIT = 8 * 1024 * 1024
"""Bytes of an oversized body read and dropped before answering 413, so that the client, still
sending, reads the answer rather than a reset connection."""


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _text_problem(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(body: bytes) -> str | None:
    """What is wrong with ``body`` as a request's JSON (one line naming the place), or None."""
    try:
        value = json.loads(body)  # NaN and Infinity parse, to be refused below with their place
    except RecursionError:
        return f"body: nested deeper than {MAX_DEPTH} levels"
    except ValueError as e:  # JSONDecodeError, bad encoding, an integer of thousands of digits
        return f"body: not valid JSON ({' '.join(str(e).split())[:200]})"
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        name = where or "body"
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return f"{name}: integer out of the 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{name}: number out of range (NaN and infinities are not allowed)"
        elif isinstance(item, str):
            if _text_problem(item):
                return f"{name}: not valid Unicode text"
        elif isinstance(item, (list, dict)):
            if depth >= MAX_DEPTH:
                return f"{name}: nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, list):
                stack.extend((v, _path(where, i), depth + 1) for i, v in enumerate(item))
            else:
                for k, v in item.items():
                    if _text_problem(k):
                        return f"{name}: a key is not valid Unicode text"
                    stack.append((v, _path(where, k), depth + 1))
    return None


def _parses_as_json(scope: Scope) -> bool:
    """True if FastAPI would read this request's body as JSON (see ``fastapi.routing``)."""
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media = value.decode("latin-1").split(";")[0].strip().lower()
            subtype = media.partition("/")[2]
            return bool(media.startswith("application/") and (subtype == "json" or subtype.endswith("+json")))
    return True


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyGuard:
    """ASGI middleware: bounded, checked request bodies (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"body: larger than {self.max_body} bytes (HTTP_MAX_BODY)"
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            await self._drain(receive, 0)
            await error_response(413, too_big)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                if message.get("more_body", False):
                    await self._drain(receive, size)
                await error_response(413, too_big)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _parses_as_json(scope):
            problem = json_problem(body)
            if problem is not None:
                await error_response(400, problem)(scope, receive, send)
                return
        await self.app(scope, _Replay(body, receive), send)

    async def _drain(self, receive: Receive, read: int) -> None:
        while read < DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class _Replay:
    """A ``receive`` that gives the app the body already read, then the real messages."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive()
