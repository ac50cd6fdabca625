"""What every load-balancing strategy promises, checked against every member of the family.

Given any worker table, expect: only an available worker (online, with a free slot) is ever
chosen; None exactly when no worker is available; the same answer whatever the order of the
views; and ``make_strategy`` building each name and refusing unknown ones in one line.
"""

from __future__ import annotations

import random
from collections.abc import MutableSequence, Sequence
from typing import Any, NoReturn, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from troupe_testkit.balancers import IDS, worker_tables

from actors.balancers import (
    HIGH_PRIORITY,
    STRATEGIES,
    LeastLoaded,
    LeastRecentlyUsed,
    PowerOfTwoChoices,
    PriorityBased,
    RandomChoice,
    RoundRobin,
    Strategy,
    WorkerView,
    make_strategy,
)

T = TypeVar("T")


class NoDraws:
    """An Rng that fails the test if a strategy draws from it."""

    def _fail(self) -> NoReturn:
        raise AssertionError("the strategy drew from the rng when it had no choice to make")

    def random(self) -> float:
        return self._fail()

    def uniform(self, a: float, b: float) -> float:
        return self._fail()

    def randint(self, a: int, b: int) -> int:
        return self._fail()

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        return self._fail()

    def choice(self, seq: Sequence[T]) -> T:
        return self._fail()

    def shuffle(self, x: MutableSequence[Any]) -> None:
        self._fail()

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        return self._fail()

    def getrandbits(self, k: int, /) -> int:
        return self._fail()

    def expovariate(self, lambd: float) -> float:
        return self._fail()


def primed(name: str, cursor: str | None) -> Strategy:
    """A fresh strategy that was told of one earlier assignment (to ``cursor``), if any."""
    strategy = make_strategy(name)
    if cursor is not None:
        strategy.on_assigned(cursor, 1.0)
    return strategy


@pytest.mark.parametrize("name", STRATEGIES)
@given(
    table=worker_tables(),
    priority=st.integers(0, 10),
    seed=st.integers(0, 2**32),
    cursor=st.none() | IDS,
)
def test_only_available_workers_are_chosen_and_none_iff_there_is_none(
    name: str, table: list[WorkerView], priority: int, seed: int, cursor: str | None
) -> None:
    # Given any table and a strategy that may remember an earlier assignment
    strategy = primed(name, cursor)
    # When it chooses
    chosen = strategy.choose(priority, table, random.Random(seed), 50.0)
    # Expect an available worker, or None exactly when there is none
    available = {w.id for w in table if w.available}
    if available:
        assert chosen in available
    else:
        assert chosen is None


@pytest.mark.parametrize("name", STRATEGIES)
@given(table=worker_tables(), priority=st.integers(0, 10), seed=st.integers(0, 2**32), data=st.data())
def test_the_order_of_the_views_does_not_matter(
    name: str, table: list[WorkerView], priority: int, seed: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(table))
    first = make_strategy(name).choose(priority, table, random.Random(seed), 3.0)
    second = make_strategy(name).choose(priority, shuffled, random.Random(seed), 3.0)
    assert first == second


@pytest.mark.parametrize("name", STRATEGIES)
def test_offline_and_full_workers_leave_nothing_to_choose(name: str) -> None:
    # Given only an offline worker, a full one and one with no slots
    table = [
        WorkerView("a", online=False),
        WorkerView("b", active_jobs=2, capacity=2),
        WorkerView("c", capacity=0),
    ]
    # Expect None, without drawing from the rng
    assert make_strategy(name).choose(HIGH_PRIORITY, table, NoDraws(), 0.0) is None
    assert make_strategy(name).choose(0, [], NoDraws(), 0.0) is None


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_single_available_worker_is_chosen_without_a_draw(name: str) -> None:
    table = [WorkerView("a", online=False), WorkerView("b", active_jobs=3, capacity=4), WorkerView("c", 1)]
    assert make_strategy(name).choose(1, table, NoDraws(), 0.0) == "b"


@pytest.mark.parametrize("name", STRATEGIES)
def test_choosing_is_a_query(name: str) -> None:
    # Given a strategy that is never told of an assignment
    strategy = make_strategy(name)
    table = [WorkerView(i, capacity=5) for i in "abcd"]
    # When it chooses twice with equal rngs, Expect the same answer (no hidden state moved)
    assert strategy.choose(2, table, random.Random(7), 1.0) == strategy.choose(
        2, table, random.Random(7), 1.0
    )


def test_make_strategy_builds_each_named_member() -> None:
    classes = {
        "round_robin": RoundRobin,
        "least_loaded": LeastLoaded,
        "random": RandomChoice,
        "priority": PriorityBased,
        "lru": LeastRecentlyUsed,
        "power_of_two": PowerOfTwoChoices,
    }
    assert set(STRATEGIES) == set(classes)
    assert STRATEGIES[:4] == ("round_robin", "least_loaded", "random", "priority")
    for name, cls in classes.items():
        strategy = make_strategy(name)
        assert type(strategy) is cls
        assert strategy.name == name
        assert isinstance(strategy, Strategy)
    assert make_strategy("round_robin") is not make_strategy("round_robin")


def test_make_strategy_ignores_case_and_surrounding_blanks() -> None:
    assert isinstance(make_strategy("  Least_Loaded\n"), LeastLoaded)


@pytest.mark.parametrize("bad", ["weighted", "", "round-robin", "leastloaded"])
def test_make_strategy_refuses_an_unknown_name_in_one_line(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        make_strategy(bad)
    text = str(info.value)
    assert "\n" not in text
    assert f"unknown load balancer strategy {bad!r}" in text
    assert "LOAD_BALANCER_STRATEGY" in text
    assert ", ".join(STRATEGIES) in text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"id": ""}, "non-empty"),
        ({"id": "w", "active_jobs": -1}, "active_jobs must be >= 0"),
        ({"id": "w", "capacity": -2}, "capacity must be >= 0"),
    ],
)
def test_a_nonsense_worker_view_is_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        WorkerView(**kwargs)


def test_a_duplicate_worker_id_is_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        LeastLoaded().choose(0, [WorkerView("a"), WorkerView("a")], random.Random(0), 0.0)


def test_availability_is_online_with_a_free_slot() -> None:
    assert WorkerView("a", active_jobs=1, capacity=2).available
    assert not WorkerView("a", active_jobs=2, capacity=2).available
    assert not WorkerView("a", active_jobs=3, capacity=2).available
    assert not WorkerView("a", online=False).available


def test_the_package_exports_exactly_its_public_api() -> None:
    import actors.balancers as package

    public = {name for name in vars(package) if not name.startswith("_")}
    modules = {"pool", "strategies"}
    assert public - modules == {
        "HIGH_PRIORITY",
        "STRATEGIES",
        "LeastLoaded",
        "LeastRecentlyUsed",
        "PowerOfTwoChoices",
        "PriorityBased",
        "RandomChoice",
        "RoundRobin",
        "Strategy",
        "WorkerPool",
        "WorkerView",
        "make_strategy",
    }
