"""Demo job processors (used by ``make run``, ``troupe cluster up --demo-jobs`` and the tests).

Importing this module registers them in :data:`transport.processors.DEFAULT`; a node serves
them with ``--jobs-module transport.demo_jobs`` (``cluster up`` always adds it).

======== ========================================================= ==========================
type     what it does                                              payload
======== ========================================================= ==========================
noop     nothing; returns the payload                              anything
sleep    sleeps                                                    ``{"seconds": 0.1}`` or 0.1
email    pretends to send an email (a short sleep)                 ``{"to": "a@x.org"}``, or ``recipient``
resize   a box blur over a generated image, in a worker thread     ``{"width": 64, "height": 48}``
flaky    fails with probability ``fail_rate``                      ``{"fail_rate": 0.3}``
broken   always raises (retried, then dead-lettered)               anything
slow     sleeps ``seconds`` (default 5): longer than its timeout   ``{"seconds": 5}``
======== ========================================================= ==========================

:func:`demo_batch` builds the mixed batch ``cluster up --demo-jobs N`` submits.
"""

from __future__ import annotations

import random
from typing import Any

import trio

from .processors import processor

DEMO_TYPES = ("noop", "sleep", "email", "resize", "flaky", "broken", "slow")


def _seconds(payload: Any, default: float) -> float:
    value = payload.get("seconds", default) if isinstance(payload, dict) else payload
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        raise ValueError(f"seconds must be a number from 0 to 3600, got {value!r}")
    return float(value)


@processor("noop")
async def noop(payload: Any) -> Any:
    """Do nothing; the result is the payload."""
    return payload


@processor("sleep")
async def sleep(payload: Any) -> dict[str, float]:
    """Sleep ``payload["seconds"]`` (or ``payload`` itself, a number) seconds."""
    seconds = _seconds(payload, 0.1)
    await trio.sleep(seconds)
    return {"slept": seconds}


@processor("email")
async def email(payload: Any) -> dict[str, Any]:
    """Pretend to send an email: 20-80 ms of waiting."""
    to = (payload.get("to") or payload.get("recipient")) if isinstance(payload, dict) else None
    if not isinstance(to, str) or "@" not in to:
        raise ValueError(
            f"email needs a payload like {{'to': 'someone@example.com'}} (or 'recipient'), got {payload!r}"
        )
    await trio.sleep(random.uniform(0.02, 0.08))
    return {"sent_to": to}


def _blur(width: int, height: int) -> int:
    image = [[(x * 31 + y * 17) % 256 for x in range(width)] for y in range(height)]
    total = 0
    for y in range(1, height - 1):
        row_above, row, row_below = image[y - 1], image[y], image[y + 1]
        for x in range(1, width - 1):
            total += (
                row_above[x - 1] + row_above[x] + row_above[x + 1]
                + row[x - 1] + row[x] + row[x + 1]
                + row_below[x - 1] + row_below[x] + row_below[x + 1]
            ) // 9  # fmt: skip
    return total


@processor("resize")
async def resize(payload: Any) -> dict[str, int]:
    """Some CPU work (a 3x3 box blur), run in a thread so the node's event loop stays free."""
    size = payload if isinstance(payload, dict) else {}
    width, height = size.get("width", 64), size.get("height", 48)
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 3 <= value <= 2000:
            raise ValueError(f"resize: {name} must be an integer from 3 to 2000, got {value!r}")
    checksum = await trio.to_thread.run_sync(_blur, width, height)
    return {"width": width // 2, "height": height // 2, "checksum": checksum}


@processor("flaky")
async def flaky(payload: Any) -> str:
    """Fail with probability ``payload["fail_rate"]`` (default 0.5)."""
    rate = payload.get("fail_rate", 0.5) if isinstance(payload, dict) else 0.5
    await trio.sleep(0.01)
    if random.random() < rate:
        raise RuntimeError(f"flaky: failed this time (fail_rate {rate})")
    return "ok"


@processor("broken")
async def broken(payload: Any) -> None:
    """Always fail: retried with backoff, then dead-lettered."""
    await trio.sleep(0.005)
    raise RuntimeError("broken: this job always fails")


@processor("slow")
async def slow(payload: Any) -> dict[str, float]:
    """Sleep ``seconds`` (default 5): submitted with a shorter timeout it fails by timing out."""
    seconds = _seconds(payload, 5.0)
    await trio.sleep(seconds)
    return {"slept": seconds}


def demo_batch(n: int) -> list[dict[str, Any]]:
    """``n`` submissions (keyword arguments of :meth:`transport.jobs_client.JobClient.submit`).

    A repeating mix of every demo type: mostly jobs that succeed, some ``flaky`` ones that
    usually succeed after retries, and a few ``broken`` and ``slow`` (timing out) ones that end
    in the dead-letter queue after one retry. Priorities vary; one job in twelve waits 2 s before it may run.
    """
    pattern: list[dict[str, Any]] = [
        {"type": "email", "priority": "high"},
        {"type": "resize", "payload": {"width": 48, "height": 32}},
        {"type": "noop", "priority": "low"},
        {"type": "sleep", "payload": {"seconds": 0.5}},
        {"type": "flaky", "payload": {"fail_rate": 0.3}, "max_retries": 4},
        {"type": "email", "delay": 2.0},
        {"type": "resize", "payload": {"width": 64, "height": 48}, "priority": 7},
        {"type": "broken", "max_retries": 1},
        {"type": "noop"},
        {"type": "email", "priority": 9},
        {"type": "slow", "payload": {"seconds": 5}, "timeout": 0.3, "max_retries": 1},
        {"type": "flaky", "payload": {"fail_rate": 0.2}, "max_retries": 4},
    ]
    batch: list[dict[str, Any]] = []
    for i in range(n):
        spec = dict(pattern[i % len(pattern)])
        if spec["type"] == "email":
            spec["payload"] = {"to": f"user{i}@example.com", "subject": f"demo {i}"}
        batch.append(spec)
    return batch
