"""The worker table around a strategy, and long simulated runs that compare strategies.

A run is plain Python: jobs arrive at random times, each strategy places them through a
:class:`WorkerPool`, and each job finishes after a random duration; one seeded generator drives
the workload (the same for every strategy), another the strategy's own draws.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from actors.balancers import STRATEGIES, RoundRobin, WorkerPool, WorkerView, make_strategy


@dataclass(frozen=True)
class RunResult:
    peak_max_load: int
    mean_max_load: float
    assigned: int
    refused: int


def simulate(
    name: str,
    seed: int,
    *,
    workers: int = 20,
    capacity: int = 1_000_000,
    jobs: int = 4000,
    mean_load: float = 4.0,
    high_share: float = 0.2,
) -> RunResult:
    """Run ``jobs`` Poisson arrivals with exponential durations (mean 1 s) through ``name``.

    The arrival rate keeps ``mean_load`` jobs per worker in the system on average.
    """
    pool = WorkerPool(
        make_strategy(name), tuple(WorkerView(f"w{i:02d}", capacity=capacity) for i in range(workers))
    )
    workload, choices = random.Random(seed), random.Random(seed + 1)
    running: list[tuple[float, int, str]] = []  # (ends at, job number, worker)
    now, max_loads, refused = 0.0, [], 0
    for job in range(jobs):
        now += workload.expovariate(workers * mean_load)
        while running and running[0][0] <= now:
            ends_at, _, worker_id = heapq.heappop(running)
            pool.finish(worker_id, ends_at)
        priority = 9 if workload.random() < high_share else 3
        duration = workload.expovariate(1.0)
        chosen = pool.assign(priority, choices, now)
        if chosen is None:
            refused += 1
            continue
        view = pool.get(chosen)
        assert view.online and view.active_jobs <= view.capacity
        heapq.heappush(running, (now + duration, job, chosen))
        max_loads.append(pool.max_active())
    assert pool.total_active() == len(running)
    return RunResult(max(max_loads), sum(max_loads) / len(max_loads), jobs - refused, refused)


def test_power_of_two_keeps_the_max_load_below_random() -> None:
    # Given the same workload through random and through power of two
    for seed in (1, 2, 3):
        by_random = simulate("random", seed)
        by_two = simulate("power_of_two", seed)
        # Expect a lower peak and a lower typical maximum load with two choices
        assert by_two.peak_max_load < by_random.peak_max_load
        assert by_two.mean_max_load < by_random.mean_max_load


def test_least_loaded_balances_at_least_as_well_as_power_of_two() -> None:
    by_two = simulate("power_of_two", 5)
    by_least = simulate("least_loaded", 5)
    assert by_least.mean_max_load <= by_two.mean_max_load


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_full_pool_refuses_and_every_run_is_deterministic(name: str) -> None:
    # Given few slots for the load, so that workers fill up
    first = simulate(name, 9, workers=4, capacity=3, jobs=600, mean_load=3.0)
    # Expect some jobs refused, no worker ever past capacity (checked in the run), and a replay
    assert first.refused > 0
    assert first.peak_max_load <= 3
    assert simulate(name, 9, workers=4, capacity=3, jobs=600, mean_load=3.0) == first


def test_assign_counts_the_job_and_tells_the_strategy() -> None:
    strategy = RoundRobin()
    pool = WorkerPool(strategy, (WorkerView("a", capacity=2), WorkerView("b", capacity=2)))
    assert pool.assign(0, random.Random(0), 4.0) == "a"
    assert pool.get("a") == WorkerView("a", active_jobs=1, capacity=2, last_assigned_at=4.0)
    assert strategy.last_assigned == "a"
    assert pool.assign(0, random.Random(0), 5.0) == "b"
    assert pool.assign(0, random.Random(0), 6.0) == "a"
    assert pool.assign(0, random.Random(0), 7.0) == "b"
    # When every slot is taken, Expect None and nothing changed
    assert pool.assign(0, random.Random(0), 8.0) is None
    assert pool.total_active() == 4 and pool.max_active() == 2


def test_finish_gives_the_slot_back_and_ignores_duplicates() -> None:
    pool = WorkerPool(make_strategy("least_loaded"), (WorkerView("a"),))
    assert pool.assign(0, random.Random(0), 1.0) == "a"
    assert pool.assign(0, random.Random(0), 1.0) is None
    pool.finish("a", 2.0)
    pool.finish("a", 2.0)  # a duplicate report
    pool.finish("gone", 2.0)  # a worker the pool never knew
    assert pool.get("a").active_jobs == 0
    assert pool.assign(0, random.Random(0), 3.0) == "a"


def test_membership_changes_keep_the_load() -> None:
    pool = WorkerPool(make_strategy("lru"))
    pool.add("a", capacity=2)
    pool.add("b", capacity=2)
    assert pool.assign(0, random.Random(0), 1.0) == "a"
    # a goes offline: b is the only choice; a's job still counts
    pool.set_online("a", False)
    assert pool.assign(0, random.Random(0), 2.0) == "b"
    assert pool.assign(0, random.Random(0), 3.0) == "b"
    assert pool.assign(0, random.Random(0), 4.0) is None
    # a comes back with more slots and keeps its active job
    pool.add("a", capacity=3)
    assert pool.get("a").active_jobs == 1 and pool.get("a").available
    assert pool.remove("b") is not None and "b" not in pool and len(pool) == 1
    assert [w.id for w in pool.views()] == ["a"]


def test_a_worker_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        WorkerPool(make_strategy("random"), (WorkerView("a"), WorkerView("a")))


def test_a_strategy_that_breaks_its_promise_is_caught() -> None:
    class Careless(RoundRobin):
        def choose(self, job_priority: int, workers: object, rng: object, now: float) -> str | None:
            return "a"

    pool = WorkerPool(Careless(), (WorkerView("a", online=False),))
    with pytest.raises(RuntimeError, match="chose unavailable worker 'a'"):
        pool.assign(0, random.Random(0), 0.0)
