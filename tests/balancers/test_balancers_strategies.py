"""Each strategy's own promise, as a specification: Given a table, When it chooses, Expect ...

The promises shared by the whole family (availability, None, input order) are in
``test_balancers_family.py``; the long simulated runs in ``test_balancers_pool.py``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from troupe_testkit.balancers import IDS, worker_tables

from actors.balancers import (
    HIGH_PRIORITY,
    LeastLoaded,
    LeastRecentlyUsed,
    PowerOfTwoChoices,
    PriorityBased,
    RandomChoice,
    RoundRobin,
    WorkerView,
)

T = TypeVar("T")


def always_available(ids: Sequence[str]) -> list[WorkerView]:
    return [WorkerView(i, capacity=1_000_000) for i in ids]


class RecordingRandom(random.Random):
    """A seeded ``random.Random`` that remembers what ``sample`` returned."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.samples: list[list[object]] = []

    def sample(self, population: Sequence[T], k: int, *, counts: object = None) -> list[T]:
        out = super().sample(population, k)
        self.samples.append(list(out))
        return out


# -- round robin ------------------------------------------------------------------------------


@given(n_workers=st.integers(1, 8), n_jobs=st.integers(0, 120))
def test_round_robin_counts_differ_by_at_most_one(n_workers: int, n_jobs: int) -> None:
    # Given equal workers that are always available
    table = always_available([f"w{i}" for i in range(n_workers)])
    strategy = RoundRobin()
    counts: Counter[str] = Counter()
    # When it assigns any number of jobs
    for step in range(n_jobs):
        chosen = strategy.choose(5, table, random.Random(step), float(step))
        assert chosen is not None
        strategy.on_assigned(chosen, float(step))
        counts[chosen] += 1
    # Expect the counts to differ by at most one
    per_worker = [counts[w.id] for w in table]
    assert max(per_worker) - min(per_worker) <= 1


def test_round_robin_cycles_in_id_order_whatever_the_view_order() -> None:
    table = always_available(["c", "a", "d", "b"])
    strategy = RoundRobin()
    picks = []
    for _ in range(6):
        chosen = strategy.choose(0, table, random.Random(0), 0.0)
        assert chosen is not None
        strategy.on_assigned(chosen, 0.0)
        picks.append(chosen)
    assert picks == ["a", "b", "c", "d", "a", "b"]


@given(table=worker_tables(min_size=1), cursor=IDS)
def test_round_robin_skips_unavailable_workers(table: list[WorkerView], cursor: str) -> None:
    # Given any table and a cursor at some id
    strategy = RoundRobin()
    strategy.on_assigned(cursor, 0.0)
    # When it chooses
    chosen = strategy.choose(0, table, random.Random(0), 0.0)
    # Expect the first available id after the cursor, wrapping around
    ids = sorted(w.id for w in table if w.available)
    after = [i for i in ids if i > cursor]
    expected = after[0] if after else (ids[0] if ids else None)
    assert chosen == expected


def test_round_robin_goes_on_through_membership_changes() -> None:
    # Given a rotation that just served b
    strategy = RoundRobin()
    strategy.on_assigned("b", 0.0)
    # When c leaves, Expect d next (not a restart at a)
    assert strategy.choose(0, always_available(["a", "b", "d"]), random.Random(0), 0.0) == "d"
    # When bb joins, Expect it next, right after b
    assert strategy.choose(0, always_available(["a", "b", "bb", "d"]), random.Random(0), 0.0) == "bb"
    # When b itself left, Expect the worker after it all the same
    assert strategy.choose(0, always_available(["a", "d"]), random.Random(0), 0.0) == "d"


# -- least loaded ----------------------------------------------------------------------------


@given(table=worker_tables(min_size=1))
def test_least_loaded_picks_a_minimum_and_breaks_ties_by_id(table: list[WorkerView]) -> None:
    chosen = LeastLoaded().choose(0, table, random.Random(0), 0.0)
    available = [w for w in table if w.available]
    if not available:
        assert chosen is None
        return
    fewest = min(w.active_jobs for w in available)
    assert chosen == min(w.id for w in available if w.active_jobs == fewest)


# -- random ----------------------------------------------------------------------------------


def test_random_covers_all_workers_uniformly() -> None:
    # Given five available workers and a fixed seed
    table = always_available(["a", "b", "c", "d", "e"])
    rng = random.Random(20240917)
    draws = 5000
    # When it chooses many times
    counts = Counter(RandomChoice().choose(0, table, rng, 0.0) for _ in range(draws))
    # Expect every worker, and a chi-square statistic under the 99.9% bound for 4 degrees of freedom
    expected = draws / len(table)
    assert set(counts) == {w.id for w in table}
    chi_square = sum((counts[w.id] - expected) ** 2 / expected for w in table)
    assert chi_square < 18.47


def test_random_is_deterministic_for_a_seed() -> None:
    table = always_available(["a", "b", "c", "d"])

    def run(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [RandomChoice().choose(0, table, rng, 0.0) for _ in range(50)]

    assert run(11) == run(11)
    assert run(11) != run(12)


# -- power of two ----------------------------------------------------------------------------


@given(table=worker_tables(min_size=2), seed=st.integers(0, 2**32))
def test_power_of_two_never_picks_the_heavier_of_its_samples(table: list[WorkerView], seed: int) -> None:
    rng = RecordingRandom(seed)
    chosen = PowerOfTwoChoices().choose(0, table, rng, 0.0)
    available = [w for w in table if w.available]
    if len(available) < 2:
        assert rng.samples == []
        return
    # Expect one sample of two distinct available workers, and the lighter of them (ties: id)
    assert len(rng.samples) == 1
    first, second = rng.samples[0]
    assert isinstance(first, WorkerView) and isinstance(second, WorkerView)
    assert first.id != second.id and first.available and second.available
    assert chosen == min((first.active_jobs, first.id), (second.active_jobs, second.id))[1]


def test_power_of_two_ties_go_to_the_smaller_id() -> None:
    table = always_available(["x", "y"])
    picks = {PowerOfTwoChoices().choose(0, table, random.Random(seed), 0.0) for seed in range(20)}
    assert picks == {"x"}


# -- least recently used ---------------------------------------------------------------------


def test_lru_picks_never_used_workers_first_then_the_oldest() -> None:
    # Given a never-used worker among used ones
    table = [
        WorkerView("a", last_assigned_at=5.0),
        WorkerView("b", last_assigned_at=1.0),
        WorkerView("c"),
        WorkerView("d", last_assigned_at=0.5, online=False),
    ]
    strategy = LeastRecentlyUsed()
    # Expect the never-used one, then (once it is used) the oldest online one
    assert strategy.choose(0, table, random.Random(0), 9.0) == "c"
    strategy.on_assigned("c", 9.0)
    assert strategy.choose(0, table, random.Random(0), 9.5) == "b"
    strategy.on_assigned("b", 9.5)
    assert strategy.choose(0, table, random.Random(0), 9.7) == "a"


@given(table=worker_tables(min_size=1))
def test_lru_picks_the_least_recently_used_view(table: list[WorkerView]) -> None:
    chosen = LeastRecentlyUsed().choose(0, table, random.Random(0), 0.0)
    available = [w for w in table if w.available]
    never = sorted(w.id for w in available if w.last_assigned_at is None)
    if never:
        assert chosen == never[0]
    elif available:
        oldest = min(w.last_assigned_at or 0.0 for w in available)
        assert chosen == min(w.id for w in available if w.last_assigned_at == oldest)
    else:
        assert chosen is None


def test_lru_takes_the_later_of_its_memory_and_the_view() -> None:
    strategy = LeastRecentlyUsed()
    strategy.on_assigned("a", 8.0)
    # The table says a was used at 2.0 but the strategy saw it used at 8.0: b (at 4.0) is older
    table = [WorkerView("a", last_assigned_at=2.0), WorkerView("b", last_assigned_at=4.0)]
    assert strategy.choose(0, table, random.Random(0), 10.0) == "b"
    # And a newer time in the table wins over an older memory
    assert strategy.last_used(WorkerView("a", last_assigned_at=9.0)) == 9.0


# -- priority --------------------------------------------------------------------------------


@given(table=worker_tables(min_size=1), priority=st.integers(HIGH_PRIORITY, 10), cursor=st.none() | IDS)
def test_priority_sends_high_priority_jobs_to_a_least_loaded_worker(
    table: list[WorkerView], priority: int, cursor: str | None
) -> None:
    strategy = PriorityBased()
    if cursor is not None:
        strategy.on_assigned(cursor, 0.0)
    assert strategy.choose(priority, table, random.Random(0), 0.0) == LeastLoaded().choose(
        priority, table, random.Random(0), 0.0
    )


@given(table=worker_tables(min_size=1), priority=st.integers(0, HIGH_PRIORITY - 1), cursor=st.none() | IDS)
def test_priority_spreads_other_jobs_round_robin(
    table: list[WorkerView], priority: int, cursor: str | None
) -> None:
    strategy, rotation = PriorityBased(), RoundRobin()
    if cursor is not None:
        strategy.on_assigned(cursor, 0.0)
        rotation.on_assigned(cursor, 0.0)
    assert strategy.choose(priority, table, random.Random(0), 0.0) == rotation.choose(
        priority, table, random.Random(0), 0.0
    )


@pytest.mark.parametrize(("threshold", "priority", "expected"), [(8, 8, "b"), (8, 7, "a"), (3, 3, "b")])
def test_priority_threshold_decides(threshold: int, priority: int, expected: str) -> None:
    # Given a busy a and an idle b, and a rotation that starts at a
    table = [WorkerView("a", active_jobs=2, capacity=4), WorkerView("b", capacity=4)]
    assert PriorityBased(threshold).choose(priority, table, random.Random(0), 0.0) == expected


def test_priority_rotation_moves_after_a_high_priority_assignment() -> None:
    strategy = PriorityBased()
    table = [WorkerView("a", capacity=4), WorkerView("b", capacity=4), WorkerView("c", capacity=4)]
    strategy.on_assigned("b", 0.0)  # an urgent job went to b
    assert strategy.choose(1, table, random.Random(0), 0.0) == "c"
