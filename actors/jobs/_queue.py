"""The ready queue: which job runs next, and which are waiting for their time.

How it works
------------
Two binary heaps (``heapq``, pure and deterministic) hold job ids, never whole jobs:

- **ready**: ordered by ``(-priority, seq)``: the highest priority first and, within one
  priority, first in first out. ``seq`` is a number the queue hands out, increasing, each time
  a job becomes ready, so the order is a pure function of the calls made;
- **delayed**: ordered by ``(scheduled_at, seq)``. :meth:`ReadyQueue.promote` moves every entry
  with ``scheduled_at <= now`` to *ready*, in due order, giving each a fresh ``seq`` then: a
  delayed job queues behind jobs that were already ready at its priority, as if submitted at
  its due time. :meth:`ReadyQueue.next_due` tells a driver when to set its next timer.

Removal (a cancelled job, a job dispatched by another path) is lazy: the id leaves the index
(``_where``), its heap entry stays behind and is skipped when it reaches the top, so removal is
O(1) and pop O(log n) amortised. When dead entries outnumber live ones the heaps are rebuilt, so
memory stays proportional to the jobs queued. An id may be queued at most once at a time.

Times are whatever clock the caller uses consistently (``ctx.wall`` for job ``scheduled_at``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Final

from ._model import PRIORITY_MAX, PRIORITY_MIN

READY: Final = "ready"
DELAYED: Final = "delayed"


class ReadyQueue:
    """Job ids by priority then FIFO, plus jobs delayed until a time.

    Example::

        q = ReadyQueue()
        q.push("a", priority=5)
        q.push("b", priority=8)
        q.push("c", priority=5, scheduled_at=100.0)
        q.pop()            # "b"
        q.promote(100.0)   # ["c"]
        q.pop(), q.pop()   # "a", "c"
    """

    __slots__ = ("_ready", "_delayed", "_where", "_seq", "_stale", "_delayed_live")

    def __init__(self) -> None:
        self._ready: list[tuple[int, int, str]] = []  # (-priority, seq, id)
        self._delayed: list[tuple[float, int, str, int]] = []  # (scheduled_at, seq, id, priority)
        # id -> (heap it is in, seq of its live entry); an entry whose seq differs is dead.
        self._where: dict[str, tuple[str, int]] = {}
        self._seq = 0
        self._stale = 0
        self._delayed_live = 0

    # --- queries -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Jobs queued, ready and delayed."""
        return len(self._where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def __iter__(self) -> Iterator[str]:
        """Ready ids in pop order, then delayed ids in due order (a snapshot)."""
        yield from self.ready_ids()
        yield from self.delayed_ids()

    @property
    def ready_count(self) -> int:
        """Jobs that :meth:`pop` can return now."""
        return len(self._where) - self._delayed_live

    @property
    def delayed_count(self) -> int:
        """Jobs waiting for their ``scheduled_at``."""
        return self._delayed_live

    def is_delayed(self, job_id: str) -> bool:
        """True if ``job_id`` is queued and waiting for its time."""
        where = self._where.get(job_id)
        return where is not None and where[0] == DELAYED

    def ready_ids(self) -> list[str]:
        """Ready ids in the order :meth:`pop` would return them."""
        return [i for _, seq, i in sorted(self._ready) if self._live(i, READY, seq)]

    def delayed_ids(self) -> list[str]:
        """Delayed ids in the order they fall due."""
        return [e[2] for e in sorted(self._delayed) if self._live(e[2], DELAYED, e[1])]

    def peek(self) -> str | None:
        """The id :meth:`pop` would return, or None if nothing is ready."""
        self._drop_dead_ready()
        return self._ready[0][2] if self._ready else None

    def top(self, k: int) -> list[str]:
        """The first ``k`` ready ids in pop order, without removing them (O(k log n))."""
        taken: list[tuple[int, int, str]] = []
        while len(taken) < k:
            self._drop_dead_ready()
            if not self._ready:
                break
            taken.append(heapq.heappop(self._ready))
        for entry in taken:
            heapq.heappush(self._ready, entry)
        return [e[2] for e in taken]

    def next_due(self) -> float | None:
        """The earliest ``scheduled_at`` among delayed jobs, or None if none is delayed."""
        self._drop_dead_delayed()
        return self._delayed[0][0] if self._delayed else None

    # --- changes -------------------------------------------------------------------------------

    def push(self, job_id: str, priority: int, scheduled_at: float | None = None) -> None:
        """Queue ``job_id``: ready now, or delayed until ``scheduled_at`` if given.

        A delayed job becomes ready at the first :meth:`promote` with ``now >= scheduled_at``
        (call ``promote(now)`` before :meth:`pop` to release jobs already due).

        Raises:
            ValueError: ``priority`` is outside 1..10, or ``job_id`` is already queued.
        """
        if isinstance(priority, bool) or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise ValueError(
                f"job {job_id!r}: priority must be {PRIORITY_MIN}..{PRIORITY_MAX}, got {priority!r}"
            )
        if job_id in self._where:
            raise ValueError(f"job {job_id!r} is already queued; remove it before queueing it again")
        seq = self._next_seq()
        if scheduled_at is None:
            heapq.heappush(self._ready, (-priority, seq, job_id))
            self._where[job_id] = (READY, seq)
        else:
            heapq.heappush(self._delayed, (scheduled_at, seq, job_id, priority))
            self._where[job_id] = (DELAYED, seq)
            self._delayed_live += 1

    def pop(self) -> str | None:
        """Remove and return the ready id of highest priority, oldest first; None if none."""
        self._drop_dead_ready()
        if not self._ready:
            return None
        _, _, job_id = heapq.heappop(self._ready)
        del self._where[job_id]
        return job_id

    def promote(self, now: float) -> list[str]:
        """Make every delayed job with ``scheduled_at <= now`` ready; return their ids in order."""
        promoted: list[str] = []
        while True:
            self._drop_dead_delayed()
            if not self._delayed or self._delayed[0][0] > now:
                return promoted
            _, _, job_id, priority = heapq.heappop(self._delayed)
            seq = self._next_seq()
            heapq.heappush(self._ready, (-priority, seq, job_id))
            self._where[job_id] = (READY, seq)
            self._delayed_live -= 1
            promoted.append(job_id)

    def remove(self, job_id: str) -> bool:
        """Take ``job_id`` out of the queue (ready or delayed); False if it was not queued."""
        where = self._where.pop(job_id, None)
        if where is None:
            return False
        if where[0] == DELAYED:
            self._delayed_live -= 1
        self._stale += 1
        if self._stale > max(16, len(self._where)):
            self._compact()
        return True

    def clear(self) -> None:
        """Forget every queued job."""
        self._ready.clear()
        self._delayed.clear()
        self._where.clear()
        self._stale = 0
        self._delayed_live = 0

    # --- internals -----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _live(self, job_id: str, state: str, seq: int) -> bool:
        return self._where.get(job_id) == (state, seq)

    def _drop_dead_ready(self) -> None:
        ready = self._ready
        while ready and not self._live(ready[0][2], READY, ready[0][1]):
            heapq.heappop(ready)
            self._stale -= 1

    def _drop_dead_delayed(self) -> None:
        delayed = self._delayed
        while delayed and not self._live(delayed[0][2], DELAYED, delayed[0][1]):
            heapq.heappop(delayed)
            self._stale -= 1

    def _compact(self) -> None:
        """Rebuild both heaps from live entries only."""
        self._ready = [e for e in self._ready if self._live(e[2], READY, e[1])]
        self._delayed = [e for e in self._delayed if self._live(e[2], DELAYED, e[1])]
        heapq.heapify(self._ready)
        heapq.heapify(self._delayed)
        self._stale = 0
