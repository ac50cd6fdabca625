"""Hypothesis strategies for worker tables, shared by the balancer tests."""

from __future__ import annotations

from hypothesis import strategies as st

from actors.balancers import WorkerView

IDS = st.text(alphabet="abcdefgh", min_size=1, max_size=3)


@st.composite
def worker_tables(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> list[WorkerView]:
    """Any table: unique ids, any load, capacity, status and last use."""
    ids = draw(st.lists(IDS, unique=True, min_size=min_size, max_size=max_size))
    return [
        WorkerView(
            worker_id,
            active_jobs=draw(st.integers(0, 4)),
            capacity=draw(st.integers(0, 4)),
            online=draw(st.booleans()),
            last_assigned_at=draw(st.none() | st.floats(0, 100, allow_nan=False)),
        )
        for worker_id in ids
    ]
