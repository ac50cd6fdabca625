"""What every load-balancing strategy shares: the worker view, the protocol, the rules of choice.

How it works: the balancer actor (wired in by the scheduler) keeps a table of workers. For each
job it hands a strategy a snapshot of that table, as :class:`WorkerView` values, together with
the job's priority, its own seeded :class:`~actors.Rng` and its clock, and gets back the id of
the worker to use, or None. When it has actually given the job to that worker it calls
:meth:`Strategy.on_assigned`; when the worker reports the job done, :meth:`Strategy.on_finished`.

The promises every strategy keeps:

- **Only available workers.** A worker is available when it is online and has a free slot
  (``active_jobs < capacity``). An offline or full worker is never chosen; with no available
  worker the answer is None.
- **Choosing is a query.** ``choose`` may draw from the rng but changes no state of the
  strategy; what a strategy remembers it learns only from the two hooks, so a choice the
  balancer throws away (the send failed, the job was cancelled) leaves no trace.
- **Deterministic.** The answer depends only on the strategy's state, the *set* of views (their
  order in the sequence does not matter), the priority, ``now`` and the rng's draws. Ties are
  broken by worker id (string order), never by position.
- **No draw without a choice.** With one available worker (or none) the rng is left alone,
  so the balancer's random stream does not depend on how often it had nothing to decide.
- **Pure.** No clock, no global randomness, no I/O: randomness only from the rng passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol, runtime_checkable

from .._context import Rng

HIGH_PRIORITY = 8
"""Jobs with ``priority >= HIGH_PRIORITY`` count as high priority for the ``priority`` strategy.

Job priorities run from 0 (lowest) to 10 (highest), 5 being the default; 8 and above are the
jobs a submitter marked urgent.
"""


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What a strategy may know of one worker at the moment of choice.

    Attributes:
        id: the worker's id, unique in the table; ties between workers are broken by it.
        active_jobs: jobs assigned to the worker and not yet finished.
        capacity: how many jobs the worker runs at once; it is full at ``active_jobs >= capacity``.
        online: False while the worker is unreachable, draining or suspected dead.
        last_assigned_at: the balancer's clock when the worker last got a job, or None if never.
    """

    id: str
    active_jobs: int = 0
    capacity: int = 1
    online: bool = True
    last_assigned_at: float | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a worker id must be a non-empty string")
        if self.active_jobs < 0:
            raise ValueError(f"worker {self.id!r}: active_jobs must be >= 0, got {self.active_jobs}")
        if self.capacity < 0:
            raise ValueError(f"worker {self.id!r}: capacity must be >= 0, got {self.capacity}")

    @property
    def available(self) -> bool:
        """Online and with a free slot: the only workers a strategy may choose."""
        return self.online and self.active_jobs < self.capacity


@runtime_checkable
class Strategy(Protocol):
    """A load-balancing strategy: picks a worker for a job; every member has this shape."""

    @property
    def name(self) -> str:
        """The strategy's name, as ``LOAD_BALANCER_STRATEGY`` spells it."""
        ...

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """The id of an available worker for a job of ``job_priority``, or None if none is.

        Args:
            job_priority: the job's priority (higher is more urgent; see :data:`HIGH_PRIORITY`).
            workers: a snapshot of the worker table, in any order, ids unique.
            rng: the balancer's seeded generator (``ctx.random``); the only source of chance.
            now: the balancer's monotonic clock, in seconds.

        Returns:
            The chosen worker's id, or None when no worker is online with a free slot.
        """
        ...

    def on_assigned(self, worker_id: str, now: float) -> None:
        """The balancer gave a job to ``worker_id`` at ``now``."""
        ...

    def on_finished(self, worker_id: str, now: float) -> None:
        """``worker_id`` finished (or failed, or lost) a job at ``now``."""
        ...


class Memoryless:
    """Base for strategies that keep no state: the hooks do nothing."""

    def on_assigned(self, worker_id: str, now: float) -> None:
        """Nothing to remember."""

    def on_finished(self, worker_id: str, now: float) -> None:
        """Nothing to remember."""


def candidates(workers: Iterable[WorkerView]) -> list[WorkerView]:
    """The available workers, sorted by id (so that input order never matters).

    Raises:
        ValueError: two views share an id (the table the balancer keeps is broken).
    """
    out = sorted((w for w in workers if w.available), key=lambda w: w.id)
    for before, after in pairwise(out):
        if before.id == after.id:
            raise ValueError(f"worker {after.id!r} appears twice in the views given to the balancer")
    return out


def load_key(worker: WorkerView) -> tuple[int, str]:
    """Lighter first: fewer active jobs, then the smaller id."""
    return (worker.active_jobs, worker.id)


def lightest(available: Sequence[WorkerView]) -> WorkerView:
    """The worker with the fewest active jobs (ties: smallest id); ``available`` is non-empty."""
    return min(available, key=load_key)
