"""Messages between the job engine's actors: workers, the scheduler and the balancer.

- worker -> leader's scheduler: :class:`WorkerStatus` (every heartbeat, and soon after jobs
  finish); the scheduler renews the leases it lists and forwards it to its balancer;
- scheduler -> balancer: :class:`Route` (ready jobs by priority) -> :class:`Routed`;
- scheduler -> worker: :class:`RunJobs` (dispatched jobs with their attempt and lease) and
  :class:`LeaseLost` (jobs the worker no longer holds: their reports will be refused);
- gateway -> its node's worker: :class:`RunJobs` with ``lane=True`` (a job the store dispatched
  at submit, the fast lane); worker -> gateway: :class:`LaneFreed` (fast-lane jobs ended);
- a worker's owner -> worker: :class:`Resize` (a pull worker re-registered with a new capacity);
- worker -> whoever it was told to notify (a pull-worker registry): :class:`ReportSettled`, the
  store's verdict on each report.

Worker ids: ``"<node>"`` names the node's own pool (actor ``worker`` on that node) and
``"<node>/<actor name>"`` any other worker actor on that node, such as the pull worker
``"n1/pull-w7"`` that stands for an external worker (:mod:`transport.pull_workers`).
:func:`worker_ref` and :func:`worker_id` convert between the two forms; the store records
the id, so a report, a renewal or a cancel always reaches the actor that runs the attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._messages import ActorRef, message

SCHEDULER = "scheduler"
BALANCER = "balancer"
WORKER = "worker"
GATEWAY = "jobs"
"""Actor names on every node: the job scheduler, its balancer, the node's worker pool, and
the gateway clients talk to."""


def worker_ref(worker_id: str) -> ActorRef:
    """The actor a worker id names: ``"n1"`` is ``n1``'s ``worker``, ``"n1/pull-w7"`` ``n1``'s ``pull-w7``."""
    node, slash, name = worker_id.partition("/")
    return ActorRef(node, name) if slash else ActorRef(worker_id, WORKER)


def worker_id(ref: ActorRef) -> str:
    """The worker id of the worker actor at ``ref`` (the inverse of :func:`worker_ref`)."""
    return ref.node if ref.name == WORKER else f"{ref.node}/{ref.name}"


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
    lane: int = 0
    """How many of ``held`` came by the fast lane: they use the worker's lane slots, not
    ``capacity``, so the balancer leaves them out of the load."""


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


def ticket_of(job: dict[str, Any]) -> Ticket:
    """The ticket of a job record the store just dispatched (its last attempt is the open one)."""
    attempt = job["attempts"][-1]
    return Ticket(
        job["id"], attempt["number"], job["type"], job["payload"], job["timeout_seconds"], job["priority"]
    )


@message("jobs.RunJobs")
@dataclass(frozen=True, slots=True)
class RunJobs:
    """Run these jobs; ``seq`` numbers the batches of one scheduler ``epoch`` per worker.

    ``lane`` marks a job the store dispatched at submit (sent by the node's gateway, or by the
    direct lane's feed, ``seq`` 0): it runs in one of the worker's lane slots, and ``notify``
    names the actor on the worker's node told :class:`LaneFreed` when it ends ("": the gateway).
    """

    epoch: int
    seq: int
    jobs: tuple[Ticket, ...]
    lane: bool = False
    notify: str = ""


@message("jobs.LaneFreed")
@dataclass(frozen=True, slots=True)
class LaneFreed:
    """To the node's gateway (or the actor a :class:`RunJobs` named): ``n`` fast-lane jobs
    ended, their lane slots are free again."""

    n: int


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


@message("jobs.ReportSettled")
@dataclass(frozen=True, slots=True)
class ReportSettled:
    """The store's verdict on a worker's report of ``(id, attempt)``: ``accepted`` with the job's
    new ``status``, or refused (``why``: the attempt is no longer this worker's)."""

    id: str
    attempt: int
    accepted: bool
    status: str
    why: str


@message("jobs.Resize")
@dataclass(frozen=True, slots=True)
class Resize:
    """To a worker: run up to ``capacity`` jobs at once from now on (the leader hears at once)."""

    capacity: int
