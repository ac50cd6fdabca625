"""Processors for ``troupe bench jobs`` and the 10,000-job process tests: they record each start.

Load with ``--jobs-module transport.bench_processors`` (``JOB_MODULES``). If the environment
variable ``TROUPE_BENCH_LOG`` names a file, every start of a job appends one line to it::

    <key> <time.time() at the start>

where ``<key>`` is the payload itself when it is a string, or ``payload["key"]`` (the bench and
the tests make the payload the job's id). The lines are buffered and written when the buffer
fills, at most ``TROUPE_BENCH_FLUSH`` seconds (default 0.2) after the previous write, and when
the process exits normally (a node stopped with SIGTERM); a node killed with SIGKILL loses the
lines it had not written yet. One start is thus one cheap ``bytes`` append, so recording costs
the no-op job almost nothing.

========== ========================================== =====================================
type       what it does                               payload
========== ========================================== =====================================
bench      records its start and returns None         the key, or ``{"key": ...}``
bench.work records its start, then sleeps ``seconds`` ``{"key": ..., "seconds": 0.002}``
========== ========================================== =====================================
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterable
from typing import Any, BinaryIO

import trio

from .processors import processor

LOG_ENV = "TROUPE_BENCH_LOG"
"""The environment variable naming the file starts are appended to."""
FLUSH_ENV = "TROUPE_BENCH_FLUSH"
"""Seconds between writes of the buffered lines (0: write every line at once)."""


class StartLog:
    """Appends ``<key> <time>`` lines to a file, buffered (see the module docstring)."""

    def __init__(self, path: str | None, flush_every: float = 0.2) -> None:
        self.path = path
        self.flush_every = flush_every
        self._file: BinaryIO | None = None
        self._buf: list[bytes] = []
        self._last = 0.0

    def record(self, key: Any) -> None:
        """Note that the job ``key`` started now."""
        if self.path is None:
            return
        now = time.time()
        self._buf.append(f"{key} {now:.6f}\n".encode())
        if now - self._last >= self.flush_every or len(self._buf) >= 4096:
            self.flush()

    def flush(self) -> None:
        """Write the buffered lines."""
        if not self._buf or self.path is None:
            return
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the process's life
            atexit.register(self.close)
        self._file.write(b"".join(self._buf))
        self._file.flush()
        self._buf.clear()
        self._last = time.time()

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def _flush_every() -> float:
    try:
        return max(0.0, float(os.environ.get(FLUSH_ENV, "0.2")))
    except ValueError:
        return 0.2


STARTS = StartLog(os.environ.get(LOG_ENV) or None, _flush_every())
"""This process's start log."""


def _key(payload: Any) -> Any:
    return payload.get("key") if isinstance(payload, dict) else payload


@processor("bench")
async def bench(payload: Any) -> None:
    """Record the start of the job whose key is the payload (or ``payload["key"]``)."""
    STARTS.record(_key(payload))


@processor("bench.work")
async def bench_work(payload: Any) -> None:
    """Record the start, then sleep ``payload["seconds"]`` (default 0.002)."""
    STARTS.record(_key(payload))
    seconds = payload.get("seconds", 0.002) if isinstance(payload, dict) else 0.002
    await trio.sleep(float(seconds))


def read_starts(paths: Iterable[str | os.PathLike[str]]) -> dict[str, list[float]]:
    """Start times by key from start-log files (missing files are skipped, torn lines ignored)."""
    out: dict[str, list[float]] = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for line in data.split(b"\n"):
            key, sep, at = line.partition(b" ")
            if not sep:
                continue
            try:
                t = float(at)
            except ValueError:
                continue
            out.setdefault(key.decode(), []).append(t)
    return out
