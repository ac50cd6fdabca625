"""The Huey app of ``troupe bench huey``: one no-op task that records its start.

Loaded by ``huey_consumer transport.bench_huey_tasks.huey`` and by the bench's producer. The
consumer's Redis port comes from ``TROUPE_HUEY_PORT`` (the producer points its own connection at
each run's server); each start appends ``<key> <time.time()>`` to
``<TROUPE_BENCH_LOG>.<pid>`` with one unbuffered write, as cheap as Troupe's start log.
"""

from __future__ import annotations

import os
import time

from huey import RedisHuey  # type: ignore[import-untyped]

huey = RedisHuey("troupe-bench", host="127.0.0.1", port=int(os.environ.get("TROUPE_HUEY_PORT", "6379")))

_fd: int | None = None


@huey.task()  # type: ignore[untyped-decorator]
def noop(key: str) -> None:
    """Record that ``key`` started now."""
    global _fd
    if _fd is None:
        path = f"{os.environ['TROUPE_BENCH_LOG']}.{os.getpid()}"
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{key} {time.time():.6f}\n".encode())
