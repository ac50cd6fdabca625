"""Asking a balancer what it knows of the workers: one request and one reply message.

How it works: anyone (the HTTP API's ``GET /api/v1/workers``, a tool) sends
:class:`InspectWorkers` with its own request number to the actor ``balancer`` of the node it
wants to ask (the leader's is the one in use: only the leader's scheduler routes jobs), and
gets :class:`WorkersReport` with the same number. The balancer answers from its worker table
without changing it: every worker it has heard from, with its capacity, its load (the jobs it
holds plus those routed to it since its last status), the ``(job id, attempt)`` leases it listed
in its last status, whether it is online, and how long it has been silent, in seconds of the
balancer's own clock (a monotonic clock means nothing on another node; the asker turns the
silence into a wall-clock "last seen" with its own clock).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._messages import message


@message("jobs.InspectWorkers")
@dataclass(frozen=True, slots=True)
class InspectWorkers:
    """To a balancer: describe your workers; answered with :class:`WorkersReport` ``req``."""

    req: int


@message("jobs.WorkerInfo")
@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as a balancer sees it (see the module docstring)."""

    id: str
    capacity: int
    load: int
    held: tuple[tuple[str, int], ...]
    online: bool
    silent: float
    """Seconds since the balancer last heard the worker's status."""


@message("jobs.WorkersReport")
@dataclass(frozen=True, slots=True)
class WorkersReport:
    """The answer to :class:`InspectWorkers` ``req``: the balancer's ``node``, its strategy and
    its workers, sorted by id."""

    req: int
    node: str
    strategy: str
    workers: tuple[WorkerInfo, ...]
