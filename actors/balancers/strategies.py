"""The load-balancing strategies, one class each, and choosing one by name.

Every member has the shape of :class:`~actors.balancers._base.Strategy` and keeps the promises
written there (only available workers, choosing is a query, ties by id, randomness only from the
rng passed in). ``LOAD_BALANCER_STRATEGY`` names one of :data:`STRATEGIES`:

==============  ========================================================================
name            promise
==============  ========================================================================
round_robin     the next available worker after the last one assigned, in id order
least_loaded    an available worker with the fewest active jobs (ties: smallest id)
random          uniform over the available workers
priority        high-priority jobs (>= ``threshold``, default 8) as ``least_loaded``,
                the others as ``round_robin`` over all available workers
lru             the available worker assigned longest ago; never-assigned ones first
power_of_two    two distinct workers drawn at random; the lighter of the two
==============  ========================================================================

``least_loaded`` and ``power_of_two`` compare absolute active-job counts, not the fraction of
capacity in use: a worker with more slots is only preferred once the others are busier.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

from .._context import Rng
from ._base import HIGH_PRIORITY, Memoryless, Strategy, WorkerView, candidates, lightest, load_key


class RoundRobin:
    """Cycles over the available workers in id order.

    It remembers only the id of the worker it last assigned (from :meth:`on_assigned`) and picks
    the first available worker whose id sorts after it, wrapping around to the smallest. Because
    the cursor is an id, not a position, workers joining, leaving, going offline or filling up do
    not restart or skew the rotation: an unavailable worker is skipped and the rotation goes on.

    Promise: over any run in which the same workers are always available, the numbers of jobs
    they were given differ by at most one.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self.last_assigned: str | None = None

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """The first available worker after the last one assigned, in id order (wrapping)."""
        available = candidates(workers)
        if not available:
            return None
        if self.last_assigned is None:
            return available[0].id
        ids = [w.id for w in available]
        after = bisect_right(ids, self.last_assigned)
        return ids[after % len(ids)]

    def on_assigned(self, worker_id: str, now: float) -> None:
        """Move the cursor to ``worker_id``."""
        self.last_assigned = worker_id

    def on_finished(self, worker_id: str, now: float) -> None:
        """Finishing does not move the rotation."""


class LeastLoaded(Memoryless):
    """The available worker with the fewest active jobs; ties go to the smallest id.

    Promise: no available worker has fewer active jobs than the one chosen.
    """

    name = "least_loaded"

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """The lightest available worker (fewest active jobs, then smallest id)."""
        available = candidates(workers)
        return lightest(available).id if available else None


class RandomChoice(Memoryless):
    """A worker drawn uniformly from the available ones with ``rng.choice``.

    The candidates are sorted by id before the draw, so the same seed and the same set of workers
    give the same answer whatever the order of the views.

    Promise: each available worker has the same chance. The rng is drawn from (once) only when
    there is a choice to make: with one available worker, that one; with none, None.
    """

    name = "random"

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """A uniformly random available worker."""
        available = candidates(workers)
        if len(available) <= 1:
            return available[0].id if available else None
        return rng.choice(available).id


class PowerOfTwoChoices(Memoryless):
    """Two distinct available workers drawn at random; the lighter of the two wins.

    The two are drawn with ``rng.sample`` (without replacement) from the candidates sorted by id;
    the lighter has fewer active jobs, ties going to the smaller id. With a single available
    worker that worker is chosen without a draw. This keeps most of least-loaded's balance (the
    maximum load grows like ``log log n`` instead of ``log n / log log n`` for random) while
    looking at only two workers, which matters when the load figures are stale.

    Promise: the chosen worker is never the heavier of the two sampled.
    """

    name = "power_of_two"

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """The lighter of two distinct random available workers (the only one, if one)."""
        available = candidates(workers)
        if len(available) <= 1:
            return available[0].id if available else None
        first, second = rng.sample(available, 2)
        return min(first, second, key=load_key).id


class LeastRecentlyUsed:
    """The available worker that was given a job longest ago; never-assigned workers first.

    When a worker was last used is the later of two lower bounds: the view's
    ``last_assigned_at`` (kept by the balancer's table, so it survives a new strategy or a new
    leader) and the last :meth:`on_assigned` this strategy saw for it. Workers with neither are
    "never used" and come first; ties, among never-used workers or equal times, go to the
    smallest id.

    Promise: no available worker was used less recently than the one chosen.
    """

    name = "lru"

    def __init__(self) -> None:
        self.assigned_at: dict[str, float] = {}

    def last_used(self, worker: WorkerView) -> float | None:
        """When ``worker`` last got a job, as far as this strategy knows (None: never)."""
        remembered = self.assigned_at.get(worker.id)
        if remembered is None:
            return worker.last_assigned_at
        if worker.last_assigned_at is None:
            return remembered
        return max(remembered, worker.last_assigned_at)

    def _recency_key(self, worker: WorkerView) -> tuple[bool, float, str]:
        used_at = self.last_used(worker)
        return (used_at is not None, 0.0 if used_at is None else used_at, worker.id)

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """The least recently used available worker (never used first, then oldest, then id)."""
        available = candidates(workers)
        return min(available, key=self._recency_key).id if available else None

    def on_assigned(self, worker_id: str, now: float) -> None:
        """Remember that ``worker_id`` was used at ``now``."""
        self.assigned_at[worker_id] = now

    def on_finished(self, worker_id: str, now: float) -> None:
        """Finishing a job is not a use: recency counts assignments."""


class PriorityBased:
    """High-priority jobs to the least-loaded worker; the others round-robin over all.

    A job is high priority when ``job_priority >= threshold`` (default :data:`HIGH_PRIORITY`,
    8). Such a job goes where :class:`LeastLoaded` would send it: an available worker with the
    fewest active jobs, ties to the smallest id. Any other job goes where :class:`RoundRobin`
    would send it, over *all* available workers (none is held back, so a single worker still
    serves every job). The rotation's cursor moves on every assignment, whatever its priority:
    after a high-priority job went to worker ``w``, the next normal job goes to the worker after
    ``w``, away from the one just loaded.

    Promise: a high-priority job never goes to a worker with more active jobs than another
    available worker.
    """

    name = "priority"

    def __init__(self, threshold: int = HIGH_PRIORITY) -> None:
        self.threshold = threshold
        self._urgent = LeastLoaded()
        self._rotation = RoundRobin()

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        """Least-loaded for ``job_priority >= threshold``, round-robin otherwise."""
        if job_priority >= self.threshold:
            return self._urgent.choose(job_priority, workers, rng, now)
        return self._rotation.choose(job_priority, workers, rng, now)

    def on_assigned(self, worker_id: str, now: float) -> None:
        """Move the rotation's cursor to ``worker_id``, whatever the job's priority."""
        self._rotation.on_assigned(worker_id, now)

    def on_finished(self, worker_id: str, now: float) -> None:
        """Finishing does not move the rotation."""


_FACTORIES: dict[str, Callable[[], Strategy]] = {
    RoundRobin.name: RoundRobin,
    LeastLoaded.name: LeastLoaded,
    RandomChoice.name: RandomChoice,
    PriorityBased.name: PriorityBased,
    LeastRecentlyUsed.name: LeastRecentlyUsed,
    PowerOfTwoChoices.name: PowerOfTwoChoices,
}

STRATEGIES: tuple[str, ...] = tuple(_FACTORIES)
"""Every name ``LOAD_BALANCER_STRATEGY`` accepts, the reference's four first."""


def make_strategy(name: str) -> Strategy:
    """A fresh strategy named ``name`` (one of :data:`STRATEGIES`), with its defaults.

    Surrounding blanks and letter case are ignored (``" Least_Loaded"`` is ``least_loaded``).

    Raises:
        ValueError: an unknown name; the message lists the names allowed, in one line.
    """
    factory = _FACTORIES.get(name.strip().lower())
    if factory is None:
        raise ValueError(
            f"unknown load balancer strategy {name!r}; set LOAD_BALANCER_STRATEGY to one of "
            f"{', '.join(STRATEGIES)}"
        )
    return factory()
