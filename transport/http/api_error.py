"""The one exception routes raise for an answer other than success (no web framework needed).

:class:`ApiError` carries the HTTP status, a one-line message and headers (such as
``WWW-Authenticate``); :mod:`transport.http.errors` answers it as ``{"error": message}``. It lives
apart from the FastAPI code so the users and tokens of :mod:`transport.http.auth` (and
``troupe auth``) do not import FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An answer other than success: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = one_line(message)
        self.headers = dict(headers or {})


def one_line(text: object, limit: int = 500) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
