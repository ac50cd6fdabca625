"""The balancer's worker table: the bookkeeping around a strategy, as a plain state machine.

How it works: a :class:`WorkerPool` holds one :class:`WorkerView` per known worker and one
:class:`Strategy`. :meth:`WorkerPool.assign` asks the strategy for a worker, then counts the job
against it (``active_jobs + 1``, ``last_assigned_at = now``) and tells the strategy through
``on_assigned``; :meth:`WorkerPool.finish` gives the slot back and calls ``on_finished``.
Membership changes (:meth:`add`, :meth:`remove`, :meth:`set_online`) only edit the table.

The rule it keeps: a worker's ``active_jobs`` is the number of jobs assigned to it and not yet
finished, never negative, and never raised past its capacity by :meth:`assign` (the strategies
choose only available workers). Lowering a worker's capacity below its active jobs is allowed:
the worker is then full until enough jobs finish.

It is pure like every actor: the balancer actor passes ``ctx.random`` and ``ctx.now``; tests and
notebooks drive it by hand with a seeded ``random.Random``.
"""

from __future__ import annotations

import dataclasses

from .._context import Rng
from ._base import Strategy, WorkerView


class WorkerPool:
    """The workers a balancer knows, their load, and the strategy that picks among them.

    Attributes:
        strategy: the strategy consulted by :meth:`assign`.
    """

    def __init__(self, strategy: Strategy, workers: tuple[WorkerView, ...] = ()) -> None:
        self.strategy = strategy
        self._workers: dict[str, WorkerView] = {}
        for worker in workers:
            if worker.id in self._workers:
                raise ValueError(f"worker {worker.id!r} given twice to the pool")
            self._workers[worker.id] = worker

    def __len__(self) -> int:
        return len(self._workers)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._workers

    def views(self) -> tuple[WorkerView, ...]:
        """Every worker's view, sorted by id."""
        return tuple(self._workers[i] for i in sorted(self._workers))

    def get(self, worker_id: str) -> WorkerView:
        """The view of ``worker_id``.

        Raises:
            KeyError: the pool does not know ``worker_id``.
        """
        return self._workers[worker_id]

    def add(self, worker_id: str, capacity: int = 1, *, online: bool = True) -> WorkerView:
        """Add a worker, or update the capacity and status of a known one (keeping its load)."""
        known = self._workers.get(worker_id)
        if known is None:
            view = WorkerView(worker_id, capacity=capacity, online=online)
        else:
            view = dataclasses.replace(known, capacity=capacity, online=online)
        self._workers[worker_id] = view
        return view

    def remove(self, worker_id: str) -> WorkerView | None:
        """Forget a worker (its unfinished jobs are the scheduler's to requeue); its last view."""
        return self._workers.pop(worker_id, None)

    def set_online(self, worker_id: str, online: bool) -> None:
        """Mark a known worker online or offline (offline workers are never chosen).

        Raises:
            KeyError: the pool does not know ``worker_id``.
        """
        self._workers[worker_id] = dataclasses.replace(self._workers[worker_id], online=online)

    def assign(self, job_priority: int, rng: Rng, now: float) -> str | None:
        """Choose a worker for a job and count the job against it.

        Args:
            job_priority: the job's priority, passed to the strategy.
            rng: the balancer's seeded generator.
            now: the balancer's monotonic clock.

        Returns:
            The worker's id, or None (nothing changed) when no worker is available.
        """
        chosen = self.strategy.choose(job_priority, self.views(), rng, now)
        if chosen is None:
            return None
        view = self._workers[chosen]
        if not view.available:
            raise RuntimeError(f"strategy {self.strategy.name!r} chose unavailable worker {chosen!r}")
        self._workers[chosen] = dataclasses.replace(
            view, active_jobs=view.active_jobs + 1, last_assigned_at=now
        )
        self.strategy.on_assigned(chosen, now)
        return chosen

    def finish(self, worker_id: str, now: float) -> None:
        """A job of ``worker_id`` finished, failed or was lost: give its slot back.

        A worker already removed, or with no active job (a duplicate report), is ignored by the
        table; the strategy is told only about real finishes.
        """
        view = self._workers.get(worker_id)
        if view is None or view.active_jobs == 0:
            return
        self._workers[worker_id] = dataclasses.replace(view, active_jobs=view.active_jobs - 1)
        self.strategy.on_finished(worker_id, now)

    def set_active(self, worker_id: str, active_jobs: int) -> None:
        """Reset a known worker's load to what it reported (its own count is the truth).

        Raises:
            KeyError: the pool does not know ``worker_id``.
        """
        view = self._workers[worker_id]
        self._workers[worker_id] = dataclasses.replace(view, active_jobs=max(0, active_jobs))

    def total_active(self) -> int:
        """Jobs assigned and not yet finished, over all workers."""
        return sum(w.active_jobs for w in self._workers.values())

    def max_active(self) -> int:
        """The largest number of active jobs on any one worker (0 with no workers)."""
        return max((w.active_jobs for w in self._workers.values()), default=0)
