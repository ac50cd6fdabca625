"""Messages between the job engine's actors: workers, the scheduler and the balancer.

- worker -> leader's scheduler: :class:`WorkerStatus` (every heartbeat, and soon after jobs
  finish); the scheduler renews the leases it lists and forwards it to its balancer;
- scheduler -> balancer: :class:`Route` (ready jobs by priority) -> :class:`Routed`;
- scheduler -> worker: :class:`RunJobs` (dispatched jobs with their attempt and lease) and
  :class:`LeaseLost` (jobs the worker no longer holds: their reports will be refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._messages import message

SCHEDULER = "scheduler"
BALANCER = "balancer"
WORKER = "worker"
GATEWAY = "jobs"
"""Actor names on every node: the job scheduler, its balancer, the node's worker pool, and
the gateway clients talk to."""


@message("jobs.WorkerStatus")
@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker's state: ``held`` lists ``(job id, attempt)`` it runs now.

    ``heartbeat`` is True for the periodic report that renews leases; ``seen`` is the highest
    :class:`RunJobs` sequence number the worker received from the current scheduler epoch, so
    the balancer can add the jobs sent after it to the worker's load.
    """

    worker: str
    capacity: int
    held: tuple[tuple[str, int], ...]
    heartbeat: bool
    epoch: int
    seen: int


@message("jobs.Ticket")
@dataclass(frozen=True, slots=True)
class Ticket:
    """One dispatched job as a worker needs it: what to run, which attempt, how long."""

    id: str
    attempt: int
    type: str
    payload: Any
    timeout: float
    priority: int


@message("jobs.RunJobs")
@dataclass(frozen=True, slots=True)
class RunJobs:
    """Run these jobs; ``seq`` numbers the batches of one scheduler ``epoch`` per worker."""

    epoch: int
    seq: int
    jobs: tuple[Ticket, ...]


@message("jobs.LeaseLost")
@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The worker no longer holds these ``(job id, attempt)`` leases."""

    held: tuple[tuple[str, int], ...]


@message("jobs.Route")
@dataclass(frozen=True, slots=True)
class Route:
    """Choose a worker for each ``(job id, priority)``, most urgent first."""

    req: int
    jobs: tuple[tuple[str, int], ...]


@message("jobs.Routed")
@dataclass(frozen=True, slots=True)
class Routed:
    """The balancer's choices: ``(job id, worker)`` for the jobs it could place, in order."""

    req: int
    assign: tuple[tuple[str, str], ...]


@message("jobs.Nudge")
@dataclass(frozen=True, slots=True)
class Nudge:
    """To the leader's scheduler: jobs became ready (a submit), dispatch now rather than at the tick."""
