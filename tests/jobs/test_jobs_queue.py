"""The ready queue: strict priority then FIFO, delayed jobs released exactly when due, removal.

Given / When / Expect; hypothesis compares the queue against ``sorted()`` over a model.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.jobs import ReadyQueue

priorities = st.integers(min_value=1, max_value=10)


def drain(q: ReadyQueue) -> list[str]:
    out = []
    while (job_id := q.pop()) is not None:
        out.append(job_id)
    return out


def test_pop_takes_highest_priority_then_oldest() -> None:
    q = ReadyQueue()
    for job_id, prio in [("a", 5), ("b", 8), ("c", 5), ("d", 10), ("e", 8)]:
        q.push(job_id, prio)
    assert q.peek() == "d" and len(q) == 5
    assert drain(q) == ["d", "b", "e", "a", "c"]
    assert q.pop() is None and q.peek() is None and len(q) == 0


@given(st.lists(priorities, max_size=60))
def test_pop_order_matches_sorted_by_priority_then_fifo(prios: list[int]) -> None:
    # Given jobs pushed in order with random priorities, expect pops == sorted(-prio, order).
    q = ReadyQueue()
    for i, p in enumerate(prios):
        q.push(f"j{i}", p)
    expected = [f"j{i}" for i, _ in sorted(enumerate(prios), key=lambda t: (-t[1], t[0]))]
    assert q.ready_ids() == expected
    assert drain(q) == expected


@given(st.lists(st.tuples(priorities, st.booleans()), max_size=60))
def test_removed_jobs_never_pop_and_the_rest_keep_order(items: list[tuple[int, bool]]) -> None:
    # Given some jobs removed after queueing, expect the others in order and the removed gone.
    q = ReadyQueue()
    for i, (p, _) in enumerate(items):
        q.push(f"j{i}", p)
    for i, (_, gone) in enumerate(items):
        if gone:
            assert q.remove(f"j{i}")
            assert not q.remove(f"j{i}")
    kept = [(i, p) for i, (p, gone) in enumerate(items) if not gone]
    assert len(q) == len(kept)
    assert drain(q) == [f"j{i}" for i, _ in sorted(kept, key=lambda t: (-t[1], t[0]))]


def test_delayed_job_is_promoted_exactly_when_due() -> None:
    # Given a job delayed until 100, expect nothing before 100 and the job at 100 exactly.
    q = ReadyQueue()
    q.push("later", 5, scheduled_at=100.0)
    assert q.next_due() == 100.0 and q.is_delayed("later")
    assert (q.ready_count, q.delayed_count) == (0, 1)
    assert q.promote(99.999) == [] and q.pop() is None
    assert q.promote(100.0) == ["later"]
    assert q.next_due() is None and not q.is_delayed("later")
    assert q.pop() == "later"


def test_promoted_job_queues_behind_jobs_already_ready() -> None:
    q = ReadyQueue()
    q.push("delayed", 5, scheduled_at=10.0)
    q.push("ready", 5)
    q.push("urgent", 9, scheduled_at=10.0)
    assert q.promote(10.0) == ["delayed", "urgent"]
    assert drain(q) == ["urgent", "ready", "delayed"]


@given(
    st.lists(st.tuples(priorities, st.one_of(st.none(), st.integers(0, 20))), max_size=40),
    st.lists(st.integers(0, 25), max_size=8),
)
def test_promotion_releases_exactly_the_due_jobs(
    items: list[tuple[int, int | None]], clock_steps: list[int]
) -> None:
    # Given ready and delayed jobs, when time advances by promote(now), expect exactly the jobs
    # with scheduled_at <= now released, in due order, and next_due the earliest still waiting.
    q = ReadyQueue()
    for i, (p, at) in enumerate(items):
        q.push(f"j{i}", p, scheduled_at=None if at is None else float(at))
    waiting = {f"j{i}": at for i, (_, at) in enumerate(items) if at is not None}
    for now in sorted(clock_steps):
        released = q.promote(float(now))
        due = sorted((at, int(j[1:])) for j, at in waiting.items() if at <= now)
        assert released == [f"j{i}" for _, i in due]
        for j in released:
            del waiting[j]
        assert q.next_due() == (float(min(waiting.values())) if waiting else None)
    assert q.delayed_count == len(waiting) and set(q.delayed_ids()) == set(waiting)


def test_removing_a_delayed_job_cancels_its_release() -> None:
    q = ReadyQueue()
    q.push("a", 5, scheduled_at=10.0)
    q.push("b", 5, scheduled_at=20.0)
    assert q.remove("a") and "a" not in q
    assert q.next_due() == 20.0
    assert q.promote(30.0) == ["b"]


def test_a_removed_id_can_be_queued_again_and_only_the_new_entry_counts() -> None:
    q = ReadyQueue()
    q.push("a", 9)
    q.push("b", 5)
    q.remove("a")
    q.push("a", 1)
    assert drain(q) == ["b", "a"]


def test_pushing_a_queued_id_or_bad_priority_is_rejected() -> None:
    q = ReadyQueue()
    q.push("a", 5)
    with pytest.raises(ValueError, match="already queued"):
        q.push("a", 6)
    with pytest.raises(ValueError, match=r"priority must be 1\.\.10"):
        q.push("b", 11)


def test_many_removals_compact_the_heaps() -> None:
    # Given many jobs mostly removed, expect the heaps rebuilt and order intact.
    q = ReadyQueue()
    for i in range(1000):
        q.push(f"j{i}", 1 + i % 10, scheduled_at=float(i) if i % 2 else None)
    for i in range(1000):
        if i % 25:
            q.remove(f"j{i}")
    assert len(q) == 40 and q.ready_count == 20 and q.delayed_count == 20
    assert len(q._ready) + len(q._delayed) < 200
    assert list(q) == q.ready_ids() + q.delayed_ids()
    q.promote(1e9)
    assert len(drain(q)) == 40 and len(q) == 0


def test_clear_forgets_everything() -> None:
    q = ReadyQueue()
    q.push("a", 5)
    q.push("b", 5, scheduled_at=1.0)
    q.clear()
    assert len(q) == 0 and q.pop() is None and q.next_due() is None
